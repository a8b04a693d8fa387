"""Replay an XDF recording (LabRecorder's files) as the live LSL session it was recorded from.

Every stream of the file (or those named by ``streams``) is republished as it was recorded: its own
name, type, channel count and format (``float32``, ``double64``, the integer formats, ``string``),
channel labels, units and types (``<desc><channels>``), the flat text fields of its ``<desc>``
(``manufacturer``, ``session`` …), and its samples, values unchanged. Marker streams are string
streams, republished with their own strings (not turned into affectstream's JSON markers); an
irregular stream stays irregular (``nominal_srate`` 0).

Timing. The file is read by :func:`affectstream.streaming.formats.xdf.read_xdf`: clock offsets
applied (every stream on the recording computer's clock), timestamps not dejittered (a sample
keeps the time it was recorded with). Time 0 of the replay is the earliest first sample across the
played streams; a sample recorded ``r`` seconds after it is stamped ``t0 + r / speed`` on the LSL
clock (``t0`` = the clock when the replay starts) and pushed once that time has come. So the
relative timing of all streams — a marker 2.0 s after the first EEG sample — is the file's, scaled
by ``1 / speed``. With ``speed`` ≠ 1 a regular stream declares ``nominal_srate = rate × speed`` so
that its timestamps and its declared rate agree (as the DEAP and PMEmo replays do); the description
keeps the recorded rate (``<replay><data_srate>``) and ``speed``. ``loop`` plays the file again
after its duration ``D`` (the last sample across streams, plus one sample period of a regular
stream): repetition ``n`` is stamped ``t0 + (n D + r) / speed``, timestamps keep increasing.

Identity (how the service finds the replay; docs/datasets.md#xdf-recordings):

- without ``session``, each stream keeps the ``source_id`` it was recorded with, so a service
  session matched on the lab's ``source_id`` prefixes (or types) serves the replay as it served
  the live session; a stream recorded without a ``source_id`` gets ``<session>-<TYPE>``, with
  ``session`` derived from the file's absolute path (``xdf-<stem>-<8 hex>``, stable across
  restarts);
- with ``session`` NAME, every stream gets ``source_id`` ``NAME-<TYPE>`` — the replays'
  convention, which ``serve --auto-attach`` groups into session NAME and ``--match
  source_id_prefix=NAME-`` matches.

Either way a ``source_id`` already taken by an earlier stream of the replay gets ``-2``, ``-3`` …
appended; each description's ``<session>`` is NAME if given, else the recorded ``<session>``, else
the derived name; ``<replay>`` holds the file, the recorded ``source_id`` and hostname, the
recorded rate and the speed. The recorded hostname cannot be replayed: liblsl stamps the
replaying machine's.

Not (yet) for XDF: fault injection (``--faults``); the one player's clock assumes one rate for all
streams, an XDF file has several.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.formats.xdf import XdfRecording, XdfStream
from affectstream.streaming.lsl.inlet import local_clock
from affectstream.streaming.lsl.outlet import (
    IRREGULAR_RATE,
    ChannelDesc,
    Outlet,
    OutletSpec,
    open_outlet,
)
from affectstream.streaming.replay.player import ReplayEvent

__all__ = ["XdfReplay", "XdfTrack", "default_session_name", "select_streams"]


def default_session_name(path: Path) -> str:
    """A stable session name for a file: ``xdf-<stem>-<8 hex of the absolute path>``."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"xdf-{path.stem}-{digest}"


def select_streams(recording: XdfRecording, names: Sequence[str] | None) -> list[XdfStream]:
    """The streams named ``names`` (every stream of that name, in file order), or all of them.

    Raises ``ValueError`` naming the unknown names and listing the file's streams."""
    if not names:
        return list(recording.streams)
    unknown = sorted(set(names) - set(recording.names))
    if unknown:
        listing = ", ".join(f"{s.name!r} ({s.type})" for s in recording.streams) or "none"
        raise ValueError(
            f"no stream named {', '.join(map(repr, unknown))} in {recording.path}; "
            f"its streams: {listing}"
        )
    wanted = set(names)
    return [s for s in recording.streams if s.name in wanted]


