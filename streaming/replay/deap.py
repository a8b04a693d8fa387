"""Replay a DEAP subject file as live LSL streams driven by one clock.

One file becomes six outlets (DEAP channel table in :mod:`affectstream.streaming.formats.deap`):

=========  =====================================  ==========================================
type       channels                               content
=========  =====================================  ==========================================
EEG        32 (Fp1 … O2, Geneva order)            as in the file
GSR        1                                      skin *conductance* in µS (file: Ohm, 1e6/R)
PPG        1                                      plethysmograph
RESP       1                                      respiration belt
AUX        5 (hEOG, vEOG, zEMG, tEMG, Temperature) as in the file
Markers    1 string, irregular                    JSON ``trial_start`` / ``trial_end`` events
=========  =====================================  ==========================================

Timing. All outlets share one clock: sample *k* of the play list (the chosen trials back to back)
is stamped ``t0 + k / rate`` on the LSL clock and pushed once that time has come, so data arrive
paced in real time. With ``speed`` ≠ 1 the data play faster (or slower) and the streams declare
``nominal_srate = 128 × speed``, so that their timestamps and their declared rate agree; the
description keeps ``data_srate`` = 128 and ``speed``. Markers carry the timestamp of the trial's
first sample (``trial_start``) and of the instant after its last sample (``trial_end``); every
``running_every_s`` (5 s) in between a ``trial_running`` marker repeats the trial's ratings.

Identity. ``source_id`` = ``<session>-<TYPE>``, where ``session`` defaults to a stable name derived
from the file's absolute path, so a restarted replay of the same file is the same stream for LSL's
recovery and for session matching; each stream's description also carries ``<session>``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

from affectstream.streaming.formats.deap import (
    BASELINE_SAMPLES,
    CHANNELS,
    EEG_INDICES,
    LABEL_NAMES,
    N_SAMPLES,
    SFREQ,
    ChannelKind,
    DeapSubject,
    channel,
    gsr_ohm_to_microsiemens,
)

__all__ = [
    "REPLAY_STREAMS",
    "DeapReplay",
    "ReplayEvent",
    "ReplayStreamSpec",
    "deap_trial_streams",
    "default_session_name",
    "parse_trials",
]


@dataclass(frozen=True, slots=True)
class ReplayStreamSpec:
    """One data outlet of a replay: which DEAP channels, and how their values are converted."""

    type: str
    channels: tuple[int, ...]
    unit: str | None
    convert: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(CHANNELS[i].name for i in self.channels)


REPLAY_STREAMS: tuple[ReplayStreamSpec, ...] = (
    ReplayStreamSpec("EEG", EEG_INDICES, None),
    ReplayStreamSpec("GSR", (channel("GSR").index,), "microsiemens", gsr_ohm_to_microsiemens),
    ReplayStreamSpec("PPG", (channel("Plethysmograph").index,), None),
    ReplayStreamSpec("RESP", (channel("Respiration").index,), None),
    ReplayStreamSpec(
        "AUX",
        tuple(
            c.index
            for c in CHANNELS
            if c.kind in (ChannelKind.EOG, ChannelKind.EMG, ChannelKind.TEMP)
        ),
        None,
    ),
)
MARKER_TYPE = "Markers"


def deap_trial_streams(block: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """One DEAP trial as the replay publishes it: per stream type, (n_samples, n_channels).

    block : ndarray, shape (40, n_samples) — one trial of a DEAP file. GSR is converted to µS.
    Training uses this too, so that offline preprocessing sees exactly what a live session sees.
    """
    out = {}
    for spec in REPLAY_STREAMS:
        x = block[list(spec.channels)].T
        out[spec.type] = spec.convert(x) if spec.convert is not None else x
    return out


def parse_trials(spec: str | None, n_trials: int) -> tuple[int, ...]:
    """Parse a 1-based trial selection such as ``"1-3,7"``; ``None`` or ``""`` selects all.

    Raises ``ValueError`` with the offending part for malformed specs or trials outside
    ``1..n_trials``. Order is kept as written; duplicates are allowed (a trial may play twice).
    """
    if not spec:
        return tuple(range(1, n_trials + 1))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a_s, b_s = part.split("-", 1)
                a, b = int(a_s), int(b_s)
                if a > b:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"bad trial selection {part!r} in {spec!r}: "
                "use 1-based numbers and ranges like 1-3,7"
            ) from None
    bad = [t for t in out if not 1 <= t <= n_trials]
    if bad:
        raise ValueError(f"trial(s) {bad} out of range: the file has trials 1-{n_trials}")
    return tuple(out)


def default_session_name(path: Path) -> str:
    """A stable session name for a file: ``deap-<stem>-<8 hex of the absolute path>``."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"deap-{path.stem}-{digest}"


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """A marker the replay publishes (also handed to ``on_event`` for printing)."""

    timestamp: float
    payload: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.payload, separators=(",", ":"))


