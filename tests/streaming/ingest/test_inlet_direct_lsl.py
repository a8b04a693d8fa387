"""The inlet's direct pull (#16): arguments built once per inlet, liblsl called without pylsl's
per-call Python; ``has_queued`` and ``local_clock`` through the same library keeping the GIL.
Real outlets and inlets on loopback, every numeric format the service takes."""

from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest

from affectstream.streaming.lsl.inlet import Inlet, StreamDescription, StreamLostError, local_clock

pytestmark = [pytest.mark.lsl]


def _open(session_name: str, fmt: str, channels: int) -> tuple[pylsl.StreamOutlet, Inlet]:
    source = f"{session_name}-{fmt}"
    info = pylsl.StreamInfo(session_name, "EEG", channels, 128.0, fmt, source)
    outlet = pylsl.StreamOutlet(info)
    found = pylsl.resolve_byprop("source_id", source, timeout=10)
    assert found, "the outlet was not found on loopback"
    inlet = Inlet(StreamDescription.from_info(found[0]), max_chunk=64)
    inlet.open(timeout=10)
    return outlet, inlet


def _pull_until(inlet: Inlet, n: int) -> tuple[np.ndarray, np.ndarray]:
    data, stamps = [], []
    deadline = time.monotonic() + 10
    while sum(len(t) for t in stamps) < n:
        assert time.monotonic() < deadline, "samples never arrived"
        x, t = inlet.pull(timeout=0.0)
        data.append(x.copy())  # a view into the inlet's buffer: copy before the next pull
        stamps.append(t)
        time.sleep(0.005)
    return np.concatenate(data), np.concatenate(stamps)


@pytest.mark.parametrize(
    ("fmt", "dtype"),
    [("float32", np.float32), ("double64", np.float64), ("int16", np.int16), ("int32", np.int32)],
)
def test_the_direct_pull_returns_what_was_pushed(session_name: str, fmt: str, dtype: type) -> None:
    outlet, inlet = _open(session_name, fmt, 3)
    try:
        assert not inlet.has_queued()
        x, t = inlet.pull(timeout=0.0)
        assert x.shape == (0, 3) and t.shape == (0,)
        sent = (np.arange(100 * 3).reshape(100, 3) % 1000).astype(dtype)
        t0 = local_clock()
        stamps = t0 + np.arange(100) / 128.0
        for k in range(0, 100, 10):  # ten chunks, more than one pull's worth between pulls
            outlet.push_chunk(sent[k : k + 10], stamps[k : k + 10].tolist())
        deadline = time.monotonic() + 10
        while not inlet.has_queued():
            assert time.monotonic() < deadline, "has_queued never saw the samples"
            time.sleep(0.002)
        got, ts = _pull_until(inlet, 100)
        assert got.dtype == dtype and got.shape == (100, 3)
        np.testing.assert_array_equal(got, sent)
        # clock sync only: the stamps as pushed (same machine, offset ~0)
        np.testing.assert_allclose(ts, stamps, atol=1e-3)
        assert not inlet.has_queued()
        # the timestamps returned are the caller's to keep: the next pull does not overwrite them
        outlet.push_chunk(sent[:5], (stamps[-1] + 1 + np.arange(5) / 128.0).tolist())
        _, ts2 = _pull_until(inlet, 5)
        np.testing.assert_allclose(ts, stamps, atol=1e-3)
        assert ts2[0] > ts[-1]
    finally:
        inlet.close()
        del outlet


def test_a_lost_outlet_raises_from_the_direct_pull(session_name: str) -> None:
    outlet, inlet = _open(session_name, "float32", 2)
    outlet.push_chunk(np.ones((4, 2), np.float32))
    _pull_until(inlet, 4)
    del outlet
    deadline = time.monotonic() + 15
    error: StreamLostError | None = None
    while error is None and time.monotonic() < deadline:
        try:
            inlet.pull(timeout=0.0)
        except StreamLostError as e:
            error = e
        time.sleep(0.01)
    inlet.close()
    assert error is not None and "stream lost" in str(error)


def test_the_lsl_clock_is_pylsls() -> None:
    a, b, c = pylsl.local_clock(), local_clock(), pylsl.local_clock()
    assert a <= b <= c and c - a < 0.1
