"""The discontinuity-preserving dejitter on synthetic timestamp sequences (no LSL)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from affectstream.streaming.ingest.dejitter import Dejitter, Dejittered, DejitterPolicy

RATE = 128.0
T = 1 / RATE
T0 = 51234.5  # an LSL clock value of a machine up for a while


def _true(n: int, rate: float = RATE) -> NDArray[np.float64]:
    return T0 + np.arange(n) / rate


def _run(
    dj: Dejitter,
    raw: NDArray[np.float64],
    cuts: Sequence[int] = (),
    arrival: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], tuple[int, int, int, int]]:
    """Feed ``raw`` in chunks split at ``cuts``; a chunk arrives at ``arrival`` of its last
    sample. Returns the timestamps and (gaps, missing, steps back, steps ahead)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(raw)}), len(raw)]
    outs: list[Dejittered] = []
    for a, b in itertools.pairwise(bounds):
        outs.append(dj.process(raw[a:b], None if arrival is None else float(arrival[b - 1])))
    gaps, missing, back, ahead = (
        sum(getattr(o, f) for o in outs) for f in ("gaps", "missing", "steps_back", "steps_ahead")
    )
    return np.concatenate([o.timestamps for o in outs]), (gaps, missing, back, ahead)


def _chunks(rng: np.random.Generator, n: int, most: int = 40) -> list[int]:
    return np.cumsum(rng.integers(1, most, size=n)).tolist()


def test_jitter_is_smoothed_well_below_itself() -> None:
    rng = np.random.default_rng(0)
    n = int(60 * RATE)
    true = _true(n)
    raw = true + rng.uniform(-0.005, 0.005, n)  # the replay's jitter=5ms: RMS 2.9 ms
    out, counts = _run(Dejitter(RATE), raw, _chunks(rng, n))
    assert counts == (0, 0, 0, 0)
    assert np.all(np.diff(out) > 0)  # raw timestamps go backwards here, the output never
    assert np.any(np.diff(raw) < 0)
    err = (out - true)[int(5 * RATE) :]  # after 5 s
    jitter_rms = float(np.sqrt(np.mean((raw - true) ** 2)))
    assert float(np.sqrt(np.mean(err**2))) < jitter_rms / 10
    assert float(np.abs(err).max()) < 0.001


def test_a_rate_off_nominal_is_learnt() -> None:
    # a device that runs at 128.1 Hz while claiming 128: the line's slope follows the data
    rng = np.random.default_rng(1)
    n = int(60 * RATE)
    true = _true(n, 128.1)
    raw = true + rng.normal(0, 0.001, n)
    dj = Dejitter(RATE)
    out, counts = _run(dj, raw, _chunks(rng, n))
    assert counts == (0, 0, 0, 0)
    assert abs(dj.slope - 1 / 128.1) < 1e-7
    assert float(np.abs(out - true)[int(20 * RATE) :].max()) < 0.0005


@pytest.mark.parametrize("missing", [3, 30, 640])
def test_a_dropped_run_is_counted_and_its_jump_kept(missing: int) -> None:
    rng = np.random.default_rng(missing)
    n = int(20 * RATE)
    true = _true(n)
    raw = true + rng.uniform(-0.002, 0.002, n)
    at = int(10 * RATE)
    keep = np.ones(n, bool)
    keep[at : at + missing] = False
    out, counts = _run(Dejitter(RATE), raw[keep], _chunks(rng, n))
    assert counts == (1, missing, 0, 0)
    # the hole is in the output, as wide as in the truth; the samples keep their true times
    assert np.diff(out)[at - 1] == pytest.approx((missing + 1) * T, abs=0.001)
    assert float(np.abs(out - true[keep])[int(5 * RATE) :].max()) < 0.001


def test_three_missing_samples_are_a_gap_two_are_jitter() -> None:
    # the floor of the tolerance: 2.5 nominal intervals (a clean stream)
    n = int(10 * RATE)
    for missing, expected in ((2, (0, 0, 0, 0)), (3, (1, 3, 0, 0))):
        keep = np.ones(n, bool)
        keep[600 : 600 + missing] = False
        dj = Dejitter(RATE, DejitterPolicy(jitter_prior_s=0.0))
        _, counts = _run(dj, _true(n)[keep])
        assert counts == expected, missing


def test_a_clock_step_backwards_is_counted_and_reanchored() -> None:
    rng = np.random.default_rng(3)
    n = int(20 * RATE)
    true = _true(n)
    raw = true + rng.uniform(-0.002, 0.002, n)
    at = int(10 * RATE)
    raw[at:] -= 0.5
    out, counts = _run(Dejitter(RATE), raw, _chunks(rng, n))
    assert counts == (0, 0, 1, 0)
    # the output goes back with the clock at once, and follows the new clock
    assert out[at] - out[at - 1] == pytest.approx(T - 0.5, abs=0.005)
    assert float(np.abs(out - (true - 0.5))[at:].max()) < 0.005
    assert float(np.abs(out - (true - 0.5))[at + int(2 * RATE) :].max()) < 0.001
    assert np.all(np.diff(out[at:]) > 0)


