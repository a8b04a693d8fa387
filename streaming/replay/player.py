"""The one player behind every replay: a play list pushed through LSL outlets on one clock.

A format adapter (:mod:`.deap`, :mod:`.pmemo`) turns a recording into a :class:`PlayList`: the
outlets to open (:class:`~affectstream.streaming.lsl.outlet.OutletSpec`), one array per outlet with
the chosen trials back to back, the markers at their play-list positions. :class:`Player` opens the
outlets and runs :func:`play`, the clock.

Timing. Sample *k* of the play list is stamped ``t0 + k / rate`` on the LSL clock and pushed once
that time has come, so data arrive paced in real time; ``rate`` is the data's rate times the
playback speed. A marker at play-list position *p* carries ``t0 + p / rate`` and goes out before
the sample at *p*.

Markers are JSON objects. Every trial gets ``trial_start`` at its first sample, ``trial_end`` at
the instant after its last, and every ``running_every_s`` in between a ``trial_running`` that
repeats the trial's fields, so a consumer attaching mid-trial learns them. Ratings travel with
their scale (``"rating_scale": [low, high]``), so a consumer needs no knowledge of the dataset to
tell a high rating from a low one.

Faults. With ``faults`` set (a :class:`~affectstream.streaming.replay.faults.FaultSpec`), the
clock injects them as it plays: dropped or NaN samples, jittered or stepped timestamps, producer
restarts (every outlet destroyed and re-created), stalls (docs/faults.md). They are injected here,
in the one player, so every adapter gets them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.lsl.inlet import local_clock
from affectstream.streaming.lsl.outlet import (
    IRREGULAR_RATE,
    ChannelDesc,
    Outlet,
    OutletSpec,
    open_outlet,
)
from affectstream.streaming.replay.faults import FaultInjector, FaultSpec

__all__ = [
    "MARKER_TYPE",
    "PlayList",
    "Player",
    "ReplayEvent",
    "marker_outlet_spec",
    "play",
    "trial_markers",
]

MARKER_TYPE = "Markers"


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """A marker the replay publishes (also handed to ``on_event`` for printing)."""

    timestamp: float
    payload: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.payload, separators=(",", ":"))


@dataclass
class PlayList:
    """What a replay plays: per data outlet its spec and its samples (float32, C-contiguous,
    ``(n_samples, n_channels)``, the trials back to back), the marker outlet, and the markers
    as (play-list position, payload), sorted by position."""

    outlets: list[OutletSpec]
    streams: list[NDArray[np.float32]]
    marker_outlet: OutletSpec
    markers: list[tuple[int, dict[str, Any]]]
    n_samples: int


def marker_outlet_spec(
    session: str, desc: Mapping[str, str], groups: Mapping[str, Mapping[str, str]]
) -> OutletSpec:
    """The JSON marker outlet of a replay session (``source_id`` ``<session>-Markers``)."""
    return OutletSpec(
        name=f"{session} {MARKER_TYPE}",
        type=MARKER_TYPE,
        source_id=f"{session}-{MARKER_TYPE}",
        srate=IRREGULAR_RATE,
        fmt="string",
        channels=(ChannelDesc("event", "Markers", "json"),),
        desc=desc,
        groups=groups,
    )


def trial_markers(
    position: int,
    n_samples: int,
    fields: dict[str, Any],
    srate: float,
    running_every_s: float,
    start_fields: Mapping[str, Any] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The markers of one trial of ``n_samples`` at play-list ``position``: ``trial_start``
    (with ``fields`` and ``start_fields``), ``trial_running`` every ``running_every_s`` seconds
    of data (with ``elapsed_s``; none if 0) and ``trial_end``."""
    out = [(position, {"event": "trial_start", **fields, **(start_fields or {})})]
    every = round(running_every_s * srate)
    for k in range(every, n_samples, every) if every > 0 else ():
        out.append((position + k, {"event": "trial_running", **fields, "elapsed_s": k / srate}))
    out.append((position + n_samples, {"event": "trial_end", **fields}))
    return out


