"""Evaluation protocols: which windows train and which test, and what that measures.

- ``subject`` (default): subject-independent k-fold — subjects are split into k groups; no subject
  is in both train and test. Measures generalisation to a new person.
- ``loso``: leave-one-subject-out (k = number of subjects).
- ``segment``: the segment-level random split several papers used — windows are shuffled into k
  folds regardless of subject or trial, so windows of the same trial (overlapping ones even) sit
  in train and test. **Leaky**; reported only for comparison with published figures.

Each fold also carves a validation set out of its *training subjects* (whole subjects; for
``segment``, random training windows) for early stopping, never touching the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PROTOCOLS", "Fold", "make_folds"]

PROTOCOLS = {
    "subject": "subject-independent k-fold (no subject in both train and test)",
    "loso": "leave-one-subject-out",
    "segment": "leaky: windows of the same trial in train and test (segment-level random split)",
}


@dataclass(frozen=True)
class Fold:
    index: int
    train: NDArray[np.int64]  # window indices
    val: NDArray[np.int64]
    test: NDArray[np.int64]
    train_subjects: tuple[int, ...]
    val_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]


def make_folds(
    protocol: str,
    subjects: NDArray[np.int64],
    n_folds: int,
    seed: int,
    val_fraction: float = 0.15,
) -> list[Fold]:
    """Split windows (one subject id per window) into folds; see the module docstring."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    rng = np.random.default_rng(seed)
    subjects = np.asarray(subjects)
    ids = np.unique(subjects)
    if protocol == "loso":
        n_folds = len(ids)
    if protocol in ("subject", "loso"):
        if not 2 <= n_folds <= len(ids):
            raise ValueError(f"{n_folds} folds need between 2 and {len(ids)} subjects' worth")
        order = rng.permutation(ids)
        groups = np.array_split(order, n_folds)
        folds = []
        for k, test_ids in enumerate(groups):
            rest = np.setdiff1d(order, test_ids)
            rest = rng.permutation(rest)
            n_val = max(1, round(val_fraction * len(rest))) if len(rest) > 1 else 0
            val_ids, train_ids = rest[:n_val], rest[n_val:]
            folds.append(Fold(
                k,
                np.flatnonzero(np.isin(subjects, train_ids)),
                np.flatnonzero(np.isin(subjects, val_ids)),
                np.flatnonzero(np.isin(subjects, test_ids)),
                tuple(sorted(map(int, train_ids))),
                tuple(sorted(map(int, val_ids))),
                tuple(sorted(map(int, test_ids))),
            ))  # fmt: skip
        return folds
    # segment-level (leaky)
    if n_folds < 2:
        raise ValueError("need at least 2 folds")
    order = rng.permutation(len(subjects))
    parts = np.array_split(order, n_folds)
    all_ids = tuple(sorted(map(int, ids)))
    folds = []
    for k, test in enumerate(parts):
        rest = rng.permutation(np.setdiff1d(order, test))
        n_val = max(1, round(val_fraction * len(rest)))
        folds.append(Fold(k, np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test),
                          all_ids, all_ids, all_ids))  # fmt: skip
    return folds
