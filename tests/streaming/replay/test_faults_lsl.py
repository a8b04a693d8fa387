"""Each fault as an inlet on loopback sees it: the player's pushes with faults, over real LSL.

The replay is a PMEmo replay of one synthetic song (one GSR outlet + markers) played in this
process at 100 samples per second; a raw inlet (no post-processing: the timestamps as pushed)
reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pylsl
import pytest

from affectstream.streaming.lsl.inlet import local_clock
from affectstream.streaming.replay.faults import parse_faults
from affectstream.streaming.replay.player import ReplayEvent
from affectstream.streaming.replay.pmemo import PmemoReplay

pytestmark = [pytest.mark.lsl]

RATE = 100.0  # 50 Hz × speed 2


@dataclass(frozen=True)
class Song:
    music_id: int
    eda: np.ndarray
    valence: float = 0.5
    arousal: float = 0.5


@dataclass
class Received:
    values: list[float] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # local_clock per pulled chunk
    chunk_sizes: list[int] = field(default_factory=list)
    lost_at: list[float] = field(default_factory=list)
    back_at: list[float] = field(default_factory=list)
    markers: list[ReplayEvent] = field(default_factory=list)

    @property
    def ts(self) -> np.ndarray:
        return np.asarray(self.stamps)

    @property
    def x(self) -> np.ndarray:
        return np.asarray(self.values)


def _open(
    resolver: pylsl.ContinuousResolver, timeout: float = 10.0, not_uid: str = ""
) -> pylsl.StreamInlet:
    """An inlet on the stream ``resolver`` sees (not the outlet ``not_uid``, which has gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in resolver.results():
            if info.uid() == not_uid:
                continue
            inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False, processing_flags=0)
            try:
                inlet.open_stream(timeout=1.0)
            except (pylsl.util.LostError, pylsl.util.TimeoutError):
                continue
            return inlet
        time.sleep(0.05)
    raise AssertionError(f"no stream found within {timeout} s")


@contextmanager
def _playing(spec: str, session: str, seed: int = 0) -> Iterator[tuple[PmemoReplay, Received]]:
    """Play a ramp 0, 1, 2 … (one value per sample, so a sample says its position) with ``spec``;
    yields the replay and what a raw inlet on its GSR outlet received so far (pulled in a
    thread that re-opens the inlet after a restart)."""
    song = Song(1, np.arange(1, 6001, dtype=np.float64))
    got = Received()
    replay = PmemoReplay(
        "100001", [song], session=session, speed=2.0, loop=True, on_event=got.markers.append
    )
    replay.faults = parse_faults(spec)
    replay.faults_seed = seed
    replay.open()
    resolver = pylsl.ContinuousResolver(prop="source_id", value=f"{session}-GSR", forget_after=1.0)
    inlet: pylsl.StreamInlet | None = _open(resolver)
    uid = inlet.info().uid()
    stop = threading.Event()

    def pull() -> None:
        nonlocal inlet, uid
        while not stop.is_set():
            if inlet is None:
                try:
                    inlet = _open(resolver, timeout=1.0, not_uid=uid)
                except AssertionError:
                    continue
                uid = inlet.info().uid()
                got.back_at.append(local_clock())
            try:
                data, ts = inlet.pull_chunk(timeout=0.02)
            except (pylsl.util.LostError, pylsl.util.TimeoutError):  # gone, or broke off mid-pull
                got.lost_at.append(local_clock())
                inlet = None
                continue
            if ts:
                got.values.extend(v[0] for v in data)
                got.stamps.extend(ts)
                got.arrivals.append(local_clock())
                got.chunk_sizes.append(len(ts))

    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    player = threading.Thread(target=replay.run, args=(stop,), daemon=True)
    player.start()
    try:
        yield replay, got
    finally:
        stop.set()
        player.join(5)
        puller.join(5)
        inlet = None
        replay.close()


def _t0(got: Received) -> float:
    """The clock's start: the first trial_start marker goes out at position 0."""
    return next(m.timestamp for m in got.markers if m.payload["event"] == "trial_start")


def _grid(got: Received) -> np.ndarray:
    """Each received sample's timestamp minus where it would be without faults (value v is
    position v − 1, stamped t0 + (v − 1) / RATE)."""
    return got.ts - (_t0(got) + (got.x - 1) / RATE)