class Player:
    """Opens a play list's outlets and plays it; the replays are adapters that build the list.

    Subclasses set ``_playlist`` and ``rate`` (samples per second of wall time) and the playing
    options ``loop``, ``chunk_s``, ``linger_s``, ``on_event`` and ``on_chunk``.

    Every replay may also be given, before :meth:`run`, ``faults`` (a
    :class:`~affectstream.streaming.replay.faults.FaultSpec`), ``faults_seed`` and ``on_fault``
    (called with a line of text when a restart, stall or clock step happens); after a run,
    ``injector.report()`` says what was injected.
    """

    _playlist: PlayList
    _outlets: list[Outlet]
    _marker_outlet: Outlet | None
    rate: float
    loop: bool
    chunk_s: float
    linger_s: float
    samples_pushed: int
    on_event: Callable[[ReplayEvent], None] | None
    on_chunk: Callable[[float, float], None] | None
    faults: FaultSpec | None = None
    faults_seed: int = 0
    on_fault: Callable[[str], None] | None = None
    injector: FaultInjector | None = None

    def open(self) -> None:
        """Create the outlets (they become visible to resolvers now)."""
        if self._outlets:
            return
        self._outlets.extend(open_outlet(spec) for spec in self._playlist.outlets)
        self._marker_outlet = open_outlet(self._playlist.marker_outlet)

    @property
    def source_ids(self) -> dict[str, str]:
        """Stream type → ``source_id`` of every outlet."""
        specs = [*self._playlist.outlets, self._playlist.marker_outlet]
        return {s.type: s.source_id for s in specs}

    def close(self) -> None:
        """Destroy the outlets; inlets see the streams go away."""
        self._outlets.clear()
        self._marker_outlet = None

    def run(self, stop: threading.Event | None = None, *, wait_for_consumers: float = 0.0) -> int:
        """Play until the play list ends (or forever with ``loop``) or ``stop`` is set.

        ``wait_for_consumers`` > 0 waits up to that many seconds for an inlet on every outlet
        before the clock starts, so a listener started alongside misses nothing.
        Returns the number of samples pushed per stream.
        """
        self.open()
        assert self._marker_outlet is not None
        self.injector = None
        if self.faults is not None and self.faults.active:
            self.injector = FaultInjector(
                self.faults, self.faults_seed, self.rate, len(self._playlist.streams)
            )
        return play(
            self._outlets,
            self._marker_outlet,
            self._playlist,
            self.rate,
            stop=stop,
            loop=self.loop,
            chunk_s=self.chunk_s,
            linger_s=self.linger_s,
            wait_for_consumers=wait_for_consumers,
            push_marker=self._push_marker,
            on_chunk=self.on_chunk,
            progress=self._progress,
            faults=self.injector,
            reopen=self._reopen,
            on_fault=self.on_fault,
        )

    def _reopen(self, up: bool) -> Sequence[Outlet]:
        """A producer restart: destroy every outlet (``up`` False) or create them again."""
        if not up:
            self.close()
            return ()
        self.open()
        return self._outlets

    def _progress(self, k: int) -> None:
        self.samples_pushed = k

    def _push_marker(self, timestamp: float, payload: dict[str, Any]) -> None:
        event = ReplayEvent(timestamp, payload)
        assert self._marker_outlet is not None
        self._marker_outlet.push_sample([event.to_json()], timestamp)
        if self.on_event is not None:
            self.on_event(event)


