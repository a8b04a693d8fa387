"""Replay one PMEmo subject's skin conductance as live LSL streams, with the stimulus in markers.

PMEmo (:mod:`affectstream.streaming.formats.pmemo`) holds, per song, each subject's finger EDA at 50
Hz while listening to the chorus. A replay plays the chosen songs of one subject back to back on one
clock (:mod:`affectstream.streaming.replay.player`) as two outlets:

=========  ======================  ============================================================
type       channels                content
=========  ======================  ============================================================
GSR        1 (``GSR``, µS)         the subject's EDA for each song, as in the files
Markers    1 string, irregular     JSON ``trial_start`` / ``trial_running`` / ``trial_end``
=========  ======================  ============================================================

Every marker names the stimulus: ``{"event": "trial_start", "dataset": "pmemo", "subject": "100001",
"trial": 1, "music_id": 7, "stimulus_id": "7", "valence": 0.61, "arousal": 0.40, "rating_scale": [0,
1]}`` (the ratings on PMEmo's 0-1 scale). A fusion model served for the session looks
``stimulus_id`` up in its feature table; ``trial_running`` repeats it every ``running_every_s`` so
that a consumer attaching mid-song learns it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.lsl.outlet import ChannelDesc, Outlet, OutletSpec
from affectstream.streaming.replay.player import (
    Player,
    PlayList,
    ReplayEvent,
    marker_outlet_spec,
    trial_markers,
)

__all__ = ["PMEMO_RATING_SCALE", "PMEMO_SFREQ", "PmemoReplay"]

PMEMO_SFREQ = 50.0
PMEMO_RATING_SCALE = (0.0, 1.0)
"""PMEmo's ratings are static song means on a 0-1 scale."""


class _Trial(Protocol):
    """What the replay needs of a trial (a
    :class:`affectstream.streaming.formats.pmemo.PmemoTrial`)."""

    @property
    def music_id(self) -> int: ...

    @property
    def eda(self) -> NDArray[np.float64]: ...

    @property
    def valence(self) -> float: ...

    @property
    def arousal(self) -> float: ...


@dataclass
class PmemoReplay(Player):
    """Publish one subject's songs as a GSR outlet and a marker outlet; see the module docstring.

    Parameters
    ----------
    subject : the PMEmo subject id (6 digits)
    trials : the subject's trials to play, in order (at least one; each at least one sample)
    session : session name (``source_id`` prefix ``<session>-GSR``, ``<session>-Markers``)
    speed, loop, chunk_s, on_event, linger_s, running_every_s, on_chunk : as for
        :class:`affectstream.streaming.replay.deap.DeapReplay`
    """

    subject: str
    trials: Sequence[_Trial]
    session: str
    speed: float = 1.0
    loop: bool = False
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
        self.rate = PMEMO_SFREQ * self.speed
        streams: list[NDArray[np.float64]] = []
        markers: list[tuple[int, dict[str, Any]]] = []
        pos = 0
        for i, t in enumerate(self.trials, start=1):
            eda = np.asarray(t.eda, dtype=np.float64)
            if eda.ndim != 1 or eda.size == 0 or not np.isfinite(eda).all():
                raise ValueError(f"song {t.music_id}: EDA must be a non-empty finite 1-D signal")
            fields = {
                "dataset": "pmemo",
                "subject": self.subject,
                "trial": i,
                "music_id": int(t.music_id),
                "stimulus_id": str(t.music_id),
                "valence": float(t.valence),
                "arousal": float(t.arousal),
                "rating_scale": list(PMEMO_RATING_SCALE),
            }
            markers += trial_markers(pos, eda.size, fields, PMEMO_SFREQ, self.running_every_s)
            streams.append(eda)
            pos += eda.size
        data = np.ascontiguousarray(np.concatenate(streams)[:, None], dtype=np.float32)
        desc = {"session": self.session, "manufacturer": "affectstream replay"}
        replay = {
            "dataset": "pmemo",
            "subject": self.subject,
            "data_srate": f"{PMEMO_SFREQ:g}",
            "speed": f"{self.speed:g}",
        }
        gsr = OutletSpec(
            name=f"{self.session} GSR",
            type="GSR",
            source_id=f"{self.session}-GSR",
            srate=self.rate,
            fmt="float32",
            channels=(ChannelDesc("GSR", "GSR", "microsiemens"),),
            desc=desc,
            groups={"replay": replay},
        )
        marker_outlet = marker_outlet_spec(self.session, desc, {"replay": replay})
        self._playlist = PlayList([gsr], [data], marker_outlet, markers, pos)
