"""Electrode dropout (partial EEG montages for the grid models) and the montage masks."""

from __future__ import annotations

import numpy as np
import pytest

from affectstream.streaming.preprocess.montage import GRID_POSITIONS
from affectstream.training.augment import ElectrodeDropout, electrode_cells, montage_mask
from affectstream.training.presets import preset

GRID = preset("cnn-lstm-lab").spec.inputs[0]
CELLS = electrode_cells(GRID)
EMPTY = np.ones((9, 9), dtype=bool)
for _r, _c in CELLS:
    EMPTY[_r, _c] = False


def test_grid_cells_follow_the_electrode_names() -> None:
    assert len(CELLS) == 32 == len(set(CELLS))
    assert [GRID_POSITIONS[c.label] for c in GRID.channels] == CELLS


def test_dropout_zeroes_the_dropped_electrodes_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(0)
    aug = ElectrodeDropout(p=1.0, min_keep=2)
    masks = aug.masks(rng, 500, CELLS)
    assert masks.shape == (500, 9, 9) and set(np.unique(masks)) <= {0.0, 1.0}
    x = np.random.default_rng(1).normal(size=(500, 16, 9, 9)).astype(np.float32)
    y = x * masks[:, None]
    for w in range(500):
        kept = [cell for cell in CELLS if masks[w][cell] == 1]
        dropped = [cell for cell in CELLS if masks[w][cell] == 0]
        assert 2 <= len(kept) < 32 or len(kept) == 32
        for r, c in dropped:
            assert (y[w, :, r, c] == 0).all()
        for r, c in kept:
            assert np.array_equal(y[w, :, r, c], x[w, :, r, c])
        # cells that hold no electrode are never touched (they are 0 in real grids anyway)
        assert (masks[w][EMPTY] == 1).all()
    kept_counts = np.array([int(sum(masks[w][cell] for cell in CELLS)) for w in range(500)])
    assert kept_counts.min() >= 2 and kept_counts.max() <= 32
    # log-uniform: roughly a quarter in each octave band 2-3, 4-7, 8-15, 16-32
    bands = np.histogram(kept_counts, bins=[2, 4, 8, 16, 33])[0] / 500
    assert np.all(np.abs(bands - 0.25) < 0.08), bands


def test_dropout_probability_and_seeding() -> None:
    never = ElectrodeDropout(p=0.0).masks(np.random.default_rng(0), 50, CELLS)
    assert (never == 1).all()
    half = ElectrodeDropout(p=0.5).keep_counts(np.random.default_rng(0), 4000, 32)
    assert 0.45 < float(np.mean(half < 32)) < 0.55
    a = ElectrodeDropout().masks(np.random.default_rng(7), 20, CELLS)
    b = ElectrodeDropout().masks(np.random.default_rng(7), 20, CELLS)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="probability"):
        ElectrodeDropout(p=1.5)
    with pytest.raises(ValueError, match="min_keep"):
        ElectrodeDropout(min_keep=0)


def test_montage_mask_keeps_only_the_named_electrodes() -> None:
    mask = montage_mask(GRID, ["F7", "f8", "T3", "T8"])  # any spelling, old names too
    kept = {cell for cell in CELLS if mask[cell] == 1}
    assert kept == {GRID_POSITIONS[n] for n in ("F7", "F8", "T7", "T8")}
    assert (mask[EMPTY] == 1).all()
    assert montage_mask(GRID, [c.label for c in GRID.channels]).min() == 1
    with pytest.raises(ValueError, match=r"not one of its channels|no 10-20"):
        montage_mask(GRID, ["Xx1"])


def test_the_training_step_masks_the_grid_only() -> None:
    torch = pytest.importorskip("torch")
    from affectstream.training.train import TrainConfig, grid_dropout, model_inputs

    p = preset("cnn-lstm-lab")
    inputs = model_inputs("cnn-lstm", p.spec)
    cfg = TrainConfig(model="cnn-lstm", electrode_dropout=ElectrodeDropout(p=1.0, min_keep=2))
    step = grid_dropout(cfg, inputs, seed=3)
    assert step is not None
    grid = torch.ones((8, 128, 9, 9))
    periph = torch.ones((8, 128, 3))
    g, ph = step([grid, periph])
    assert torch.equal(ph, periph)
    for w in range(8):
        zero = [(r, c) for r, c in CELLS if float(g[w, 0, r, c]) == 0]
        assert 1 <= len(zero) <= 30  # p = 1: every window loses some electrodes, keeps ≥ 2
        assert all(bool((g[w, :, r, c] == 0).all()) for r, c in zero)
    off = TrainConfig(model="cnn-lstm", electrode_dropout=None)
    assert grid_dropout(off, inputs, seed=3) is None
    periph_only = model_inputs("mlstm-fcn", preset("mlstm-fcn-periph").spec)
    assert grid_dropout(cfg, periph_only, seed=3) is None