@dataclass
class _PlayList:
    """The chosen trials, back to back, per stream (float32, C-contiguous) + marker positions."""

    streams: list[NDArray[np.float32]]
    markers: list[tuple[int, dict[str, Any]]]  # (sample position, payload), sorted
    n_samples: int


class _Player:
    """What both replays share: the clock, markers handed to ``on_event``, progress."""

    _outlets: list[pylsl.StreamOutlet]
    _marker_outlet: pylsl.StreamOutlet | None
    _playlist: _PlayList
    rate: float
    loop: bool
    chunk_s: float
    linger_s: float
    samples_pushed: int
    on_event: Callable[[ReplayEvent], None] | None
    on_chunk: Callable[[float, float], None] | None

    def open(self) -> None:
        raise NotImplementedError

    @property
    def source_ids(self) -> dict[str, str]:
        """Stream type → ``source_id`` of every outlet."""
        raise NotImplementedError

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


@dataclass
class DeapReplay(_Player):
    """Publish a :class:`~affectstream.streaming.formats.deap.DeapSubject` as LSL outlets; see the
    module docstring.

    Parameters
    ----------
    subject : the file's content
    trials : 1-based trial numbers to play, in order
    speed : playback speed (1 = real time)
    loop : start again after the last trial (timestamps keep increasing)
    session : session name (``source_id`` prefix and ``<session>`` in each description)
    chunk_s : push interval in seconds of wall time
    on_event : called with each marker as it is pushed (e.g. to print it)
    linger_s : after the last sample, keep the outlets open this long (unless stopped) so that
        inlets receive what is still in flight before the streams disappear
    running_every_s : period of ``trial_running`` markers repeating the running trial's ratings,
        so that a consumer attaching mid-trial knows them (0: none)
    on_chunk : called after each push round with (timestamp of the round's last sample, LSL
        clock when every outlet had it): the benchmark's "pushed at" for end-to-end latency
    """

    subject: DeapSubject
    trials: Sequence[int]
    speed: float = 1.0
    loop: bool = False
    session: str | None = None
    chunk_s: float = 1 / 32
    on_event: Callable[[ReplayEvent], None] | None = None
    linger_s: float = 1.0
    running_every_s: float = 5.0
    on_chunk: Callable[[float, float], None] | None = None
    _outlets: list[pylsl.StreamOutlet] = field(default_factory=list, init=False, repr=False)
    _marker_outlet: pylsl.StreamOutlet | None = field(default=None, init=False, repr=False)
    samples_pushed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not (self.speed > 0 and np.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive number, got {self.speed!r}")
        if not self.trials:
            raise ValueError("no trial selected")
        n = self.subject.n_trials
        if any(not 1 <= t <= n for t in self.trials):
            raise ValueError(f"trials must be within 1-{n}, got {list(self.trials)}")
        if self.session is None:
            if self.subject.path is None:
                raise ValueError("a replay of in-memory data needs an explicit session name")
            self.session = default_session_name(self.subject.path)
        self.rate = SFREQ * self.speed
        self._playlist = self._build_playlist()

    # -- set-up ---------------------------------------------------------------------------

    def _build_playlist(self) -> _PlayList:
        per_stream: list[list[NDArray[np.float64]]] = [[] for _ in REPLAY_STREAMS]
        markers: list[tuple[int, dict[str, Any]]] = []
        for i, trial in enumerate(self.trials):
            try:
                trial_streams = deap_trial_streams(self.subject.data[trial - 1])
            except ValueError as e:
                raise ValueError(f"trial {trial}, stream GSR: {e}") from None
            for k, spec in enumerate(REPLAY_STREAMS):
                per_stream[k].append(trial_streams[spec.type])
            labels = dict(zip(LABEL_NAMES, map(float, self.subject.labels[trial - 1]), strict=True))
            base = {"subject": self.subject.subject, "trial": trial, **labels}
            markers.append(
                (
                    i * N_SAMPLES,
                    {"event": "trial_start", **base, "baseline_s": BASELINE_SAMPLES / SFREQ},
                )
            )
            # a consumer that attaches mid-trial learns the running trial within this period
            every = round(self.running_every_s * SFREQ)
            for k in range(every, N_SAMPLES, every) if every > 0 else ():
                markers.append(
                    (i * N_SAMPLES + k, {"event": "trial_running", **base, "elapsed_s": k / SFREQ})
                )
            markers.append(((i + 1) * N_SAMPLES, {"event": "trial_end", **base}))
        streams = [np.ascontiguousarray(np.concatenate(p), dtype=np.float32) for p in per_stream]
        return _PlayList(streams, markers, len(self.trials) * N_SAMPLES)

    def _info(self, spec_type: str, n_channels: int, srate: float, fmt: str) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            name=f"{self.session} {spec_type}",
            type=spec_type,
            channel_count=n_channels,
            nominal_srate=srate,
            channel_format=fmt,
            source_id=f"{self.session}-{spec_type}",
        )
        desc = info.desc()
        desc.append_child_value("session", str(self.session))
        desc.append_child_value("manufacturer", "affectstream replay")
        rep = desc.append_child("replay")
        rep.append_child_value("file", str(self.subject.path) if self.subject.path else "")
        rep.append_child_value("subject", str(self.subject.subject or ""))
        rep.append_child_value("data_srate", f"{SFREQ:g}")
        rep.append_child_value("speed", f"{self.speed:g}")
        return info

    def open(self) -> None:
        """Create the outlets (they become visible to resolvers now)."""
        if self._outlets:
            return
        for spec in REPLAY_STREAMS:
            info = self._info(spec.type, len(spec.channels), self.rate, "float32")
            chans = info.desc().append_child("channels")
            for idx in spec.channels:
                ch = chans.append_child("channel")
                ch.append_child_value("label", CHANNELS[idx].name)
                ch.append_child_value("type", CHANNELS[idx].kind.value)
                ch.append_child_value("unit", spec.unit or CHANNELS[idx].unit or "unknown")
            self._outlets.append(pylsl.StreamOutlet(info))
        minfo = self._info(MARKER_TYPE, 1, pylsl.IRREGULAR_RATE, "string")
        ch = minfo.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "event")
        ch.append_child_value("type", "Markers")
        ch.append_child_value("unit", "json")
        self._marker_outlet = pylsl.StreamOutlet(minfo)

    @property
    def source_ids(self) -> dict[str, str]:
        types = [s.type for s in REPLAY_STREAMS] + [MARKER_TYPE]
        return {t: f"{self.session}-{t}" for t in types}


def play(
    outlets: Sequence[pylsl.StreamOutlet],
    marker_outlet: pylsl.StreamOutlet,
    pl: _PlayList,
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
    t0 = pylsl.local_clock()
    k = 0  # samples pushed since t0, across loops
    next_marker = 0  # index into the (conceptually repeated) marker list
    n_markers = len(pl.markers)
    while not stop.is_set():
        elapsed = (pylsl.local_clock() - t0) * rate  # in samples
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
                on_chunk(last_ts, pylsl.local_clock())
        if progress is not None:
            progress(k)
        if not loop and k >= total and next_marker >= n_markers:
            stop.wait(linger_s)
            break
        time.sleep(chunk_s)
    return k
