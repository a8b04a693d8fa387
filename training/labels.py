"""Binarising ratings: a fixed threshold, or a per-subject k-means midpoint (after RTCAN-1D).

DEAP ratings are continuous on 1–9. ``threshold``: high = rating > 5 (Tang, Yang, gupta); PMEmo's
are on [0, 1], so its fixed threshold is 0.5 (:data:`THRESHOLDS`). ``threshold`` is the default on
DEAP, ``kmeans`` on PMEmo. ``kmeans``: for each subject and each dimension separately, 1-D k-means
with k = 2 on that subject's ratings; high = rating > the midpoint of the two centres, which
adapts to subjects who rate everything high or low. ``kmeans2d`` is Yin et al.'s (RTCAN-1D) rule:
one k-means with k = 2 on each subject's (valence, arousal) *pairs*; the subject's valence and
arousal thresholds are the two coordinates of the midpoint between the two centres, so a
subject's valence threshold also depends on their arousal ratings (issue #19: against
``kmeans``, in a simulation the thresholds moved by a median 0.2 points and about 4 % of the
labels flipped). A subject whose ratings do not split into two clusters (all equal) falls back
to the fixed threshold, and so does one dimension of ``kmeans2d`` whose ratings are all equal
(the clusters then split on the other dimension only, and the midpoint's coordinate is that one
value).

Ratings come per window; with ``trials`` given, each subject's k-means runs on one rating per
(subject, trial), as RTCAN-1D's did on one per (subject, song), so a recording that yields more
windows (a longer clip) does not weigh more. The midpoint uses **all** of a subject's ratings,
those of test trials included: it defines the labels (as the paper's does), it is not fitted to
features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LABEL_RULES",
    "THRESHOLDS",
    "binarise",
    "class_balance",
    "kmeans2d_midpoint",
    "kmeans_midpoint",
]

LABEL_RULES = ("threshold", "kmeans", "kmeans2d")
THRESHOLDS = {"deap": 5.0, "pmemo": 0.5}
"""The fixed threshold of each dataset's rating scale (DEAP 1–9, PMEmo 0–1)."""
DIMENSIONS = ("valence", "arousal")


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


def kmeans2d_midpoint(points: NDArray[np.float64], iters: int = 100) -> tuple[float, float] | None:
    """Midpoint between the two centres of a 2-D k-means (k = 2, Lloyd's algorithm) on ``points``,
    shape (n, 2); ``None`` if the points do not split (all equal).

    Deterministic start: the two points farthest apart (the first such pair in row order), so the
    result does not depend on a random seed. Each point goes to the nearer centre (ties to the
    first); iterations stop when the centres no longer move. No cluster empties: a centre is the
    mean of its points, and a convex set (the points nearer the other centre) cannot hold them
    all without holding their mean.
    """
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2 or np.all(p == p[0]):
        return None
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    centres = np.stack([p[i], p[j]])
    for _ in range(iters):
        dist = ((p[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        assign = np.argmin(dist, axis=1)
        new = np.stack([p[assign == k].mean(axis=0) for k in (0, 1)])
        if np.array_equal(new, centres):
            break
        centres = new
    mid = centres.mean(axis=0)
    return float(mid[0]), float(mid[1])


def binarise(
    ratings: NDArray[np.float64],
    subjects: NDArray[np.int64],
    rule: str = "threshold",
    threshold: float = 5.0,
    trials: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """High/low labels for (valence, arousal) ratings.

    ratings : ndarray, shape (n, 2) — valence, arousal (DEAP 1–9, PMEmo 0–1)
    subjects : ndarray, shape (n,) — subject of each row (used by ``kmeans``)
    threshold : the fixed threshold (``threshold``), and the fallback of ``kmeans``/``kmeans2d``
    trials : ndarray, shape (n,) — trial (stimulus) of each row; if given, ``kmeans`` sees one
        rating per (subject, trial) instead of one per row
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
        fit_rows = ratings[rows]
        if trials is not None:  # one rating per (subject, trial)
            _, first = np.unique(np.asarray(trials)[rows], return_index=True)
            fit_rows = fit_rows[first]
        cuts = []
        if rule == "kmeans2d":
            mid = kmeans2d_midpoint(fit_rows[:, :2])
            for k in range(ratings.shape[1]):
                flat = np.ptp(fit_rows[:, k]) == 0  # one value: fall back, as ``kmeans`` does
                cut = threshold if mid is None or flat else mid[k]
                labels[rows, k] = ratings[rows, k] > cut
                cuts.append(round(cut, 4))
            per_subject[str(int(s))] = cuts
            continue
        for k in range(ratings.shape[1]):
            found = kmeans_midpoint(fit_rows[:, k])
            cut = threshold if found is None else found
            labels[rows, k] = ratings[rows, k] > cut
            cuts.append(round(cut, 4))
        per_subject[str(int(s))] = cuts
    return labels, {"kind": rule, "fallback_threshold": threshold, "per_subject": per_subject}


def class_balance(
    labels: NDArray[np.int64], keys: NDArray[np.int64] | None = None
) -> dict[str, dict[str, int]]:
    """High/low counts per dimension: ``{"valence": {"high": …, "low": …}, "arousal": …}``.

    labels : ndarray, shape (n, 2) from :func:`binarise`
    keys : ndarray, shape (n,) or (n, k) — count each distinct key (row) once, e.g. one per
        (subject, trial) recording as RTCAN-1D's table of 7690 pairs, instead of each window
    """
    y = np.asarray(labels)
    if keys is not None:
        _, first = np.unique(np.asarray(keys), axis=0, return_index=True)
        y = y[np.sort(first)]
    return {
        d: {"high": int(y[:, k].sum()), "low": int(len(y) - y[:, k].sum())}
        for k, d in enumerate(DIMENSIONS)
    }
