"""Electrode dropout: train grid models on partial EEG montages so that they degrade gracefully.

A grid model (``eeg_grid`` input, docs/eeg-features.md#electrode-grid) sees each EEG sample as a
9×9 image on which every electrode has its cell and every other cell is 0. A headset with fewer
electrodes than the model was trained on leaves its absent electrodes' cells at 0, exactly as the
cells that never hold an electrode. The grid's normalisation only divides (it has no offset, see
:func:`affectstream.training.train.norm_stats`), so a zero cell stays zero in the model's input.

:class:`ElectrodeDropout` is the training augmentation: each training window, independently and
afresh at every epoch, keeps the full montage with probability ``1 − p``; otherwise it keeps a
uniformly random subset of ``k`` of its ``n`` electrodes and zeroes the other cells, with ``k``
log-uniform between ``min_keep`` and ``n``::

    u ~ Uniform(ln min_keep, ln(n + 1)),   k = clip(floor(exp(u)), min_keep, n)

For n = 32 and min_keep = 2 a quarter of the dropped-out windows keep 2-3 electrodes (coverage
≤ 0.1), a quarter 4-7 (0.125-0.22), a quarter 8-15 (0.25-0.47), a quarter 16-32 (0.5-1). The
validation windows (early stopping) and the test folds keep the full montage: the
cross-validation figures are full-montage figures; :mod:`affectstream.training.coverage` measures
the partial ones.

Coverage is the fraction of the model's EEG channels present: 4 of 32 is 0.125.

:class:`StreamDropout` does the same for whole streams a model *may use*
(:attr:`~affectstream.streaming.preprocess.spec.FeatureInput.optional_streams`, e.g. the lab
CNN-LSTM's AUX: EOG, EMG, skin temperature): each training window, independently per optional
stream, loses that stream with probability ``p``; its columns then hold what a session without
the stream feeds — the feature of a zero signal, i.e. ``(0 − mean) / std`` once normalised with
the input's statistics (the service's :class:`~affectstream.streaming.preprocess.pipeline.
Preprocessor` feeds zeros for an absent optional stream, and a ``RAW`` input's calibration period
and filters keep zeros at zero). Validation and test windows keep every stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.preprocess.montage import grid_cell
from affectstream.streaming.preprocess.pipeline import column_streams
from affectstream.streaming.preprocess.spec import FeatureInput, FeatureKind

__all__ = [
    "ElectrodeDropout",
    "StreamDropout",
    "electrode_cells",
    "montage_mask",
]

Cell = tuple[int, int]


@dataclass(frozen=True)
class ElectrodeDropout:
    """Random partial montages for the ``eeg_grid`` input of a grid model (module docstring).

    p : probability that a training window gets a partial montage (else the full one)
    min_keep : fewest electrodes a partial montage keeps (≥ 1)
    """

    p: float = 0.5
    min_keep: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"electrode dropout probability {self.p} is not in [0, 1]")
        if self.min_keep < 1:
            raise ValueError(f"electrode dropout min_keep {self.min_keep} is < 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "distribution": "with probability p a window keeps k of its n electrodes (a uniformly "
            "random subset), k = clip(floor(exp(u)), min_keep, n) with u ~ Uniform(ln min_keep, "
            "ln(n + 1)); else the full montage; drawn afresh per window and epoch, training "
            "windows only",
        }

    def keep_counts(self, rng: np.random.Generator, n_windows: int, n: int) -> NDArray[np.int64]:
        """Electrodes kept in each of ``n_windows`` windows with ``n`` electrodes (``n`` for the
        windows that keep the full montage)."""
        low = min(self.min_keep, n)
        u = rng.uniform(math.log(low), math.log(n + 1), size=n_windows)
        k = np.clip(np.floor(np.exp(u)), low, n).astype(np.int64)
        partial = rng.random(n_windows) < self.p
        return np.where(partial, k, n)

    def masks(
        self, rng: np.random.Generator, n_windows: int, cells: Sequence[Cell]
    ) -> NDArray[np.float32]:
        """(n_windows, 9, 9) masks: 1 on the cells of the kept electrodes and on every cell that
        holds no electrode of ``cells`` (those are 0 in the data anyway), 0 on dropped ones."""
        out = np.ones((n_windows, 9, 9), dtype=np.float32)
        n = len(cells)
        if n == 0:
            return out
        rows = np.array([r for r, _ in cells])
        cols = np.array([c for _, c in cells])
        for w, k in enumerate(self.keep_counts(rng, n_windows, n)):
            if k < n:
                dropped = rng.permutation(n)[k:]
                out[w, rows[dropped], cols[dropped]] = 0.0
        return out


@dataclass(frozen=True)
class StreamDropout:
    """Random absence of the optional streams of ``RAW`` inputs (module docstring).

    p : probability that a training window lacks a given optional stream (each independently)
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"stream dropout probability {self.p} is not in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "distribution": "each training window lacks each optional stream independently with "
            "probability p: its columns hold the normalised value of a zero signal, as a session "
            "without that stream feeds; validation and test windows keep every stream",
        }

    def drops(self, rng: np.random.Generator, n_windows: int, n_streams: int) -> NDArray[np.bool_]:
        """(n_windows, n_streams): ``True`` where a window lacks that optional stream."""
        return rng.random((n_windows, n_streams)) < self.p


def optional_columns(feature: FeatureInput) -> dict[str, NDArray[np.int64]]:
    """Optional stream → the columns of ``feature``'s samples it fills (the Preprocessor's layout,
    :func:`~affectstream.streaming.preprocess.pipeline.column_streams`); empty for an input
    without optional streams."""
    layout = column_streams(feature)
    return {
        s: np.flatnonzero([c == s for c in layout]).astype(np.int64)
        for s in feature.optional_streams
    }


def electrode_cells(feature: FeatureInput) -> list[Cell]:
    """The grid cell of each channel of an ``eeg_grid`` input, in channel order (by name, with
    the 10-20/10-10 map of :mod:`affectstream.streaming.preprocess.montage`)."""
    if feature.kind != FeatureKind.EEG_GRID:
        raise ValueError(f"{feature.name}: {feature.kind} is not an eeg_grid input")
    return [grid_cell(c.label) for c in feature.channels]


def montage_mask(feature: FeatureInput, present: Iterable[str]) -> NDArray[np.float32]:
    """(9, 9) mask of ``feature``'s grid with only the electrodes named in ``present`` (any
    spelling :func:`~affectstream.streaming.preprocess.montage.grid_cell` reads) kept.

    ``ValueError`` if a name in ``present`` is not one of the input's channels.
    """
    cells = electrode_cells(feature)
    mask = np.ones((9, 9), dtype=np.float32)
    for r, c in cells:
        mask[r, c] = 0.0
    for name in present:
        cell = grid_cell(name)
        if cell not in cells:
            raise ValueError(f"{feature.name}: electrode {name!r} is not one of its channels")
        mask[cell] = 1.0
    return mask
