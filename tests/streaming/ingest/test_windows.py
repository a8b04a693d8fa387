"""Window arithmetic and extraction (pure, no LSL)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from affectstream.streaming.ingest.ring_buffer import RingBuffer
from affectstream.streaming.ingest.windows import (
    InputSpec,
    Unavailable,
    Windower,
    WindowSpec,
    due_window_ends,
    extract,
    fill_short_nan_runs,
    watermark,
)


def _buffer(srate: float, seconds: float, t0: float = 100.0, ch: int = 2) -> RingBuffer:
    n = int(seconds * srate)
    ts = t0 + np.arange(n) / srate
    counter = np.arange(n, dtype=np.float64)
    rb = RingBuffer(n + 10, ch)
    rb.write(np.repeat(counter[:, None], ch, axis=1), ts)
    return rb


def test_watermark_is_the_least_covered_time() -> None:
    assert watermark([10.0, 10.5], [4.0, 128.0]) == pytest.approx(10.25)


def test_not_enough_data_gives_no_window() -> None:
    assert due_window_ends(None, oldest_common=100.0, mark=101.0, window_s=2.0, hop_s=0.25) == []


def test_hop_smaller_than_window() -> None:
    ends = due_window_ends(None, oldest_common=100.1, mark=103.0, window_s=2.0, hop_s=0.25)
    assert ends == pytest.approx([102.25, 102.5, 102.75, 103.0])
    later = due_window_ends(ends[-1], 100.1, 103.6, 2.0, 0.25)
    assert later == pytest.approx([103.25, 103.5])


def test_window_ends_do_not_drift_over_long_runs() -> None:
    ends = due_window_ends(1e6 - 0.25, 0.0, 1e6 + 100, 1.0, 0.25)
    assert ends[0] == 1e6 and ends[-1] == 1e6 + 100 and len(ends) == 401


def test_a_phase_shifts_the_grid_within_the_hop() -> None:
    """#16: a session's windows end at (k + phase) × hop: sessions fall due spread over the hop."""
    ends = due_window_ends(None, 100.1, 103.0, 2.0, 0.25, phase=0.4)
    assert ends == pytest.approx([102.1, 102.35, 102.6, 102.85])  # the first starts at 100.1
    later = due_window_ends(ends[-1], 100.1, 103.4, 2.0, 0.25, phase=0.4)
    assert later == pytest.approx([103.1, 103.35])
    far = due_window_ends(1e6 - 0.25 + 0.1, 0.0, 1e6 + 100, 1.0, 0.25, phase=0.4)
    assert far[0] == pytest.approx(1e6 + 0.1) and len(far) == 400  # no drift


def test_a_windower_cuts_on_its_phase_and_refuses_one_outside_the_hop() -> None:
    gsr = SimpleNamespace(buffer=_buffer(4.0, 6.0), stream=SimpleNamespace(nominal_srate=4.0))
    spec = WindowSpec(2.0, 0.5, (InputSpec("GSR", 4.0),))
    w = Windower(spec, {"GSR": gsr}.get, phase=0.5)
    windows = w.poll()
    ends = [x.t_end for x in windows]
    assert ends == pytest.approx([102.25, 102.75, 103.25, 103.75, 104.25, 104.75, 105.25, 105.75])
    for x in windows:  # 8 samples from the first at or after the window's start
        assert x.data["GSR"].shape == (8, 2) and x.data["GSR"][0, 0] == (x.t_start - 100.0) * 4
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="phase"):
            Windower(spec, {"GSR": gsr}.get, phase=bad)


def test_fill_short_nan_runs() -> None:
    x = np.arange(10, dtype=float)[:, None].repeat(2, axis=1)
    x[3:5, 1] = np.nan
    filled = fill_short_nan_runs(x, 2)
    assert filled is not None and np.array_equal(filled, np.arange(10.0)[:, None].repeat(2, 1))
    assert fill_short_nan_runs(x, 1) is None  # run of 2 > 1
    edge = x.copy()
    edge[0, 0] = np.nan
    assert fill_short_nan_runs(edge, 5) is None  # no neighbour on the left


def test_extract_at_native_rate_returns_the_raw_samples() -> None:
    rb = _buffer(128.0, 5.0)
    t_start = 100.0 + 37 / 128 - 0.001  # not on a sample
    cut = extract(rb, t_start, t_start + 2.0, 128.0, 128.0)
    assert not isinstance(cut, Unavailable)
    assert cut.shape == (256, 2) and cut[:, 0].tolist() == list(range(37, 37 + 256))