def test_a_clock_step_ahead_is_told_from_a_gap_by_the_arrival_time() -> None:
    rng = np.random.default_rng(4)
    n = int(20 * RATE)
    true = _true(n)
    raw = true + rng.uniform(-0.002, 0.002, n)
    at = int(10 * RATE)
    raw[at:] += 0.5  # stamped half a second later than it happened: later than it arrives
    arrival = true + 0.003
    cuts = _chunks(rng, n, most=8)
    out, counts = _run(Dejitter(RATE), raw, cuts, arrival)
    assert counts == (0, 0, 0, 1)
    assert out[at] - out[at - 1] == pytest.approx(T + 0.5, abs=0.005)
    assert float(np.abs(out - (true + 0.5))[at + int(2 * RATE) :].max()) < 0.001
    # without arrival times, the same jump is a run of 64 missing samples
    _, counts = _run(Dejitter(RATE), raw, cuts)
    assert counts == (1, 64, 0, 0)
    # a dropped run with arrival times stays a gap: its samples arrived after they were stamped
    keep = np.ones(n, bool)
    keep[at : at + 64] = False
    _, counts = _run(Dejitter(RATE), (true + rng.uniform(-0.002, 0.002, n))[keep], (), None)
    assert counts == (1, 64, 0, 0)
    raw2 = (true + rng.uniform(-0.002, 0.002, n))[keep]
    chunk_ends = np.arange(7, len(raw2), 8)
    _, counts = _run(Dejitter(RATE), raw2, (chunk_ends + 1).tolist(), (true + 0.003)[keep])
    assert counts == (1, 64, 0, 0)


def test_chunks_stamped_on_arrival_widen_the_tolerance_instead_of_counting_gaps() -> None:
    # a producer that stamps every sample of a 12-sample packet with the packet's arrival time:
    # jumps of 12 intervals every 12 samples are the stream's nature, not holes
    n = int(30 * RATE)
    k = np.arange(n)
    raw = _true(n)[(k // 12) * 12 + 11]
    dj = Dejitter(RATE)
    out, counts = _run(dj, raw, range(12, n, 12), raw)
    assert counts == (0, 0, 0, 0)
    assert np.all(np.diff(out) > 0)
    assert dj.jitter > 2.5 * T
    # a real hole of 1 s still counts, its size known to the stream's jitter (± half a packet)
    keep = np.ones(n, bool)
    keep[int(20 * RATE) : int(21 * RATE)] = False
    _, (gaps, missing, back, ahead) = _run(Dejitter(RATE), raw[keep])
    assert (gaps, back, ahead) == (1, 0, 0) and abs(missing - 128) <= 6


def test_irregular_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="regular nominal rate"):
        Dejitter(0.0)


def test_rebasing_the_sample_index_keeps_the_line() -> None:
    rng = np.random.default_rng(5)
    n = int(40 * RATE)
    raw = _true(n) + rng.uniform(-0.003, 0.003, n)
    cuts = _chunks(rng, n)
    small = Dejitter(RATE)
    small.rebase_at = 100  # rebase every 100 samples instead of every 65536
    a, ca = _run(Dejitter(RATE), raw, cuts)
    b, cb = _run(small, raw, cuts)
    assert ca == cb
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def _faulty_sequence(seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """~12 s at 128 Hz with jitter, two dropped runs and a clock step each way; (raw, arrival)."""
    rng = np.random.default_rng(seed)
    n = int(12 * RATE)
    true = _true(n)
    raw = true + rng.uniform(-0.004, 0.004, n)
    raw[int(5 * RATE) :] -= 0.3
    raw[int(8 * RATE) :] += 0.75
    keep = np.ones(n, bool)
    keep[int(2 * RATE) : int(2 * RATE) + 20] = False
    keep[int(10 * RATE) : int(10.5 * RATE)] = False
    return raw[keep], (true + 0.002)[keep]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 3),
    cuts=st.lists(st.integers(1, int(12 * RATE) - 1), max_size=60),
    with_arrival=st.booleans(),
)
def test_any_chunking_gives_the_same_output(seed: int, cuts: list[int], with_arrival: bool) -> None:
    raw, arrival = _faulty_sequence(seed)
    cuts = sorted({c for c in cuts if c < len(raw)})
    # a chunk's samples arrive together: give the one-by-one run the same arrival per sample
    arr = _arrival_per_chunk(arrival, cuts) if with_arrival else None
    reference = range(1, len(raw)) if arr is not None else ()  # one by one, or all at once
    whole, counts = _run(Dejitter(RATE), raw, reference, arr)
    split, split_counts = _run(Dejitter(RATE), raw, cuts, arr)
    assert split_counts == counts
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-9)
    if arr is None:  # the step ahead, without arrival times, is a gap of 0.75 s = 96 samples
        assert counts == (3, 20 + 96 + 64, 1, 0)
    assert counts[2] == 1 and counts[0] >= 2 and counts[0] + counts[3] == 3


def _arrival_per_chunk(arrival: NDArray[np.float64], cuts: list[int]) -> NDArray[np.float64]:
    """Per sample, the arrival of its chunk (its last sample's) when split at ``cuts``."""
    out = np.empty_like(arrival)
    a = 0
    for b in [*cuts, len(arrival)]:
        out[a:b] = arrival[b - 1]
        a = b
    return out


def test_the_compiled_kernel_and_plain_python_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba is a dependency, so the dejitter runs compiled; without numba the same function runs
    as plain Python (the fallback), and both give the same timestamps and counts."""
    from affectstream.streaming.ingest import dejitter

    assert dejitter.is_compiled()
    raw, arrival = _faulty_sequence(2)
    cuts = _chunks(np.random.default_rng(2), 100)
    arr = _arrival_per_chunk(arrival, [c for c in cuts if c < len(raw)])
    compiled, c_counts = _run(Dejitter(RATE), raw, cuts, arr)
    monkeypatch.setattr(dejitter, "_kernel", dejitter._dejitter_chunk)
    plain, p_counts = _run(Dejitter(RATE), raw, cuts, arr)
    assert c_counts == p_counts and c_counts[2] == 1
    np.testing.assert_allclose(compiled, plain, rtol=0, atol=1e-9)
