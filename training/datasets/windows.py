"""Training windows of any dataset: features, ratings, provenance, and optional stimulus features.

DEAP (:mod:`affectstream.training.datasets.deap`) and PMEmo
(:mod:`affectstream.training.datasets.pmemo_windows`) both fill a :class:`WindowSet`; training,
protocols and reports only see this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["StimulusTable", "WindowSet"]


@dataclass(frozen=True, eq=False)  # eq=False: it holds arrays
class StimulusTable:
    """Per-stimulus feature vectors (PMEmo's 6373 openSMILE functionals per song), raw values.

    ids : ndarray, shape (n_stimuli,), int64, ascending — stimulus ids (PMEmo musicId)
    names : the feature names, n_features of them
    values : ndarray, shape (n_stimuli, n_features), float64 — raw, not standardised
    source : what the values are (goes into the model contract)
    """

    ids: NDArray[np.int64]
    names: tuple[str, ...]
    values: NDArray[np.float64]
    source: str

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.ids), len(self.names)):
            raise ValueError(
                f"stimulus table: values {self.values.shape} for {len(self.ids)} ids and "
                f"{len(self.names)} names"
            )
        if len(self.ids) > 1 and not (np.diff(self.ids) > 0).all():
            raise ValueError("stimulus table: ids must be unique and ascending")

    @property
    def n_features(self) -> int:
        return len(self.names)

    def rows(self, stimulus_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row of each id; ``KeyError`` naming the first id the table lacks."""
        ids = np.asarray(stimulus_ids, dtype=np.int64)
        rows = np.searchsorted(self.ids, ids).clip(0, max(0, len(self.ids) - 1))
        missing = self.ids[rows] != ids if len(self.ids) else np.ones(len(ids), dtype=bool)
        if missing.any():
            raise KeyError(f"stimulus id {int(ids[missing][0])} has no row in the feature table")
        return rows.astype(np.int64)

    def __contains__(self, stimulus_id: object) -> bool:
        if not isinstance(stimulus_id, int | np.integer):
            return False
        i = int(np.searchsorted(self.ids, stimulus_id))
        return i < len(self.ids) and int(self.ids[i]) == int(stimulus_id)


@dataclass
class WindowSet:
    """Windows with their features, ratings and provenance.

    X : input name → ndarray (n_windows, *shape), float32
    ratings : (n_windows, ≥ 2) valence, arousal (DEAP adds dominance, liking)
    subjects : (n_windows,) int — subject id (DEAP: 1–32; PMEmo: the 6-digit id as a number)
    trials : (n_windows,) int — DEAP: trial number; PMEmo: the song's musicId (the stimulus)
    t_end : (n_windows,) window end, seconds from the recording's start
    stimulus : features of each stimulus id in ``trials`` (PMEmo's music), or ``None``
    rating_sources : (n_windows,) str — where each rating comes from (PMEmo: "per-subject" or
        "song-mean"), or ``None``
    """

    X: dict[str, NDArray[np.float32]]
    ratings: NDArray[np.float64]
    subjects: NDArray[np.int64]
    trials: NDArray[np.int64]
    t_end: NDArray[np.float64]
    stimulus: StimulusTable | None = None
    rating_sources: NDArray[np.str_] | None = None

    def __len__(self) -> int:
        return len(self.subjects)

    def stimulus_values(self, idx: NDArray[np.int64]) -> NDArray[np.float64]:
        """Raw stimulus features of windows ``idx``, shape (len(idx), n_features)."""
        if self.stimulus is None:
            raise ValueError("these windows carry no stimulus features")
        rows = self.stimulus.rows(self.trials[idx])
        values: NDArray[np.float64] = self.stimulus.values[rows]
        return values