@dataclass(frozen=True)
class XdfTrack:
    """One outlet of the replay: its spec, the samples, their times in seconds after the
    replay's time 0 (recording time, before ``speed``)."""

    spec: OutletSpec
    rel: NDArray[np.float64]
    values: NDArray[Any]
    is_string: bool


@dataclass
class XdfReplay:
    """Publish the streams of an :class:`~affectstream.streaming.formats.xdf.XdfRecording`; see
    the module docstring.

    Parameters
    ----------
    recording : the file's content (:func:`~affectstream.streaming.formats.xdf.read_xdf`)
    streams : names of the streams to play (default: all)
    session : session name (``source_id`` ``<session>-<TYPE>`` for every stream; default: keep the
        recorded ``source_id``)
    speed, loop, chunk_s, linger_s : as for :class:`affectstream.streaming.replay.deap.DeapReplay`
    on_event : called with each sample of a string (marker) stream as it is pushed; payload
        ``{"stream": name, "type": type, "values": [...]}``
    on_chunk : called after each push round with (timestamp of the round's latest sample, LSL clock
        when every outlet had it)
    """

    recording: XdfRecording
    streams: Sequence[str] | None = None
    session: str | None = None
    speed: float = 1.0
    loop: bool = False
    chunk_s: float = 1 / 32
    linger_s: float = 1.0
    on_event: Callable[[ReplayEvent], None] | None = None
    on_chunk: Callable[[float, float], None] | None = None
    tracks: list[XdfTrack] = field(init=False)
    duration: float = field(init=False)
    """Seconds of recording time from time 0 to the end (one loop's period)."""
    samples_pushed: list[int] = field(init=False)
    _outlets: list[Outlet] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.speed > 0 and np.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive number, got {self.speed!r}")
        chosen = select_streams(self.recording, self.streams)
        if not chosen:
            raise ValueError(f"{self.recording.path}: the file holds no stream")
        firsts = [float(s.time_stamps[0]) for s in chosen if s.n_samples]
        if not firsts:
            raise ValueError(f"{self.recording.path}: the chosen streams hold no sample")
        origin = min(firsts)
        if self.session is None and self.recording.path is None:
            derived = "xdf-replay"
        elif self.session is None:
            assert self.recording.path is not None
            derived = default_session_name(self.recording.path)
        else:
            derived = self.session
        taken: set[str] = set()
        self.tracks = []
        end = 0.0
        for s in chosen:
            source_id = _unique(self._source_id(s, derived), taken)
            rel = np.asarray(s.time_stamps, dtype=np.float64) - origin
            if s.n_samples:
                end = max(end, float(rel[-1]) + (1.0 / s.srate if s.srate > 0 else 0.0))
                if not np.all(np.diff(rel) >= 0):
                    raise ValueError(f"stream {s.name!r}: timestamps go backwards in the file")
            self.tracks.append(
                XdfTrack(self._spec(s, source_id, derived), rel, s.values, s.is_string)
            )
        self.duration = end
        if self.loop and not self.duration > 0:
            raise ValueError("cannot loop a recording of zero duration")
        self.samples_pushed = [0] * len(self.tracks)

    # -- set-up ---------------------------------------------------------------------------

    def _source_id(self, s: XdfStream, derived: str) -> str:
        if self.session is not None or not s.source_id:
            return f"{derived}-{s.type or 'stream'}"
        return s.source_id

    def _spec(self, s: XdfStream, source_id: str, derived: str) -> OutletSpec:
        desc = dict(s.desc)
        if self.session is not None or "session" not in desc:
            desc["session"] = derived
        replay = {
            "file": str(self.recording.path or ""),
            "stream_id": str(s.stream_id),
            "recorded_source_id": s.source_id,
            "recorded_hostname": s.hostname,
            "data_srate": f"{s.srate:g}",
            "speed": f"{self.speed:g}",
        }
        return OutletSpec(
            name=s.name,
            type=s.type,
            source_id=source_id,
            srate=s.srate * self.speed if s.srate > 0 else IRREGULAR_RATE,
            fmt=s.fmt,
            channels=tuple(ChannelDesc(c.label, c.type, c.unit) for c in s.channels),
            desc=desc,
            groups={"replay": replay},
        )

    @property
    def specs(self) -> list[OutletSpec]:
        """The outlets, in the order of the file."""
        return [t.spec for t in self.tracks]

    @property
    def source_ids(self) -> dict[str, str]:
        """Stream name → ``source_id`` (the last of streams sharing a name)."""
        return {t.spec.name: t.spec.source_id for t in self.tracks}

    def open(self) -> None:
        """Create the outlets (they become visible to resolvers now)."""
        if not self._outlets:
            self._outlets.extend(open_outlet(t.spec) for t in self.tracks)

    def close(self) -> None:
        """Destroy the outlets; inlets see the streams go away."""
        self._outlets.clear()

    # -- the clock --------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, wait_for_consumers: float = 0.0) -> int:
        """Play until every stream ends (or forever with ``loop``) or ``stop`` is set.

        ``wait_for_consumers`` > 0 waits up to that many seconds for an inlet on every outlet
        before the clock starts. Returns the number of samples pushed, all streams together
        (per stream in :attr:`samples_pushed`).
        """
        self.open()
        stop = stop or threading.Event()
        if wait_for_consumers > 0:
            deadline = time.monotonic() + wait_for_consumers
            for outlet in self._outlets:
                outlet.wait_for_consumers(max(0.0, deadline - time.monotonic()))
        n = len(self.tracks)
        pos, rep = [0] * n, [0] * n
        pushed = [0] * n
        t0 = local_clock()
        while not stop.is_set():
            now = (local_clock() - t0) * self.speed  # recording seconds since time 0
            latest = -np.inf
            for i, track in enumerate(self.tracks):
                size = len(track.rel)
                while size:
                    base = rep[i] * self.duration
                    end = int(np.searchsorted(track.rel, now - base, side="right"))
                    if end > pos[i]:
                        stamps = t0 + (base + track.rel[pos[i] : end]) / self.speed
                        self._push(i, track, pos[i], end, stamps)
                        pushed[i] += end - pos[i]
                        latest = max(latest, float(stamps[-1]))
                        pos[i] = end
                    if pos[i] < size or not self.loop:
                        break
                    rep[i], pos[i] = rep[i] + 1, 0
            self.samples_pushed = list(pushed)
            if self.on_chunk is not None and np.isfinite(latest):
                self.on_chunk(latest, local_clock())
            if not self.loop and all(
                p >= len(t.rel) for p, t in zip(pos, self.tracks, strict=True)
            ):
                stop.wait(self.linger_s)
                break
            time.sleep(self.chunk_s)
        return sum(pushed)

    def _push(self, i: int, track: XdfTrack, a: int, b: int, stamps: NDArray[np.float64]) -> None:
        outlet = self._outlets[i]
        if not track.is_string:
            outlet.push_chunk(track.values[a:b], stamps.tolist())
            return
        for row, ts in zip(track.values[a:b], stamps.tolist(), strict=True):
            values = [str(v) for v in row]
            outlet.push_sample(values, ts)
            if self.on_event is not None:
                payload = {"stream": track.spec.name, "type": track.spec.type, "values": values}
                self.on_event(ReplayEvent(ts, payload))


def _unique(source_id: str, taken: set[str]) -> str:
    out, k = source_id, 1
    while out in taken:
        k += 1
        out = f"{source_id}-{k}"
    taken.add(out)
    return out