def play(
    outlets: Sequence[Outlet],
    marker_outlet: Outlet,
    pl: PlayList,
    rate: float,
    *,
    stop: threading.Event | None,
    loop: bool,
    chunk_s: float,
    linger_s: float,
    wait_for_consumers: float,
    push_marker: Callable[[float, dict[str, Any]], None],
    on_chunk: Callable[[float, float], None] | None = None,
    progress: Callable[[int], None] | None = None,
    faults: FaultInjector | None = None,
    reopen: Callable[[bool], Sequence[Outlet]] | None = None,
    on_fault: Callable[[str], None] | None = None,
) -> int:
    """The replays' clock: push ``pl`` through ``outlets`` in real time (see the module docstring).

    Sample *k* of the play list is stamped ``t0 + k / rate`` and pushed once that time has come;
    a marker at play-list position *p* carries ``t0 + p / rate``. Returns the samples pushed per
    stream (dropped samples included: the position the clock reached).

    ``faults`` injects faults (:class:`~affectstream.streaming.replay.faults.FaultInjector`); a
    restart calls ``reopen(False)`` (the caller destroys every outlet, the marker outlet included)
    and later ``reopen(True)`` (the caller re-creates them and returns the data outlets; markers
    keep going through ``push_marker``). ``on_fault`` hears of each restart, stall and clock step.
    """
    stop = stop or threading.Event()
    if wait_for_consumers > 0:
        deadline = time.monotonic() + wait_for_consumers
        for outlet in [*outlets, marker_outlet]:
            outlet.wait_for_consumers(max(0.0, deadline - time.monotonic()))
        del outlet
    # no reference to an outlet may outlive a restart here: liblsl destroys an outlet when its
    # last Python reference goes
    del marker_outlet
    outs: Sequence[Outlet] = outlets
    del outlets
    if faults is not None and faults.spec.restart and reopen is None:
        raise ValueError("a restart fault needs a reopen callback")

    def say(text: str) -> None:
        if on_fault is not None:
            on_fault(text)

    total = pl.n_samples
    t0 = local_clock()
    k = 0  # samples pushed since t0, across loops
    next_marker = 0  # index into the (conceptually repeated) marker list
    n_markers = len(pl.markers)
    restart_cycle, down, stall_no, steps = 0, False, 0, 0
    while not stop.is_set():
        wall = local_clock() - t0
        held = False
        if faults is not None:
            cycle, is_down = faults.restart_phase(wall)
            if is_down and not down and cycle != restart_cycle:
                assert reopen is not None
                restart_cycle, down = cycle, True
                faults.restarts += 1
                outs = ()
                reopen(False)
                say(f"fault: restart {cycle}: outlets destroyed at +{wall:.2f} s")
            elif down and not is_down:
                assert reopen is not None
                outs = reopen(True)
                down = False
                say(f"fault: restart {restart_cycle}: outlets back at +{wall:.2f} s")
            n_stall, held = faults.stalled(wall)
            if held and n_stall != stall_no:
                stall_no = n_stall
                faults.stalls += 1
                say(f"fault: stall {n_stall}: pushing nothing for {faults.spec.stall:g} s")
        elapsed = wall * rate  # in samples
        due = int(np.floor(elapsed)) + 1  # samples whose time t0 + k/rate has come
        if not loop:
            due = min(due, total)
        if down:  # the producer is restarting: what falls due meanwhile is lost
            k = max(k, due)
        elif not held:
            # A marker at play-list position p carries t0 + p/rate and goes out once that time
            # has come; trial_start goes out before the trial's first sample.
            while n_markers and (loop or next_marker < n_markers):
                rep, j = divmod(next_marker, n_markers)
                pos, payload = pl.markers[j]
                p = rep * total + pos
                if p > elapsed:
                    break
                shift = 0.0 if faults is None else faults.clock_offset(p)
                push_marker(t0 + p / rate + shift, payload)
                next_marker += 1
            while k < due:  # a chunk never crosses the end of the play list (loop wrap)
                start = k % total
                end = min(total, start + (due - k))
                last_ts = t0 + (k + end - start - 1) / rate
                _push_round(outs, pl.streams, start, end, k, last_ts, t0, faults)
                k += end - start
                if on_chunk is not None:
                    on_chunk(last_ts, local_clock())
            if faults is not None and faults.clock_steps != steps:
                steps = faults.clock_steps
                say(
                    f"fault: clock step {steps}: timestamps shifted by "
                    f"{steps * faults.spec.clock_step:+g} s"
                )
        if progress is not None:
            progress(k)
        if not loop and k >= total and next_marker >= n_markers:
            stop.wait(linger_s)
            break
        time.sleep(chunk_s)
    return k


def _push_round(
    outlets: Sequence[Outlet],
    streams: Sequence[NDArray[np.float32]],
    start: int,
    end: int,
    k: int,
    last_ts: float,
    t0: float,
    faults: FaultInjector | None,
) -> None:
    """One push round: play-list rows ``start:end`` (played position ``k``) to every outlet."""
    for i, (outlet, data) in enumerate(zip(outlets, streams, strict=True)):
        if faults is None:
            outlet.push_chunk(data[start:end], last_ts)
            continue
        got = faults.apply(i, k, data[start:end], t0)
        if got is not None:
            outlet.push_chunk(got[0], got[1].tolist())
