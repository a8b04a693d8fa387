"""Binarising ratings: a fixed threshold, or a per-subject k-means midpoint (RTCAN-1D).

DEAP ratings are continuous on 1–9. ``threshold``: high = rating > 5 (Tang, Yang, gupta).
``kmeans``: for each subject and each dimension, 1-D k-means with k = 2 on that subject's ratings;
high = rating > the midpoint of the two centres (Yin et al.), which adapts to subjects who rate
everything high or low. A subject whose ratings do not split into two clusters (all equal) falls
back to the fixed threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["LABEL_RULES", "binarise", "kmeans_midpoint"]

LABEL_RULES = ("threshold", "kmeans")


def kmeans_midpoint(values: NDArray[np.float64], iters: int = 100) -> float | None:
    """Midpoint between the two 1-D k-means centres; ``None`` if the values do not split."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v[0] == v[-1]:
        return None
    lo, hi = v[0], v[-1]  # deterministic start at the extremes
    for _ in range(iters):
        mid = (lo + hi) / 2
        left, right = v[v <= mid], v[v > mid]
        new = (left.mean(), right.mean())
        if new == (lo, hi):
            break
        lo, hi = new
    return float((lo + hi) / 2)


def binarise(
    ratings: NDArray[np.float64],
    subjects: NDArray[np.int64],
    rule: str = "threshold",
    threshold: float = 5.0,
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """High/low labels for (valence, arousal) ratings.

    ratings : ndarray, shape (n, 2) — valence, arousal on 1–9
    subjects : ndarray, shape (n,) — subject of each row (used by ``kmeans``)
    returns labels (n, 2) in {0, 1}, and a description of the rule (thresholds used per subject)
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; choose from {LABEL_RULES}")
    ratings = np.asarray(ratings, dtype=np.float64)
    if rule == "threshold":
        return (ratings > threshold).astype(np.int64), {"kind": "threshold", "value": threshold}
    labels = np.zeros(ratings.shape, dtype=np.int64)
    per_subject: dict[str, list[float]] = {}
    for s in np.unique(subjects):
        rows = subjects == s
        cuts = []
        for k in range(ratings.shape[1]):
            cut = kmeans_midpoint(ratings[rows, k])
            cut = threshold if cut is None else cut
            labels[rows, k] = ratings[rows, k] > cut
            cuts.append(round(cut, 4))
        per_subject[str(int(s))] = cuts
    return labels, {"kind": "kmeans", "fallback_threshold": threshold, "per_subject": per_subject}
