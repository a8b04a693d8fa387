"""Replay one PMEmo subject's skin conductance as live LSL streams, with the stimulus in markers.

PMEmo (``training/datasets/pmemo.py``) holds, per song, each subject's finger EDA at 50 Hz while
listening to the chorus. A replay plays the chosen songs of one subject back to back on one clock
(the DEAP replay's, :func:`affectstream.streaming.replay.deap.play`) as two outlets:

=========  ======================  ============================================================
type       channels                content
=========  ======================  ============================================================
GSR        1 (``GSR``, µS)         the subject's EDA for each song, as in the files
Markers    1 string, irregular     JSON ``trial_start`` / ``trial_running`` / ``trial_end``
=========  ======================  ============================================================

Every marker names the stimulus: ``{"event": "trial_start", "dataset": "pmemo", "subject":
"100001", "trial": 1, "music_id": 7, "stimulus_id": "7", "valence": 0.61, "arousal": 0.40}`` (the
ratings on PMEmo's 0-1 scale). A fusion model served for the session looks ``stimulus_id`` up in
its feature table; ``trial_running`` repeats it every ``running_every_s`` so that a consumer
attaching mid-song learns it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pylsl
from numpy.typing import NDArray

from affectstream.streaming.replay.deap import MARKER_TYPE, ReplayEvent, _Player, _PlayList

__all__ = ["PMEMO_SFREQ", "PmemoReplay"]

PMEMO_SFREQ = 50.0


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
class PmemoReplay(_Player):
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
    _outlets: list[pylsl.StreamOutlet] = field(default_factory=list, init=False, repr=False)
    _marker_outlet: pylsl.StreamOutlet | None = field(default=None, init=False, repr=False)
    samples_pushed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not (self.speed > 0 and np.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive number, got {self.speed!r}")
        if not self.trials:
            raise ValueError("no trial selected")
        self.rate = PMEMO_SFREQ * self.speed
        streams, markers, pos = [], [], 0
        every = round(self.running_every_s * PMEMO_SFREQ)
        for i, t in enumerate(self.trials, start=1):
            eda = np.asarray(t.eda, dtype=np.float64)
            if eda.ndim != 1 or eda.size == 0 or not np.isfinite(eda).all():
                raise ValueError(f"song {t.music_id}: EDA must be a non-empty finite 1-D signal")
            base = {
                "dataset": "pmemo",
                "subject": self.subject,
                "trial": i,
                "music_id": int(t.music_id),
                "stimulus_id": str(t.music_id),
                "valence": float(t.valence),
                "arousal": float(t.arousal),
            }
            markers.append((pos, {"event": "trial_start", **base}))
            for k in range(every, eda.size, every) if every > 0 else ():
                markers.append(
                    (pos + k, {"event": "trial_running", **base, "elapsed_s": k / PMEMO_SFREQ})
                )
            markers.append((pos + eda.size, {"event": "trial_end", **base}))
            streams.append(eda)
            pos += eda.size
        data = np.ascontiguousarray(np.concatenate(streams)[:, None], dtype=np.float32)
        self._playlist = _PlayList([data], markers, pos)

    def _info(self, stream_type: str, srate: float, fmt: str) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            name=f"{self.session} {stream_type}",
            type=stream_type,
            channel_count=1,
            nominal_srate=srate,
            channel_format=fmt,
            source_id=f"{self.session}-{stream_type}",
        )
        desc = info.desc()
        desc.append_child_value("session", self.session)
        desc.append_child_value("manufacturer", "affectstream replay")
        rep = desc.append_child("replay")
        rep.append_child_value("dataset", "pmemo")
        rep.append_child_value("subject", self.subject)
        rep.append_child_value("data_srate", f"{PMEMO_SFREQ:g}")
        rep.append_child_value("speed", f"{self.speed:g}")
        return info

    def open(self) -> None:
        """Create the outlets (they become visible to resolvers now)."""
        if self._outlets:
            return
        info = self._info("GSR", self.rate, "float32")
        ch = info.desc().append_child("channels").append_child("channel")
        for key, value in (("label", "GSR"), ("type", "GSR"), ("unit", "microsiemens")):
            ch.append_child_value(key, value)
        self._outlets.append(pylsl.StreamOutlet(info))
        minfo = self._info(MARKER_TYPE, pylsl.IRREGULAR_RATE, "string")
        mch = minfo.desc().append_child("channels").append_child("channel")
        for key, value in (("label", "event"), ("type", "Markers"), ("unit", "json")):
            mch.append_child_value(key, value)
        self._marker_outlet = pylsl.StreamOutlet(minfo)

    @property
    def source_ids(self) -> dict[str, str]:
        return {t: f"{self.session}-{t}" for t in ("GSR", MARKER_TYPE)}
