"""The inlet's direct pull (#16): arguments built once per inlet, liblsl called without pylsl's
per-call Python; ``queued`` and ``local_clock`` through the same library keeping the GIL.
Real outlets and inlets on loopback, every numeric format the service takes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pylsl
import pytest

from affectstream.streaming.lsl.inlet import (
    Inlet,
    StreamDescription,
    StreamDirectory,
    StreamLostError,
    local_clock,
)

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
        assert inlet.queued() == 0
        x, t = inlet.pull(timeout=0.0)
        assert x.shape == (0, 3) and t.shape == (0,)
        sent = (np.arange(100 * 3).reshape(100, 3) % 1000).astype(dtype)
        t0 = local_clock()
        stamps = t0 + np.arange(100) / 128.0
        for k in range(0, 100, 10):  # ten chunks, more than one pull's worth between pulls
            outlet.push_chunk(sent[k : k + 10], stamps[k : k + 10].tolist())
        deadline = time.monotonic() + 10
        while not inlet.queued():
            assert time.monotonic() < deadline, "queued never saw the samples"
            time.sleep(0.002)
        got, ts = _pull_until(inlet, 100)
        assert got.dtype == dtype and got.shape == (100, 3)
        np.testing.assert_array_equal(got, sent)
        # clock sync only: the stamps as pushed (same machine, offset ~0)
        np.testing.assert_allclose(ts, stamps, atol=1e-3)
        assert inlet.queued() == 0
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


def test_the_directory_keeps_a_seen_streams_description(session_name: str) -> None:
    """A listing reuses the description of an outlet it saw before (same uid) and describes a new
    one; an outlet that goes away leaves the listing (liblsl forgets it after ``forget_after``)."""
    directory = StreamDirectory()  # forgets a silent outlet after 3 s
    ka, kb = f"{session_name}-a", f"{session_name}-b"

    def mine() -> dict[str, StreamDescription]:
        return {s.source_id: s for s in directory.streams() if s.source_id in (ka, kb)}

    def wait_for(cond: Callable[[dict[str, StreamDescription]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while not cond(got := mine()):
            assert time.monotonic() < deadline, f"the listing never got there: {sorted(got)}"
            time.sleep(0.05)
        return got

    try:
        a = pylsl.StreamOutlet(pylsl.StreamInfo(session_name, "GSR", 1, 4.0, "float32", ka))
        first = wait_for(lambda g: ka in g)[ka]
        assert (first.type, first.nominal_srate, first.uid) == ("GSR", 4.0, a.get_info().uid())
        assert mine()[ka] is first  # not converted again
        b = pylsl.StreamOutlet(pylsl.StreamInfo(session_name, "BVP", 1, 64.0, "float32", kb))
        both = wait_for(lambda g: kb in g)
        assert both[ka] is first and both[kb].type == "BVP"
        del a
        assert wait_for(lambda g: ka not in g)[kb] is both[kb]
        # the same source again: another outlet (a new uid), so a new description
        a2 = pylsl.StreamOutlet(pylsl.StreamInfo(session_name, "GSR", 1, 8.0, "float32", ka))
        again = wait_for(lambda g: ka in g)[ka]
        assert again is not first and again.nominal_srate == 8.0
        assert again.uid == a2.get_info().uid()
        del b, a2
    finally:
        directory.close()
