"""The acquisition loop (one thread pulling every stream, #16): a stream whose pull hangs or
fails never stops the others' samples. Inlets are stand-ins (no LSL), so a pull can be made to
block for as long as the test wants."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _wait import wait

from affectstream.streaming.ingest.acquisition import AcquisitionLoop, StreamAcquirer
from affectstream.streaming.ingest.health import StreamState
from affectstream.streaming.lsl.inlet import StreamDescription, StreamLostError, local_clock


def _stream(kind: str) -> StreamDescription:
    return StreamDescription(
        name=f"test {kind}",
        type=kind,
        source_id=f"loop-test-{kind}",
        hostname="here",
        channel_count=1,
        nominal_srate=128.0,
        channel_format="float32",
        uid=f"uid-{kind}",
    )


class FakeInlet:
    """An open inlet: each pull returns one sample stamped now, or runs ``on_pull`` instead."""

    def __init__(self, on_pull: Callable[[], None] | None = None) -> None:
        self.on_pull = on_pull
        self.closed = False
        self.k = 0

    def queued(self) -> int:
        return 1  # always a sample (or on_pull) waiting

    def pull(self, timeout: float = 0.0) -> tuple[Any, Any]:
        assert timeout == 0.0  # the loop never waits on an inlet
        if self.on_pull is not None:
            self.on_pull()
        self.k += 1
        return np.full((1, 1), self.k, np.float32), np.array([local_clock()])

    def time_correction(self, timeout: float = 2.0) -> float:
        return 0.0

    def close(self) -> None:
        self.closed = True


_wait = functools.partial(wait, seconds=15.0, poll_s=0.005)


@pytest.fixture
def loop() -> AcquisitionLoop:
    return AcquisitionLoop(period_s=0.002, hang_s=0.2)


def test_a_pull_that_hangs_does_not_stop_the_other_streams(loop: AcquisitionLoop) -> None:
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait(60)

    states: list[tuple[str, StreamState]] = []
    on_state = lambda acq, st: states.append((acq.stream.type, st))  # noqa: E731
    good = StreamAcquirer(_stream("PPG"), loop=loop, on_state=on_state)
    hung = StreamAcquirer(_stream("GSR"), loop=loop, on_state=on_state, find_stream=lambda k: None)
    good.start(FakeInlet())
    _wait(lambda: good.health.samples > 0, "the good stream's first sample")
    hung_inlet = FakeInlet(hang)
    hung.start(hung_inlet)
    try:
        _wait(entered.is_set, "the hung stream's pull")
        before = good.health.samples
        # while that pull is still blocked, the other stream's samples keep coming
        _wait(lambda: good.health.samples >= before + 100, "samples after the hang")
        _wait(lambda: hung.health.state == StreamState.LOST, "the hung stream marked lost")
        assert not release.is_set() and hung_inlet.k == 0  # its pull has not returned
        assert "blocked" in hung.health.reason and loop.replaced == 1
        assert good.running and good.error is None and good.health.state == StreamState.OK
    finally:
        release.set()
    # the pull returned: its inlet is dropped, and the stream is looked for again
    _wait(lambda: hung_inlet.closed and hung.running, "the hung stream back in the loop")
    good.stop()
    hung.stop()
    assert not good.running and not hung.running
    assert ("GSR", StreamState.LOST) in states and ("PPG", StreamState.OK) in states


def test_a_pull_that_fails_ends_only_its_own_stream(loop: AcquisitionLoop) -> None:
    def fail() -> None:
        raise RuntimeError("liblsl said no")

    good = StreamAcquirer(_stream("PPG"), loop=loop)
    bad = StreamAcquirer(_stream("GSR"), loop=loop)
    good.start(FakeInlet())
    bad.start(FakeInlet(fail))
    try:
        _wait(lambda: bad.error is not None, "the failure recorded")
        before = good.health.samples
        _wait(lambda: good.health.samples >= before + 100, "samples after the failure")
        assert bad.error == "RuntimeError: liblsl said no" and not bad.running
        assert bad.health.state == StreamState.LOST and "acquisition failed" in bad.health.reason
        assert good.running and good.error is None
    finally:
        good.stop()
        bad.stop()


def test_a_stream_that_stops_goes_stale_while_the_others_flow(loop: AcquisitionLoop) -> None:
    flowing = threading.Event()
    flowing.set()
    stalled = FakeInlet()
    pull = stalled.pull

    def maybe_pull(timeout: float = 0.0) -> tuple[Any, Any]:
        if flowing.is_set():
            return pull(timeout)
        return np.empty((0, 1), np.float32), np.empty(0)

    stalled.pull = maybe_pull  # type: ignore[method-assign]
    good = StreamAcquirer(_stream("PPG"), loop=loop)
    quiet = StreamAcquirer(_stream("GSR"), loop=loop)
    good.start(FakeInlet())
    quiet.start(stalled)
    try:
        _wait(lambda: quiet.health.samples > 0 and good.health.samples > 0, "both streams")
        flowing.clear()
        _wait(lambda: quiet.health.state == StreamState.STALE, "the quiet stream stale")
        before = good.health.samples
        _wait(lambda: good.health.samples >= before + 100, "samples while the other is stale")
        assert good.health.state == StreamState.OK
    finally:
        good.stop()
        quiet.stop()


class QuietInlet(FakeInlet):
    """Nothing queued, ever; counts the pulls it gets anyway and can be made to report a loss."""

    def __init__(self) -> None:
        super().__init__()
        self.pulls = 0
        self.lost = False

    def queued(self) -> int:
        return 0  # even when lost: the acquirer's own silence pulls must catch it

    def pull(self, timeout: float = 0.0) -> tuple[Any, Any]:
        self.pulls += 1
        if self.lost:
            raise StreamLostError("quiet: stream lost")
        return np.empty((0, 1), np.float32), np.empty(0)


def test_an_empty_inlet_is_asked_not_pulled_and_a_loss_is_still_caught(
    loop: AcquisitionLoop,
) -> None:
    """#16: the loop asks liblsl whether anything is queued (~0.5 µs) before it pulls (~7 µs);
    a silent stream is pulled once per health tick (``poll_s``), which is also how a lost outlet
    that liblsl did not report as queued is found."""
    quiet = QuietInlet()
    acq = StreamAcquirer(_stream("GSR"), loop=loop, poll_s=0.05, find_stream=lambda k: None)
    acq.start(quiet)
    try:
        t0 = time.monotonic()
        time.sleep(0.5)
        seconds = time.monotonic() - t0
        rounds = seconds / loop.period_s  # the loop stepped the stream ~250 times
        # about one pull per 50 ms tick (10), far from one per 2 ms round (250)
        assert 3 <= quiet.pulls <= seconds / 0.05 + 3 < rounds / 5, (quiet.pulls, rounds)
        quiet.lost = True
        _wait(lambda: acq.health.state == StreamState.LOST, "the loss found by a silence pull")
        assert "stream lost" in acq.health.reason and quiet.closed
    finally:
        acq.stop()


def test_a_liblsl_reporting_no_queue_count_is_not_held(loop: AcquisitionLoop) -> None:
    """liblsl before 1.16 says 0 or 1 instead of how many samples it queues: the acquirer would
    hold every chunk completing a window. After three pulls returning more than the count said,
    the stream is pulled as it comes."""

    class OneOrNone(FakeInlet):
        max_chunk = 1024

        def queued(self) -> int:
            return 1

        def pull(self, timeout: float = 0.0) -> tuple[Any, Any]:
            self.k += 4
            t = local_clock() - np.arange(4)[::-1] / 128.0
            return np.full((4, 1), self.k, np.float32), t

    acq = StreamAcquirer(_stream("PPG"), loop=loop)
    acq.want(local_clock() + 3600.0)  # far ahead: a counting liblsl would hold
    acq.start(OneOrNone())
    try:
        _wait(lambda: not acq._counts, "the missing count noticed")
        pulled = acq.health.chunks
        time.sleep(0.1)  # rounds every 2 ms: pulled at each, not once per hold_s (0.125 s)
        assert acq.health.chunks - pulled >= 10
    finally:
        acq.stop()
