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
        )

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
) -> int:
    """The replays' clock: push ``pl`` through ``outlets`` in real time (see the module docstring).

    Sample *k* of the play list is stamped ``t0 + k / rate`` and pushed once that time has come;
    a marker at play-list position *p* carries ``t0 + p / rate``. Returns the samples pushed per
    stream.
    """
    stop = stop or threading.Event()
    if wait_for_consumers > 0:
        deadline = time.monotonic() + wait_for_consumers
        for outlet in [*outlets, marker_outlet]:
            outlet.wait_for_consumers(max(0.0, deadline - time.monotonic()))
    total = pl.n_samples
    t0 = local_clock()
    k = 0  # samples pushed since t0, across loops
    next_marker = 0  # index into the (conceptually repeated) marker list
    n_markers = len(pl.markers)
    while not stop.is_set():
        elapsed = (local_clock() - t0) * rate  # in samples
        due = int(np.floor(elapsed)) + 1  # samples whose time t0 + k/rate has come
        if not loop:
            due = min(due, total)
        # A marker at play-list position p carries t0 + p/rate and goes out once that time has
        # come; trial_start goes out before the trial's first sample.
        while n_markers and (loop or next_marker < n_markers):
            rep, j = divmod(next_marker, n_markers)
            pos, payload = pl.markers[j]
            p = rep * total + pos
            if p > elapsed:
                break
            push_marker(t0 + p / rate, payload)
            next_marker += 1
        while k < due:  # a chunk never crosses the end of the play list (loop wrap)
            start = k % total
            end = min(total, start + (due - k))
            last_ts = t0 + (k + end - start - 1) / rate
            for outlet, data in zip(outlets, pl.streams, strict=True):
                outlet.push_chunk(data[start:end], last_ts)
            k += end - start
            if on_chunk is not None:
                on_chunk(last_ts, local_clock())
        if progress is not None:
            progress(k)
        if not loop and k >= total and next_marker >= n_markers:
            stop.wait(linger_s)
            break
        time.sleep(chunk_s)
    return k
