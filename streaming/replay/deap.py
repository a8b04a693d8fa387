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

Timing. The play list (the chosen trials back to back) is played by the one replay clock of
:mod:`affectstream.streaming.replay.player`. With ``speed`` ≠ 1 the data play faster (or slower) and
the streams declare ``nominal_srate = 128 × speed``, so that their timestamps and their declared
rate agree; the description keeps ``data_srate`` = 128 and ``speed``. Markers carry the timestamp of
the trial's first sample (``trial_start``) and of the instant after its last sample (``trial_end``);
every ``running_every_s`` (5 s) in between a ``trial_running`` marker repeats the trial's ratings.

Identity. ``source_id`` = ``<session>-<TYPE>``, where ``session`` defaults to a stable name derived
from the file's absolute path, so a restarted replay of the same file is the same stream for LSL's
recovery and for session matching; each stream's description also carries ``<session>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.formats.deap import (
    BASELINE_SAMPLES,
    CHANNELS,
    EEG_INDICES,
    LABEL_NAMES,
    N_SAMPLES,
    RATING_RANGE,
    SFREQ,
    ChannelKind,
    DeapSubject,
    channel,
    gsr_ohm_to_microsiemens,
)
from affectstream.streaming.lsl.outlet import ChannelDesc, Outlet, OutletSpec
from affectstream.streaming.replay.player import (
    Player,
    PlayList,
    ReplayEvent,
    marker_outlet_spec,
    trial_markers,
)

__all__ = [
    "REPLAY_STREAMS",
    "DeapReplay",
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


@dataclass
class DeapReplay(Player):
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
    _outlets: list[Outlet] = field(default_factory=list, init=False, repr=False)
    _marker_outlet: Outlet | None = field(default=None, init=False, repr=False)
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

    def _build_playlist(self) -> PlayList:
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
            fields = {
                "dataset": "deap",
                "subject": self.subject.subject,
                "trial": trial,
                **labels,
                "rating_scale": list(RATING_RANGE),
            }
            markers += trial_markers(
                i * N_SAMPLES,
                N_SAMPLES,
                fields,
                SFREQ,
                self.running_every_s,
                start_fields={"baseline_s": BASELINE_SAMPLES / SFREQ},
            )
        streams = [np.ascontiguousarray(np.concatenate(p), dtype=np.float32) for p in per_stream]
        desc = {"session": str(self.session), "manufacturer": "affectstream replay"}
        replay = {
            "file": str(self.subject.path) if self.subject.path else "",
            "subject": str(self.subject.subject or ""),
            "data_srate": f"{SFREQ:g}",
            "speed": f"{self.speed:g}",
        }
        outlets = [
            OutletSpec(
                name=f"{self.session} {spec.type}",
                type=spec.type,
                source_id=f"{self.session}-{spec.type}",
                srate=self.rate,
                fmt="float32",
                channels=tuple(
                    ChannelDesc(
                        CHANNELS[idx].name,
                        CHANNELS[idx].kind.value,
                        spec.unit or CHANNELS[idx].unit or "unknown",
                    )
                    for idx in spec.channels
                ),
                desc=desc,
                groups={"replay": replay},
            )
            for spec in REPLAY_STREAMS
        ]
        marker_outlet = marker_outlet_spec(str(self.session), desc, {"replay": replay})
        return PlayList(outlets, streams, marker_outlet, markers, len(self.trials) * N_SAMPLES)