@pytest.mark.parametrize("t0", [5000.0, 1000.0, 123456.789])
def test_a_sample_on_the_window_start_is_its_first_despite_rounding(t0: float) -> None:
    # t0 + k/50 is not exact in binary: sample k may be stamped 1e-12 s before the window start
    # that nominally equals its time; it is still the window's first sample
    rb = _buffer(50.0, 10.0, t0=t0)
    for k in range(0, 200, 10):
        t_start = t0 + k / 50
        for start in (t_start, np.nextafter(t_start, np.inf)):
            cut = extract(rb, start, start + 2.0, 50.0, 50.0)
            assert not isinstance(cut, Unavailable), (k, cut)
            assert cut[0, 0] == k and cut.shape == (100, 2)


def test_extract_resamples_linearly_on_timestamps() -> None:
    rb = _buffer(100.0, 5.0)
    cut = extract(rb, 101.0, 103.0, 100.0, 32.0)
    assert not isinstance(cut, Unavailable)
    assert cut.shape == (64, 2)
    np.testing.assert_allclose(cut[:, 0], 100 + np.arange(64) * 100 / 32)


def test_extract_refuses_gaps_and_missing_data() -> None:
    rb = RingBuffer(1000, 1)
    ts = 100 + np.arange(256) / 128
    rb.write(np.ones((256, 1)), ts)
    rb.write(np.ones((128, 1)), ts[-1] + 0.5 + np.arange(128) / 128)  # 0.5 s hole
    assert isinstance(extract(rb, 101.0, 103.0, 128.0, 128.0), Unavailable)
    assert isinstance(extract(rb, 101.0, 103.0, 128.0, 64.0), Unavailable)
    assert isinstance(extract(rb, 103.0, 105.0, 128.0, 128.0), Unavailable)  # not received yet


def test_extract_never_returns_nan() -> None:
    rb = RingBuffer(1000, 1)
    x = np.ones((640, 1))
    x[300:340] = np.nan  # 40 samples = 0.31 s > max_fill_s
    rb.write(x, 100 + np.arange(640) / 128)
    bad = extract(rb, 101.0, 103.0, 128.0, 128.0, max_fill_s=0.1)
    assert isinstance(bad, Unavailable) and "non-finite" in bad.reason
    ok = extract(rb, 101.0, 103.0, 128.0, 128.0, max_fill_s=0.5)
    assert not isinstance(ok, Unavailable) and np.isfinite(ok).all()


def test_windower_holds_back_until_every_stream_covers_the_window() -> None:
    fast = SimpleNamespace(buffer=_buffer(128.0, 6.0), stream=SimpleNamespace(nominal_srate=128.0))
    slow = SimpleNamespace(buffer=_buffer(4.0, 3.0), stream=SimpleNamespace(nominal_srate=4.0))
    spec = WindowSpec(2.0, 0.5, (InputSpec("EEG", 128.0), InputSpec("GSR", 4.0)))
    w = Windower(spec, {"EEG": fast, "GSR": slow}.get)
    windows = w.poll()
    # GSR covers up to 103.0: windows ending 102.0, 102.5, 103.0 and no later
    assert [x.t_end for x in windows] == pytest.approx([102.0, 102.5, 103.0])
    assert all(x.data["EEG"].shape == (256, 2) and x.data["GSR"].shape == (8, 2) for x in windows)
    assert w.poll() == []
    slow.buffer.write(np.ones((4, 2)), 103.0 + np.arange(4) / 4)
    assert [x.t_end for x in w.poll()] == pytest.approx([103.5, 104.0])


def test_catch_up_is_bounded_and_the_history_before_attaching_is_passed_over() -> None:
    gsr = SimpleNamespace(buffer=_buffer(4.0, 10.0), stream=SimpleNamespace(nominal_srate=4.0))
    w = Windower(WindowSpec(2.0, 0.5, (InputSpec("GSR", 4.0),)), {"GSR": gsr}.get)
    assert [x.t_end for x in w.poll(max_windows=1)] == pytest.approx([110.0])  # starts now
    assert not w.skipped
    gsr.buffer.write(np.ones((12, 2)), 110.0 + np.arange(12) / 4)  # 3 s more: 6 windows due
    assert [x.t_end for x in w.poll(max_windows=2)] == pytest.approx([112.5, 113.0])
    assert w.skipped == {"behind: skipped to the newest windows": 4}


