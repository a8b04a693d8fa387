"""The ingest layer on real LSL outlets and inlets on loopback (unique source ids per test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from affectstream.streaming.ingest.health import HealthPolicy, StreamState
from affectstream.streaming.ingest.session import IngestSession, SessionMatch, StreamExpectation
from affectstream.streaming.ingest.windows import InputSpec, Windower, WindowSpec

pylsl = pytest.importorskip("pylsl")
pytestmark = pytest.mark.lsl


def _outlet(prefix: str, kind: str, n_ch: int, srate: float) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(f"{prefix} {kind}", kind, n_ch, srate, "float32", f"{prefix}-{kind}")
    info.desc().append_child_value("session", prefix)
    return pylsl.StreamOutlet(info)


class Pusher:
    """Pushes a counter (channel 0) plus noise at a real-time pace in irregular chunks."""

    def __init__(self, outlet: pylsl.StreamOutlet, srate: float, n_ch: int, seed: int) -> None:
        self.outlet, self.srate, self.n_ch = outlet, srate, n_ch
        self.rng = np.random.default_rng(seed)
        self.k = 0
        self.t0 = pylsl.local_clock()
        self.stop = threading.Event()
        self.nan_at: set[int] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            due = int((pylsl.local_clock() - self.t0) * self.srate) + 1
            while self.k < due:
                n = min(due - self.k, int(self.rng.integers(1, 24)))  # irregular chunk sizes
                ks = np.arange(self.k, self.k + n)
                x = np.column_stack([ks, self.rng.normal(size=(n, self.n_ch - 1))]).astype(
                    np.float32
                )
                for j in self.nan_at & set(ks.tolist()):
                    x[j - self.k, 1] = np.nan
                self.outlet.push_chunk(x, (self.t0 + ks / self.srate).tolist())
                self.k += n
            time.sleep(float(self.rng.uniform(0.002, 0.03)))


@pytest.fixture
def prefix(session_name: str) -> str:
    return session_name


@pytest.fixture
def three_streams(prefix: str) -> Iterator[dict[str, Pusher]]:
    spec = {"EEG": (4, 256.0), "GSR": (2, 16.0), "PPG": (2, 64.0)}
    pushers = {}
    for i, (kind, (n_ch, srate)) in enumerate(spec.items()):
        pushers[kind] = Pusher(_outlet(prefix, kind, n_ch, srate), srate, n_ch, seed=i)
    for p in pushers.values():
        p.thread.start()
    yield pushers
    for p in pushers.values():
        p.stop.set()
        p.thread.join()


def _poll_windows(w: Windower, seconds: float) -> list:  # type: ignore[type-arg]
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        out += w.poll()
        time.sleep(0.05)
    return out


def test_three_rates_irregular_chunks_windows_hold_every_sample_once(
    prefix: str, three_streams: dict[str, Pusher]
) -> None:
    with IngestSession(SessionMatch(session=prefix), buffer_s=20) as session:
        assert session.wait_for(["EEG", "GSR", "PPG"], timeout=15)
        inputs = (InputSpec("EEG", 256.0), InputSpec("GSR", 16.0), InputSpec("PPG", 64.0))
        tiles = Windower(WindowSpec(1.0, 1.0, inputs), session.by_type)  # non-overlapping
        sliding = Windower(WindowSpec(2.0, 0.25, inputs), session.by_type)
        windows = []
        end = time.monotonic() + 6
        slid = []
        while time.monotonic() < end:
            windows += tiles.poll()
            slid += sliding.poll()
            time.sleep(0.05)
    assert len(windows) >= 3 and len(slid) >= 8
    for kind, srate in (("EEG", 256), ("GSR", 16), ("PPG", 64)):
        counters = np.concatenate([w.data[kind][:, 0] for w in windows])
        # consecutive windows tile the stream: every sample exactly once, none lost or duplicated
        assert np.array_equal(np.diff(counters), np.ones(len(counters) - 1)), kind
        assert len(counters) == len(windows) * srate
        for w in slid:
            c = w.data[kind][:, 0]
            assert len(c) == 2 * srate and np.array_equal(np.diff(c), np.ones(len(c) - 1))
    # all modalities of one window cover the same time span (counter / rate ≈ time since t0)
    for w in windows:
        starts = [w.data[k][0, 0] / r for k, r in (("EEG", 256), ("GSR", 16), ("PPG", 64))]
        assert max(starts) - min(starts) < 1 / 16 + 1e-6
    assert tiles.skipped == {} and sliding.skipped == {}
    hops = np.diff([w.t_end for w in slid])
    assert np.allclose(hops, 0.25)


def test_outlet_gone_then_back_goes_stale_then_recovered(prefix: str) -> None:
    states: list[tuple[float, StreamState]] = []
    policy = HealthPolicy(stale_intervals=8, stale_min_s=0.25, recovered_hold_s=1.0)
    pusher = Pusher(_outlet(prefix, "GSR", 2, 32.0), 32.0, 2, seed=3)
    pusher.thread.start()
    session = IngestSession(
        SessionMatch(source_id_prefix=prefix),
        policy=policy,
        on_state=lambda acq, st: states.append((time.monotonic(), st)),
    ).start()
    try:
        assert session.wait_for(["GSR"], 15)
        acq = session.by_type("GSR")
        assert acq is not None
        time.sleep(1.0)
        assert acq.health.state == StreamState.OK
        pusher.stop.set()
        pusher.thread.join()
        killed = time.monotonic()
        del pusher.outlet, pusher  # the outlet disappears
        deadline = time.monotonic() + 5
        while acq.health.state not in (StreamState.STALE, StreamState.LOST):
            assert time.monotonic() < deadline, "never noticed the stream had gone"
            time.sleep(0.01)
        noticed = time.monotonic() - killed
        assert noticed < 1.0, f"took {noticed:.2f} s to notice"  # not LSL's long timeout
        samples_before = acq.health.samples
        again = Pusher(_outlet(prefix, "GSR", 2, 32.0), 32.0, 2, seed=4)  # same source_id
        again.thread.start()
        try:
            deadline = time.monotonic() + 15
            while acq.health.state != StreamState.RECOVERED:
                assert time.monotonic() < deadline, f"not recovered: {acq.health.snapshot()}"
                time.sleep(0.05)
            time.sleep(1.5)
            acq.health.tick(pylsl.local_clock())
            assert acq.health.state == StreamState.OK
            assert acq.health.samples > samples_before + 16
            assert acq.health.reconnects >= 1
            assert acq.running and acq.error is None
        finally:
            again.stop.set()
            again.thread.join()
    finally:
        session.close()
    seen = [s for _, s in states]
    assert seen[0] == StreamState.OK
    assert StreamState.RECOVERED in seen
    assert seen.index(StreamState.RECOVERED) > min(
        seen.index(s) for s in (StreamState.STALE, StreamState.LOST) if s in seen
    )


def test_pause_without_disappearing_goes_stale_and_recovers(prefix: str) -> None:
    outlet = _outlet(prefix, "PPG", 2, 64.0)
    pusher = Pusher(outlet, 64.0, 2, seed=5)
    pusher.thread.start()
    with IngestSession(SessionMatch(source_id_prefix=prefix)) as session:
        assert session.wait_for(["PPG"], 15)
        acq = session.by_type("PPG")
        assert acq is not None
        time.sleep(0.8)
        pusher.stop.set()
        pusher.thread.join()
        time.sleep(0.6)
        assert acq.health.state == StreamState.STALE
        resumed = Pusher(outlet, 64.0, 2, seed=6)
        resumed.thread.start()
        try:
            time.sleep(0.5)
            assert acq.health.state == StreamState.RECOVERED
            assert acq.health.gaps >= 1  # the paused span is a gap, not invented data
            assert acq.health.reconnects == 0
        finally:
            resumed.stop.set()
            resumed.thread.join()


def test_nonfinite_values_are_counted_and_never_reach_a_window(prefix: str) -> None:
    pusher = Pusher(_outlet(prefix, "GSR", 2, 32.0), 32.0, 2, seed=7)
    pusher.nan_at = {40, 41, 42, 100, *range(130, 150)}  # two short runs, one long (20 samples)
    pusher.thread.start()
    try:
        with IngestSession(SessionMatch(source_id_prefix=prefix)) as session:
            assert session.wait_for(["GSR"], 15)
            w = Windower(
                WindowSpec(1.0, 0.5, (InputSpec("GSR", 32.0),), max_fill_s=0.1), session.by_type
            )
            windows = _poll_windows(w, 6.0)
            acq = session.by_type("GSR")
            assert acq is not None
            received_from = acq.buffer.latest(10**6)[0][0, 0] if acq.buffer else 0
    finally:
        pusher.stop.set()
        pusher.thread.join()
    expected = len({k for k in pusher.nan_at if k >= received_from})
    assert acq.health.nonfinite == expected and expected > 0
    assert windows and all(np.isfinite(x.data["GSR"]).all() for x in windows)
    # windows over the long run were withheld and counted, with the reason
    assert any("non-finite" in reason for reason in w.skipped)


def test_wrong_channel_count_is_refused_with_a_message(prefix: str) -> None:
    outlet = _outlet(prefix, "EEG", 31, 128.0)
    ok = _outlet(prefix, "GSR", 1, 32.0)
    expectations = {"EEG": StreamExpectation("EEG", channel_count=32)}
    with IngestSession(SessionMatch(source_id_prefix=prefix), expectations=expectations) as session:
        deadline = time.monotonic() + 15
        while not (session.refused and session.by_type("GSR")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the refused stream does not stop the others: GSR data keep flowing
        t0 = pylsl.local_clock()
        for i in range(10):
            ok.push_sample([float(i)], t0 + i / 32)
            time.sleep(1 / 32)
        acq = session.by_type("GSR")
        assert acq is not None
        deadline = time.monotonic() + 5  # the first pull waits for liblsl's clock sync
        while acq.health.samples < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        report = {r["type"]: r for r in session.report()}
        rows = session.report()
        states = session.states()
    # what a prediction's quality reads: the report's values, in its order (refused included)
    assert states == [(r["type"], r["state"], r["nonfinite"], r["unit"]) for r in rows]
    assert [s[0] for s in states] == ["EEG", "GSR"] and states[1][3] == "µS (assumed)"
    assert report["EEG"]["state"] == "refused"
    assert "has 31 channel(s); this session expects 32 for EEG" in str(report["EEG"]["reason"])
    assert report["GSR"]["state"] == "ok" and report["GSR"]["samples"] == 10
    del outlet, ok


def test_timestamps_going_backwards_are_dropped_and_counted(prefix: str) -> None:
    # irregular rate: no dejitter, so the timestamps arrive as sent (only clock-corrected)
    outlet = _outlet(prefix, "RESP", 1, pylsl.IRREGULAR_RATE)
    with IngestSession(SessionMatch(source_id_prefix=prefix)) as session:
        assert session.wait_for(["RESP"], 15)
        acq = session.by_type("RESP")
        assert acq is not None
        time.sleep(0.3)
        t0 = pylsl.local_clock()
        outlet.push_chunk(
            np.arange(8, dtype=np.float32)[:, None], (t0 + np.arange(8) / 32).tolist()
        )
        time.sleep(0.3)
        outlet.push_chunk(np.full((3, 1), 99, np.float32), (t0 + np.arange(3) / 32).tolist())
        outlet.push_chunk(
            np.arange(8, 12, dtype=np.float32)[:, None], (t0 + np.arange(8, 12) / 32).tolist()
        )
        deadline = time.monotonic() + 5
        while acq.health.samples < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert acq.buffer is not None
        values = acq.buffer.latest(100)[0][:, 0]
    assert acq.health.backwards == 3
    assert values.tolist() == list(range(12))