def test_drop_leaves_gaps_where_the_samples_were(session_name: str) -> None:
    with _playing("drop=0.05,drop-run=0.1s", session_name) as (replay, got):
        time.sleep(5)
    x = got.x
    assert replay.injector is not None and replay.injector.dropped[0] > 0
    jumps = np.diff(x)
    assert set(np.unique(jumps[jumps != 1])) and jumps.min() == 1
    assert (jumps > 1).sum() >= 3  # runs of 10 samples are gone
    assert np.all(jumps[jumps > 1] >= 11)
    np.testing.assert_allclose(_grid(got), 0, atol=1e-6)  # the rest keep their timestamps
    dt = np.diff(got.ts)
    assert (dt > 2.5 / RATE).sum() == (jumps > 1).sum()  # each run: one gap in the timestamps


def test_nan_arrives_as_nan(session_name: str) -> None:
    with _playing("nan=0.1,nan-run=0.1s", session_name) as (replay, got):
        time.sleep(4)
    bad = np.isnan(got.x)
    assert replay.injector is not None
    assert 0 < bad.sum() <= replay.injector.nan[0]
    assert 0.02 < bad.mean() < 0.3
    assert len(got.ts) > 300  # every sample arrives, on its grid
    np.testing.assert_allclose(np.diff(got.ts), 1 / RATE, atol=1e-6)


def test_jitter_moves_timestamps_within_the_bound(session_name: str) -> None:
    with _playing("jitter=3ms", session_name) as (_, got):
        time.sleep(3)
    err = _grid(got)
    assert len(err) > 200
    assert np.abs(err).max() <= 0.0031 and err.std() > 0.001
    np.testing.assert_array_equal(np.diff(got.x), 1)  # nothing lost


def test_clock_step_shifts_data_and_markers_once(session_name: str) -> None:
    with _playing("clock-step=0.5s,clock-step-at=1.5s", session_name) as (_, got):
        time.sleep(3.5)
    dt = np.diff(got.ts)
    big = np.flatnonzero(dt > 0.1)
    assert len(big) == 1 and dt[big[0]] == pytest.approx(0.5 + 1 / RATE, abs=1e-6)
    assert got.x[big[0] + 1] - 1 == 150  # the step is at 1.5 s of play: sample 150
    assert np.all(np.diff(got.x) == 1)
    running = [m for m in got.markers if m.payload["event"] != "trial_start"]
    start = next(m for m in got.markers if m.payload["event"] == "trial_start")
    assert start.timestamp == pytest.approx(got.ts[0] - (got.x[0] - 1) / RATE, abs=1e-6)
    # trial_running every 5 s of 50 Hz data = 2.5 s of play at speed 2: after the step
    assert running and running[0].timestamp - start.timestamp == pytest.approx(2.5 + 0.5)


def test_negative_clock_step_sends_timestamps_backwards(session_name: str) -> None:
    with _playing("clock-step=-0.5s,clock-step-at=1s", session_name) as (_, got):
        time.sleep(2.5)
    dt = np.diff(got.ts)
    assert (dt < 0).sum() == 1 and dt.min() == pytest.approx(-0.5 + 1 / RATE, abs=1e-6)


def test_restart_destroys_the_outlet_and_it_comes_back(session_name: str) -> None:
    with _playing("restart=4s,restart-down=1s", session_name) as (replay, got):
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and not (got.back_at and got.x[-1] > 6.2 * RATE):
            time.sleep(0.1)
    assert replay.injector is not None and replay.injector.restarts >= 1
    assert got.lost_at and got.back_at, "the inlet did not see the outlet go and come back"
    assert got.back_at[0] > got.lost_at[0]
    pos = got.x - 1
    # every sample up to the restart at 4 s of play arrived, none of those due while the outlets
    # were down (4-5 s) did, and data flow again after (from the moment this inlet found the
    # new outlet)
    np.testing.assert_array_equal(pos[pos < 390], np.arange(390))
    assert not np.any((pos > 402) & (pos < 500))
    assert np.sum(pos >= 500) > 0.5 * RATE  # 5-6.2 s: up to 120


def test_stall_holds_everything_then_delivers_it_late_but_complete(session_name: str) -> None:
    with _playing("stall=1s,stall-every=2s", session_name) as (replay, got):
        time.sleep(3.6)
    assert replay.injector is not None and replay.injector.stalls >= 1
    np.testing.assert_array_equal(np.diff(got.x), 1)  # nothing lost
    np.testing.assert_allclose(_grid(got), 0, atol=1e-6)  # timestamps as without the stall
    pauses = np.diff(got.arrivals)
    assert pauses.max() == pytest.approx(1.0, abs=0.25)  # nothing arrived for ~1 s
    burst = got.chunk_sizes[int(np.argmax(pauses)) + 1]
    assert burst >= 0.7 * RATE  # then the backlog at once
