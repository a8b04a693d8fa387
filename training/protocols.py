"""Evaluation protocols: which windows train and which test, and what that measures.

- ``subject`` (default): subject-independent k-fold — subjects are split into k groups; no subject
  is in both train and test. Measures generalisation to a new person.
- ``loso``: leave-one-subject-out (k = number of subjects).
- ``segment``: the segment-level random split several papers used — windows are shuffled into k
  folds regardless of subject or trial, so windows of the same trial (overlapping ones even) sit
  in train and test. **Leaky**; reported only for comparison with published figures. With
  ``--folds 10`` it is the "10-fold cross-validation over segments" of Tang et al. (whose split
  unit is not stated; this is the leaky reading) and of Yang et al.'s code (which also splits
  per subject; this split pools all subjects).
- ``random70``: one random 70/30 split of the windows, regardless of subject or trial, as
  athar70's MLSTM-FCN code (``train_test_split(test_size=0.3)``). **Leaky** like ``segment``
  (overlapping windows of one trial on both sides); one fold, so no spread over folds. Unlike
  athar70, the scaler is fitted on the training windows only and the test set is not
  oversampled.
- ``song``: stimulus-independent k-fold (PMEmo) — the songs (stimulus ids) are split into k
  groups; no song is in both train and test, while the subjects are shared. Measures
  generalisation to new music. Under ``subject`` the same songs, and so the same music feature
  vectors with their correlated labels, are in train and test (stimulus leakage): a model that
  reads the music can recognise a song it has seen instead of reading the listener.

Each fold also carves a validation set out of its *training groups* (whole subjects, or whole
songs for ``song``; for ``segment``, random training windows) for early stopping, never touching
the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["LEAKY_PROTOCOLS", "PROTOCOLS", "STIMULUS_PROTOCOLS", "Fold", "make_folds"]

PROTOCOLS = {
    "subject": "subject-independent k-fold (no subject in both train and test)",
    "loso": "leave-one-subject-out",
    "segment": "leaky: windows of the same trial in train and test (segment-level random split)",
    "random70": "leaky: one random 70/30 split of the windows (athar70's MLSTM-FCN protocol); "
    "windows of the same trial in train and test",
    "song": "song-independent k-fold (no song in both train and test; subjects shared)",
}
LEAKY_PROTOCOLS = ("segment", "random70")
"""Protocols that put windows of one trial in train and test (reported for comparison only)."""
STIMULUS_PROTOCOLS = ("song",)
"""Protocols that split by stimulus (they need the stimulus id of every window)."""


@dataclass(frozen=True)
class Fold:
    index: int
    train: NDArray[np.int64]  # window indices
    val: NDArray[np.int64]
    test: NDArray[np.int64]
    train_subjects: tuple[int, ...]
    val_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]
    # the stimulus ids (PMEmo songs) on each side, when the windows have them
    train_stimuli: tuple[int, ...] = ()
    val_stimuli: tuple[int, ...] = ()
    test_stimuli: tuple[int, ...] = ()


def make_folds(
    protocol: str,
    subjects: NDArray[np.int64],
    n_folds: int,
    seed: int,
    val_fraction: float = 0.15,
    stimuli: NDArray[np.int64] | None = None,
) -> list[Fold]:
    """Split windows into folds; see the module docstring.

    subjects : ndarray, shape (n_windows,) — subject of each window
    stimuli : ndarray, shape (n_windows,) — stimulus (song) of each window; required by ``song``,
        and recorded in every fold when given
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    rng = np.random.default_rng(seed)
    subjects = np.asarray(subjects)
    if protocol in STIMULUS_PROTOCOLS and stimuli is None:
        raise ValueError(f"protocol {protocol!r} needs the stimulus (song) of every window")
    ids = np.unique(subjects)
    if protocol == "loso":
        n_folds = len(ids)
    if protocol in ("subject", "loso", "song"):
        groups = subjects if protocol != "song" else np.asarray(stimuli)
        what = "songs" if protocol == "song" else "subjects"
        return [
            _fold(k, subjects, stimuli, *sides)
            for k, sides in enumerate(_group_split(groups, n_folds, rng, val_fraction, what))
        ]
    if protocol == "random70":  # one fold: 30 % of the windows test, at random (leaky)
        order = rng.permutation(len(subjects))
        n_test = round(0.3 * len(order))
        if not 0 < n_test < len(order) - 1:
            raise ValueError(f"{len(order)} windows are too few for a 70/30 split")
        test, rest = order[:n_test], order[n_test:]
        n_val = max(1, round(val_fraction * len(rest)))
        return [
            _fold(0, subjects, stimuli, np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test))
        ]
    # segment-level (leaky)
    if n_folds < 2:
        raise ValueError("need at least 2 folds")
    order = rng.permutation(len(subjects))
    parts = np.array_split(order, n_folds)
    folds = []
    for k, test in enumerate(parts):
        rest = rng.permutation(np.setdiff1d(order, test))
        n_val = max(1, round(val_fraction * len(rest)))
        folds.append(
            _fold(k, subjects, stimuli, np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test))
        )
    return folds


def _group_split(
    groups: NDArray[np.int64],
    n_folds: int,
    rng: np.random.Generator,
    val_fraction: float,
    what: str,
) -> list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]]:
    """(train, val, test) window indices per fold, whole groups on each side."""
    ids = np.unique(groups)
    if not 2 <= n_folds <= len(ids):
        raise ValueError(f"{n_folds} folds need between 2 and {len(ids)} {what}' worth")
    order = rng.permutation(ids)
    out = []
    for test_ids in np.array_split(order, n_folds):
        rest = rng.permutation(np.setdiff1d(order, test_ids))
        n_val = max(1, round(val_fraction * len(rest))) if len(rest) > 1 else 0
        val_ids, train_ids = rest[:n_val], rest[n_val:]
        train, val, test = (
            np.flatnonzero(np.isin(groups, g)) for g in (train_ids, val_ids, test_ids)
        )
        out.append((train, val, test))
    return out


def _fold(
    k: int,
    subjects: NDArray[np.int64],
    stimuli: NDArray[np.int64] | None,
    train: NDArray[np.int64],
    val: NDArray[np.int64],
    test: NDArray[np.int64],
) -> Fold:
    def ids(a: NDArray[np.int64] | None, idx: NDArray[np.int64]) -> tuple[int, ...]:
        return () if a is None else tuple(int(v) for v in np.unique(np.asarray(a)[idx]))

    return Fold(
        k,
        train,
        val,
        test,
        ids(subjects, train),
        ids(subjects, val),
        ids(subjects, test),
        ids(stimuli, train),
        ids(stimuli, val),
        ids(stimuli, test),
    )
