"""Timestamps through real LSL outlets and inlets on loopback: what the acquisition layer stores
and counts when a producer drops a run, jitters, and steps its clock each way."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from affectstream.streaming.ingest.session import IngestSession, SessionMatch

pylsl = pytest.importorskip("pylsl")
pytestmark = pytest.mark.lsl

RATE = 64.0


def _outlet(prefix: str, kind: str, srate: float) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(f"{prefix} {kind}", kind, 1, srate, "float32", f"{prefix}-{kind}")
    return pylsl.StreamOutlet(info)


class ScriptedProducer:
    """Pushes sample k (value k) when ``k / RATE`` has passed since it started, stamped
    ``t0 + stamps[k]``; a NaN stamp drops the sample."""

    def __init__(self, outlet: pylsl.StreamOutlet, n: int, stamps: NDArray[np.float64]) -> None:
        self.outlet, self.n, self.offsets = outlet, n, stamps
        self.t0 = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.t0 = pylsl.local_clock()
        k = 0
        rng = np.random.default_rng(0)
        while k < self.n:
            due = min(self.n, int((pylsl.local_clock() - self.t0) * RATE) + 1)
            ks = np.arange(k, due)
            ks = ks[np.isfinite(self.offsets[ks])]
            if len(ks):
                self.outlet.push_chunk(
                    ks.astype(np.float32)[:, None], (self.t0 + self.offsets[ks]).tolist()
                )
            k = due
            time.sleep(float(rng.uniform(0.005, 0.03)))


def test_a_dropped_run_and_clock_steps_are_counted_as_such(prefix: str) -> None:
    n = int(4 * RATE)
    rng = np.random.default_rng(1)
    offsets = np.arange(n) / RATE + rng.uniform(-0.002, 0.002, n)  # ±2 ms of jitter
    offsets[32:52] = np.nan  # 20 samples never sent, at 0.5 s
    offsets[96:] -= 0.5  # the producer's clock is set back half a second at 1.5 s …
    offsets[160:] += 1.0  # … and a second ahead at 2.5 s (stamps now 0.5 s in the future)
    outlet = _outlet(prefix, "PPG", RATE)
    producer = ScriptedProducer(outlet, n, offsets)
    with IngestSession(SessionMatch(source_id_prefix=prefix)) as session:
        assert session.wait_for(["PPG"], 15)
        acq = session.by_type("PPG")
        assert acq is not None and acq.buffer is not None
        producer.thread.start()
        producer.thread.join()
        deadline = time.monotonic() + 5
        while acq.health.samples + acq.health.backwards < n - 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        values, stamps = acq.buffer.latest(n)
    h = acq.health
    assert (h.gaps, h.missing, h.clock_steps) == (1, 20, 2), h.snapshot()
    # the half second stamped before what was stored is dropped: samples 96 … 127 (± the first
    # ones on the new line)
    assert 30 <= h.backwards <= 34, h.snapshot()
    assert h.samples + h.backwards == n - 20
    k = values[:, 0].astype(int)
    assert np.all(np.diff(stamps) > 0)
    shift = np.where(np.arange(n) < 96, 0.0, np.where(np.arange(n) < 160, -0.5, 0.5))
    ideal = producer.t0 + np.arange(n) / RATE + shift  # the producer's clock, without jitter
    err = np.abs(stamps - ideal[k])
    # the hole is kept, as wide as it was: 21 intervals between samples 31 and 52
    i = int(np.flatnonzero(k == 52)[0])
    assert k[i - 1] == 31 and stamps[i] - stamps[i - 1] == pytest.approx(21 / RATE, abs=0.003)
    # the ±2 ms jitter is smoothed; after each step the stored times follow the producer's new
    # clock (within the jitter while the line learns its new intercept)
    assert err[(k >= 16) & (k < 96)].max() < 0.0015
    for lo, hi in ((128, 160), (160, n)):
        on = (k >= lo) & (k < hi)
        assert on.sum() >= (hi - lo) - 2, (lo, hi)
        assert err[on].max() < 0.004, (lo, hi)


def test_irregular_streams_keep_their_timestamps(prefix: str) -> None:
    outlet = _outlet(prefix, "RESP", pylsl.IRREGULAR_RATE)
    with IngestSession(SessionMatch(source_id_prefix=prefix)) as session:
        assert session.wait_for(["RESP"], 15)
        acq = session.by_type("RESP")
        assert acq is not None and acq.buffer is not None
        time.sleep(0.3)
        t0 = pylsl.local_clock()
        sent = t0 + np.cumsum(np.random.default_rng(2).exponential(0.05, 40))
        outlet.push_chunk(np.arange(40, dtype=np.float32)[:, None], sent.tolist())
        deadline = time.monotonic() + 5
        while acq.health.samples < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        _, stamps = acq.buffer.latest(40)
    assert (acq.health.gaps, acq.health.clock_steps) == (0, 0)
    # clock-corrected only (the same machine: the offset is a few microseconds at most)
    np.testing.assert_allclose(stamps, sent, rtol=0, atol=1e-3)
    assert np.ptp(stamps - sent) < 1e-9  # one offset for all, nothing smoothed


@pytest.fixture
def prefix(session_name: str) -> str:
    return session_name