def test_window_spec_validation() -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        WindowSpec(1.0, 0.25, (InputSpec("GSR", 4.5),))
    with pytest.raises(ValueError, match="must be > 0"):
        WindowSpec(0.0, 0.25, (InputSpec("GSR", 4.0),))


def _stream_of(srate: float, ch: int, seconds: float) -> SimpleNamespace:
    buffer = RingBuffer(int(seconds * srate) + 10, ch)
    return SimpleNamespace(buffer=buffer, stream=SimpleNamespace(nominal_srate=srate))


def test_a_tail_is_the_end_of_the_whole_window_and_only_where_it_would_be_cut() -> None:
    """#16: a window following the previous one is cut as its last hop only; its samples are
    those of the whole window (NaN runs across the hop's edge filled alike), and what the tail
    cannot settle (a gap, an unfillable run) gives the windows the whole cut gives."""
    rng = np.random.default_rng(3)
    t0, seconds = 100.0, 40.0
    streams = {"EEG": (128.0, 3), "GSR": (32.0, 1)}
    data = {
        k: (t0 + np.arange(int(seconds * r)) / r, rng.standard_normal((int(seconds * r), c)))
        for k, (r, c) in streams.items()
    }
    eeg_ts, eeg = data["EEG"]
    eeg[1000:1005, 0] = np.nan  # short runs: filled (one across a hop edge at 1024)
    eeg[1022:1026, 1] = np.nan
    eeg[2500:2540, 2] = np.nan  # too long to fill: the windows holding it are unavailable
    keep = np.ones(len(eeg_ts), bool)
    keep[3300:3310] = False  # a gap of 10 samples
    data["EEG"] = (eeg_ts[keep], eeg[keep])
    spec = WindowSpec(4.0, 0.25, (InputSpec("EEG", 128.0), InputSpec("GSR", 32.0)))
    both = {}
    for tails in (False, True):
        src = {k: _stream_of(r, c, seconds) for k, (r, c) in streams.items()}
        w = Windower(spec, src.get, tails=tails)
        got = []
        for end in np.arange(t0 + 0.1, t0 + seconds, 0.1):  # chunks of 0.1 s, polled each time
            for k, (ts, x) in data.items():
                sel = (ts >= end - 0.1) & (ts < end)
                src[k].buffer.write(x[sel], ts[sel])
            got += w.poll(max_windows=1000)
        both[tails] = (got, w)
    whole, (tails_, w) = both[False][0], both[True]
    # the same windows, but for those whose start cuts through the short run at sample 1022-1025
    # (filled when it was new): cut whole, a run at the window's edge has no neighbour there
    run = (t0 + 1022 / 128, t0 + 1026 / 128)
    extra = [s + 4.0 for s in np.arange(t0, t0 + seconds, 0.25) if run[0] <= s < run[1]]
    assert extra == [112.0]
    assert [x.t_end for x in tails_] == sorted([x.t_end for x in whole] + extra)
    assert w.tails_cut > 0.8 * len(whole) and not any(x.tail for x in whole)
    assert w.skipped  # the long run and the gap: unavailable either way
    assert both[False][1].skipped - w.skipped == {"EEG: non-finite run longer than max_fill_s": 1}
    tails_ = [x for x in tails_ if x.t_end not in extra]
    for a, b in zip(whole, tails_, strict=True):
        for k, (r, _) in streams.items():
            n = round(0.25 * r) if b.tail else len(a.data[k])
            assert b.data[k].shape == (n, a.data[k].shape[1])
            np.testing.assert_array_equal(b.data[k], a.data[k][-n:])


def test_inputs_delivered_at_another_rate_are_always_cut_whole() -> None:
    gsr = SimpleNamespace(buffer=_buffer(4.0, 10.0), stream=SimpleNamespace(nominal_srate=4.0))
    w = Windower(WindowSpec(2.0, 0.5, (InputSpec("GSR", 8.0),)), {"GSR": gsr}.get, tails=True)
    w.poll(max_windows=1)
    gsr.buffer.write(np.ones((4, 2)), 110.0 + np.arange(4) / 4)
    got = w.poll()
    assert got and not any(x.tail for x in got) and w.tails_cut == 0
