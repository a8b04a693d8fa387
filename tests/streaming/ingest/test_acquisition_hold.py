"""Samples nobody waits for yet stay in liblsl and come in one pull (#16): with a wish
(:meth:`StreamAcquirer.want`) the acquirer puts off pulls whose queued samples cannot reach it, at
most ``hold_s``, and pulls in the round the samples reaching it arrive. Real outlet and inlet on
loopback; the pusher stamps its samples at 128 Hz like a device."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pylsl
import pytest
from _wait import wait

from affectstream.streaming.ingest.acquisition import HOLD_MAX_S, AcquisitionLoop, StreamAcquirer
from affectstream.streaming.ingest.health import StreamState
from affectstream.streaming.lsl.inlet import Inlet, StreamDescription, local_clock

pytestmark = [pytest.mark.lsl]

SRATE = 128.0
CHUNK = 4  # samples per push: one push every 31.25 ms, as the benchmark's pusher does


class Device:
    """An outlet pushing ``CHUNK`` samples at a time, stamped on a 128 Hz grid from ``t0``."""

    def __init__(self, name: str) -> None:
        info = pylsl.StreamInfo(name, "EEG", 2, SRATE, "float32", f"{name}-hold")
        self.outlet = pylsl.StreamOutlet(info)
        self.sent = 0
        self.t0 = local_clock()
        found = pylsl.resolve_byprop("source_id", f"{name}-hold", timeout=10)
        assert found, "the outlet was not found on loopback"
        self.description = StreamDescription.from_info(found[0])

    def push(self) -> float:
        """Push the next chunk; returns the time it makes the stream complete to."""
        k = self.sent + np.arange(CHUNK)
        x = np.stack([k, -k], axis=1).astype(np.float32)
        self.outlet.push_chunk(x, (self.t0 + k / SRATE).tolist())
        self.sent += CHUNK
        return float(self.t0 + self.sent / SRATE)

    def stream_for(self, seconds: float, between: Callable[[], None] = lambda: None) -> None:
        for _ in range(round(seconds * SRATE / CHUNK)):
            self.push()
            between()
            time.sleep(CHUNK / SRATE)


_wait = functools.partial(wait, seconds=10.0)


@pytest.fixture
def acquire(session_name: str) -> Iterator[Callable[..., tuple[Device, StreamAcquirer]]]:
    made: list[StreamAcquirer] = []

    def make(hold_s: float | None = None) -> tuple[Device, StreamAcquirer]:
        device = Device(session_name)
        inlet = Inlet(device.description)
        inlet.open(timeout=10)
        acq = StreamAcquirer(
            device.description, loop=AcquisitionLoop(period_s=0.005), hold_s=hold_s
        )
        acq.start(inlet)
        made.append(acq)
        device.push()
        _wait(lambda: acq.health.samples == CHUNK, "the first chunk stored")
        return device, acq

    yield make
    for acq in made:
        acq.stop()


def test_without_a_wish_every_chunk_is_pulled_as_it_comes(acquire: Callable[..., Any]) -> None:
    device, acq = acquire()
    assert acq.hold_s == HOLD_MAX_S  # half the stale time of a 128 Hz stream (0.25 s), capped
    device.stream_for(1.0)
    _wait(lambda: acq.health.samples == device.sent, "every sample stored")
    assert acq.health.chunks >= 0.8 * device.sent / CHUNK  # about one pull per push
    assert acq.held == 0


def test_with_a_wish_ahead_chunks_are_pulled_together_and_none_is_lost(
    acquire: Callable[..., Any],
) -> None:
    device, acq = acquire()
    inlet = acq._inlet
    assert inlet is not None
    looked = [0]
    queued = inlet.queued

    def counted() -> int:
        looked[0] += 1
        return queued()

    inlet.queued = counted  # type: ignore[method-assign]  # the real inlet; counts the rounds that look at it
    acq.want(local_clock() + 60.0)  # a window end far ahead: nothing reaches it
    chunks = acq.health.chunks
    device.stream_for(1.5)
    _wait(lambda: acq.health.samples == device.sent, "every sample stored")
    pushes, pulls = (device.sent - CHUNK) / CHUNK, acq.health.chunks - chunks
    # one pull per hold_s (0.125 s) at most: ~12 over 1.5 s instead of the 48 pushes
    assert pulls <= 1.5 / acq.hold_s + 4, (pulls, pushes)
    # and the loop (a round every 5 ms: ~300 in 1.5 s) leaves the stream alone while it holds
    assert looked[0] <= 3 * (1.5 / acq.hold_s + 4), looked[0]
    # held samples are the stream's: every value and stamp in order, and the stream stayed ok
    assert acq.buffer is not None
    x, t = acq.buffer.read_range(device.t0 - 1.0, device.t0 + 60.0)
    np.testing.assert_array_equal(x[:, 0], np.arange(device.sent))
    assert np.all(np.diff(t) > 0)
    assert acq.health.state == StreamState.OK


def test_the_chunk_that_reaches_the_wish_is_pulled_at_once(acquire: Callable[..., Any]) -> None:
    # a hold far longer than the test: only reaching the wish can make the acquirer pull
    device, acq = acquire(hold_s=30.0)
    end = device.t0 + (device.sent + 5 * CHUNK) / SRATE  # complete after five more pushes
    acq.want(end)
    stored = acq.health.samples
    for _ in range(4):  # these end a chunk short of it (more than 20 ms): they stay in liblsl
        device.push()
        time.sleep(0.05)
    assert acq.health.samples == stored
    assert device.push() == pytest.approx(end)  # the fifth completes the stream to the wish
    pushed = time.monotonic()
    _wait(lambda: acq.health.samples == device.sent, "the chunk completing the wish", seconds=5)
    assert time.monotonic() - pushed < 2  # long before the hold would have ended (4 s: half
    # the inlet's 1024-sample array at 128 Hz)
    assert acq.buffer is not None and (span := acq.buffer.time_span()) is not None
    assert span[1] + 1 / SRATE == pytest.approx(end)  # complete to the wish
