"""Calibration: the temperature fit, ECE, and a real quick training whose held-out subjects get a
lower expected calibration error once the temperature fitted on its validation subjects is
applied; report figures made from synthetic data carry a visible mark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from affectstream.training.calibration import (
    T_MAX,
    apply_temperature,
    ece,
    fit_temperature,
    fold_calibration,
    reliability_bins,
    reliability_figure,
    sigmoid,
)
from affectstream.training.figures import MARK_COLOUR


def test_ece_worked_out_by_hand() -> None:
    p = np.array([0.05, 0.15, 0.95, 0.95])
    y = np.array([0, 1, 1, 0])
    # bins [0, .1): |.05 − 0|; [.1, .2): |.15 − 1|; [.9, 1]: 2 windows, |.95 − .5|
    assert ece(y, p) == pytest.approx((0.05 + 0.85 + 2 * 0.45) / 4)
    bins = reliability_bins(y, p)
    assert bins["count"][0] == 1 and bins["count"][9] == 2 and sum(bins["count"]) == 4
    assert ece(np.array([1]), np.array([1.0])) == 0.0  # p = 1 falls in the last bin


def test_the_fit_recovers_the_temperature_labels_were_drawn_with() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(0, 3, size=20_000)
    y = (rng.random(z.size) < sigmoid(z / 2.5)).astype(np.int64)
    assert fit_temperature(z, y) == pytest.approx(2.5, rel=0.06)
    assert fit_temperature(z, (rng.random(z.size) < sigmoid(z / 0.5)).astype(np.int64)) == (
        pytest.approx(0.5, rel=0.06)
    )
    # logits that carry nothing about the labels: flattened to 0.5 (the upper bound)
    assert fit_temperature(z, rng.integers(0, 2, z.size) * (z < 0)) == T_MAX
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(np.array([np.nan, 1.0]), np.array([0, 1]))


@pytest.fixture
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model on a shared 2-core machine: one thread is faster
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # ~10 s alone, ~25 s on a loaded 2-core machine
@pytest.mark.timeout(300)
def test_calibration_lowers_ece_on_held_out_synthetic_subjects(
    tmp_path: Path, one_thread: None
) -> None:
    """Synthetic subjects 1-4 train a small GRU on GSR, PPG and RESP (over-fitted: 30 epochs, no
    early stopping, no weight decay), 5-8 fit the temperature, 9-12 measure it."""
    pytest.importorskip("torch")
    import torch

    from affectstream.streaming.preprocess.spec import FeatureInput, FeatureKind, PreprocessSpec
    from affectstream.streaming.synthetic.deap import write_synthetic_deap
    from affectstream.training.datasets.deap import deap_files, deap_windows
    from affectstream.training.presets import LAB_PERIPHERAL
    from affectstream.training.train import TrainConfig, fit, make_labels

    write_synthetic_deap(tmp_path, n_subjects=12, n_trials=6, seed=3)
    x = FeatureInput("x", FeatureKind.RAW, LAB_PERIPHERAL, 8.0, 8.0, baseline_s=3.0)
    spec = PreprocessSpec((x,), 0.25)
    ws = deap_windows(deap_files(tmp_path), spec, 4.0)
    cfg = TrainConfig(
        model="gru",
        epochs=30,
        patience=1000,
        lr=1e-2,
        weight_decay=0.0,
        batch_size=32,
        hyper={"hidden": (16,), "dropout": 0.0},
    )
    y, _ = make_labels(cfg, ws)
    groups = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12))
    train, val, test = (np.flatnonzero(np.isin(ws.subjects, g)) for g in groups)
    trained = fit(cfg, spec, ws, y, train, val, seed=0)
    mean, std = trained.norms["x"]

    def logits(idx: np.ndarray) -> Any:
        xs = torch.from_numpy(((ws.X["x"][idx] - mean) / std).astype(np.float32))
        with torch.no_grad():
            return trained.module.eval()(xs).double().numpy()

    cal = fold_calibration(logits(val), y[val], logits(test), y[test])
    before = [cal[d]["ece_before"] for d in ("valence", "arousal")]
    after = [cal[d]["ece_after"] for d in ("valence", "arousal")]
    assert np.mean(after) < np.mean(before) - 0.02, cal
    for d in ("valence", "arousal"):
        c = cal[d]
        assert c["fitted"] and c["temperature"] > 0
        assert c["ece_after"] <= c["ece_before"] + 0.01, (d, c)
        # the fit is the one the numbers say: recompute ECE from the logits and the temperature
        k = ("valence", "arousal").index(d)
        z = logits(test)[:, k]
        assert ece(y[test, k], apply_temperature(z, c["temperature"])) == pytest.approx(
            c["ece_after"]
        )


def _red_pixels_on_top(path: Path) -> int:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    top = img[: max(1, img.shape[0] // 12)]
    rgb = np.array([int(MARK_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(top - rgb).max(axis=-1) < 0.12).sum())


@pytest.mark.parametrize("synthetic", [True, False])
def test_figures_from_synthetic_data_carry_the_mark(tmp_path: Path, synthetic: bool) -> None:
    from affectstream.training.protocols import Fold
    from affectstream.training.report import write_report
    from affectstream.training.train import FoldResult

    rng = np.random.default_rng(0)
    results = []
    for k in range(2):
        z_val, z_test = rng.normal(0, 3, (40, 2)), rng.normal(0, 3, (40, 2))
        y_val = (rng.random((40, 2)) < sigmoid(z_val / 3)).astype(np.int64)
        y_test = (rng.random((40, 2)) < sigmoid(z_test / 3)).astype(np.int64)
        idx = np.arange(40)
        fold = Fold(k, idx, idx, idx, (1,), (2,), (3,))
        m = {"accuracy": 0.5, "balanced_accuracy": 0.5, "f1": 0.5, "f1_low": 0.4, "roc_auc": 0.5}
        results.append(
            FoldResult(
                fold,
                {"valence": dict(m), "arousal": dict(m)},
                {"valence": [[10, 10], [10, 10]], "arousal": [[20, 0], [10, 10]]},
                {"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.9], "val_accuracy": [0.5, 0.5]},
                2,
                fold_calibration(z_val, y_val, z_test, y_test),
            )
        )
    dataset = {"name": "x", "format": "DEAP", "synthetic": synthetic, "subjects": 3, "windows": 40}
    doc = write_report(
        tmp_path,
        model="gru",
        protocol="subject",
        results=results,
        label_rule={"kind": "threshold", "value": 5.0},
        dataset=dataset,
        config={},
        class_balance={"valence": {"high": 20, "low": 20}, "arousal": {"high": 20, "low": 20}},
    )
    for name in ("confusion.png", "learning_curves.png", "reliability.png"):
        marked = _red_pixels_on_top(tmp_path / name)
        assert (marked > 50) if synthetic else (marked == 0), (name, marked)
    cal = doc["summary_calibration"]["arousal"]
    assert cal["ece_after"]["mean"] < cal["ece_before"]["mean"]  # T ≈ 3 recovered per fold
    assert doc["summary"]["arousal"]["f1_low"]["mean"] == pytest.approx(0.4)
    md = (tmp_path / "report.md").read_text()
    assert "| dimension | F1 high | F1 low | temperature | ECE before | ECE after |" in md
    assert "`reliability.png`" in md


def test_the_reliability_figure_alone_is_marked(tmp_path: Path) -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.1, 0.8, 0.6, 0.3, 0.9])
    bins = {"valence": {"before": reliability_bins(y, p), "after": reliability_bins(y, p)}}
    reliability_figure(tmp_path / "r.png", bins, "t", {"synthetic": True, "format": "PMEmo"})
    assert _red_pixels_on_top(tmp_path / "r.png") > 50
