"""Tasks other than the two binary outputs, for comparison with the sources' reporting.

- ``binary`` (default): valence high/low and arousal high/low, two logits, what every exported
  model serves.
- ``quadrant``: the 4-class valence/arousal quadrant task of the gupta-ayushi LSTM/GRU/BiLSTM
  notebooks (high = rating > 5 there; here the run's label rule). The models keep their two
  binary outputs; the predicted quadrant is the pair of binary decisions
  (:func:`quadrant_metrics`), so the same trained and exported model is scored both ways. It is
  not a 4-class softmax head as in the notebooks.
- ``nine-class``: athar70's MLSTM-FCN task: each rating rounded to the nearest of 1 … 9 (halves
  up), one 9-class softmax per dimension (an output layer of 18 logits, cross-entropy on each
  group of 9). Offline only (:func:`run_nine_class`): the served contract has two probabilities
  per window, so a nine-class model is never exported; the run writes its own report.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from affectstream.models.registry import build
from affectstream.streaming.preprocess.spec import PreprocessSpec
from affectstream.training.datasets.windows import WindowSet
from affectstream.training.optim import make_optimizer
from affectstream.training.protocols import LEAKY_PROTOCOLS, PROTOCOLS, make_folds

if TYPE_CHECKING:  # train.py imports this module (quadrant_metrics)
    from affectstream.training.train import ModelInputs, TrainConfig

__all__ = [
    "NINE_CLASSES",
    "QUADRANTS",
    "TASKS",
    "nine_class_labels",
    "nine_class_markdown",
    "quadrant_metrics",
    "quadrant_of",
    "run_nine_class",
    "summarise_quadrant",
    "write_nine_class_report",
]

TASKS = ("binary", "quadrant", "nine-class")
QUADRANTS = ("LVLA", "LVHA", "HVLA", "HVHA")
"""Quadrant names by index ``2 · valence_high + arousal_high`` (L/H: low/high)."""
NINE_CLASSES = 9
DIMENSIONS = ("valence", "arousal")


def quadrant_of(y: NDArray[np.int64]) -> NDArray[np.int64]:
    """Quadrant index (:data:`QUADRANTS`) of binary (valence, arousal) labels, shape (n, 2)."""
    y = np.asarray(y, dtype=np.int64)
    out: NDArray[np.int64] = 2 * y[:, 0] + y[:, 1]
    return out


def quadrant_metrics(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> dict[str, Any]:
    """4-class scores of binary labels and binary predictions, both shape (n, 2): the quadrant of
    each is the pair (valence, arousal). ``accuracy``: both decisions right; ``balanced_accuracy``:
    mean recall over the quadrants present in ``y_true``; ``confusion``: 4 × 4, rows true,
    columns predicted, in :data:`QUADRANTS` order."""
    t, p = quadrant_of(y_true), quadrant_of(y_pred)
    if len(t) == 0:
        raise ValueError("no test windows to score")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(t, p))
    return {
        "accuracy": float(accuracy_score(t, p)),
        "balanced_accuracy": balanced,
        "confusion": confusion_matrix(t, p, labels=[0, 1, 2, 3]).tolist(),
    }


def summarise_quadrant(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and SD over folds of the quadrant accuracy and balanced accuracy, and the confusion
    matrix summed over folds; for a report's ``config["quadrant_task"]``."""
    out: dict[str, Any] = {
        "classes": list(QUADRANTS),
        "from": "the pair of binary decisions (no 4-class head)",
    }
    for m in ("accuracy", "balanced_accuracy"):
        v = np.array([f[m] for f in per_fold], dtype=np.float64)
        out[m] = {"mean": float(v.mean()), "std": float(v.std()), "folds": v.round(4).tolist()}
    out["confusion"] = np.sum([f["confusion"] for f in per_fold], axis=0).tolist()
    return out


def nine_class_labels(ratings: NDArray[np.float64]) -> NDArray[np.int64]:
    """Class 0 … 8 of ratings on DEAP's 1–9 scale: the rating rounded to the nearest whole number
    (halves up), clipped to 1 … 9, minus 1. Shape as ``ratings``."""
    r = np.asarray(ratings, dtype=np.float64)
    if not np.isfinite(r).all():
        raise ValueError("ratings must be finite")
    out: NDArray[np.int64] = (np.clip(np.floor(r + 0.5), 1, 9) - 1).astype(np.int64)
    return out


def _balanced(true: NDArray[np.int64], pred: NDArray[np.int64]) -> float:
    """Mean recall over the classes present in ``true`` (a fold rarely holds all nine)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(true, pred))


def _nine_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ce = torch.nn.functional.cross_entropy
    return ce(out[:, :NINE_CLASSES], y[:, 0]) + ce(out[:, NINE_CLASSES:], y[:, 1])


def _predict(model: torch.nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    from affectstream.training.train import predict_scores

    model.eval()
    with torch.no_grad():
        return predict_scores(model, xs, torch.device("cpu"))


def _fit_nine(
    cfg: TrainConfig,
    inputs: ModelInputs,
    ws: WindowSet,
    y: NDArray[np.int64],
    train: NDArray[np.int64],
    val: NDArray[np.int64],
    seed: int,
) -> tuple[torch.nn.Module, dict[str, Any], int]:
    from affectstream.training.train import norm_stats, stimulus_norm_stats, window_tensors

    torch.manual_seed(seed)
    norms = {n: norm_stats(f, ws.X[n][train]) for n, f in inputs.streams.items()}
    if inputs.stimulus is not None:
        norms[inputs.stimulus] = stimulus_norm_stats(ws, train)
    try:
        model = build(cfg.model, inputs.shapes(ws), **{**cfg.hyper, "n_outputs": 2 * NINE_CLASSES})
    except TypeError as e:
        raise ValueError(f"{cfg.model} cannot take a 9-class head: {e}") from None
    opt, schedule = make_optimizer(
        cfg.optimizer,
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        lr_step_epochs=cfg.lr_step_epochs,
        lr_gamma=cfg.lr_gamma,
    )
    xs, yt = window_tensors(ws, train, inputs, norms), torch.from_numpy(y[train])
    xv, yv = window_tensors(ws, val, inputs, norms), torch.from_numpy(y[val])
    gen = torch.Generator().manual_seed(seed)
    best, best_loss, waited, epochs = copy.deepcopy(model.state_dict()), math.inf, 0, 0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            b = order[start : start + cfg.batch_size]
            opt.zero_grad()
            _nine_loss(model(*[x[b] for x in xs]), yt[b]).backward()  # type: ignore[no-untyped-call]
            opt.step()
        if schedule is not None:
            schedule.step()
        epochs += 1
        loss = float(_nine_loss(_predict(model, xv), yv)) if len(val) else 0.0
        if loss < best_loss - 1e-6 or not len(val):
            best, best_loss, waited = copy.deepcopy(model.state_dict()), loss, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    model.load_state_dict(best)
    return model, norms, epochs


def run_nine_class(
    cfg: TrainConfig,
    spec: PreprocessSpec,
    ws: WindowSet,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Cross-validate the nine-class task (module docstring) under ``cfg.protocol``; returns the
    report document (per fold and mean ± SD: accuracy, balanced accuracy and macro F1 per
    dimension, and the 9 × 9 confusion matrices). Chance is about 1/9 with balanced classes; the
    classes are far from balanced on DEAP, so read the balanced accuracy."""
    from affectstream.training.train import model_inputs, window_tensors

    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; choose from {sorted(PROTOCOLS)}")
    inputs = model_inputs(cfg.model, spec)
    y = nine_class_labels(ws.ratings[:, :2])
    stimuli = ws.trials if ws.stimulus is not None else None
    folds = make_folds(cfg.protocol, ws.subjects, cfg.folds, cfg.seed, stimuli=stimuli)
    per_fold: list[dict[str, Any]] = []
    for fold in folds:
        model, norms, epochs = _fit_nine(
            cfg, inputs, ws, y, fold.train, fold.val, cfg.seed * 1000 + fold.index
        )
        out = _predict(model, window_tensors(ws, fold.test, inputs, norms))
        metrics: dict[str, Any] = {}
        for k, dim in enumerate(DIMENSIONS):
            pred = out[:, k * NINE_CLASSES : (k + 1) * NINE_CLASSES].argmax(dim=1).numpy()
            true = y[fold.test, k]
            metrics[dim] = {
                "accuracy": float(accuracy_score(true, pred)),
                "balanced_accuracy": _balanced(true, pred),
                "f1_macro": float(
                    f1_score(true, pred, labels=list(range(9)), average="macro", zero_division=0.0)
                ),
                "confusion": confusion_matrix(true, pred, labels=list(range(9))).tolist(),
            }
        per_fold.append(
            {
                "index": fold.index,
                "test_subjects": list(fold.test_subjects),
                "n_train": len(fold.train),
                "n_test": len(fold.test),
                "epochs_run": epochs,
                "metrics": metrics,
            }
        )
        if progress:
            progress(
                f"fold {fold.index + 1}/{len(folds)}: "
                + ", ".join(f"{d} acc {metrics[d]['accuracy']:.3f}" for d in DIMENSIONS)
            )
    summary = {
        d: {
            m: {
                "mean": float(np.mean([f["metrics"][d][m] for f in per_fold])),
                "std": float(np.std([f["metrics"][d][m] for f in per_fold])),
            }
            for m in ("accuracy", "balanced_accuracy", "f1_macro")
        }
        for d in DIMENSIONS
    }
    counts = {d: np.bincount(y[:, k], minlength=9).tolist() for k, d in enumerate(DIMENSIONS)}
    return {
        "task": "nine-class",
        "exportable": False,
        "model": cfg.model,
        "protocol": cfg.protocol,
        "protocol_description": PROTOCOLS[cfg.protocol],
        "leaky": cfg.protocol in LEAKY_PROTOCOLS,
        "labels": "rating rounded to the nearest of 1 … 9 (halves up); class k = rating k + 1",
        "class_counts": counts,
        "summary": summary,
        "folds": per_fold,
    }


def nine_class_markdown(doc: dict[str, Any], dataset: dict[str, Any], notes: list[str]) -> str:
    """The report.md of a nine-class run."""
    lines = [f"# Training report: {doc['model']}, nine-class task (offline only)", ""]
    if dataset.get("synthetic"):
        lines += [
            f"> **Synthetic data, not {dataset.get('format', 'DEAP')}.** These figures say "
            "nothing about performance on real recordings.",
            "",
        ]
    lines += [f"> {n}" for note in notes for n in (note, "")]
    lines += [
        "> **Not exportable:** one 9-class softmax per dimension; the served contract holds two "
        "probabilities per window, so no model of this run is exported.",
        "",
        f"- dataset: {dataset.get('name')} ({dataset.get('subjects')} subjects, "
        f"{dataset.get('windows')} windows)",
        f"- protocol: `{doc['protocol']}` — {doc['protocol_description']}",
        f"- labels: {doc['labels']}",
        "- class counts (1 … 9): " + "; ".join(f"{d} {c}" for d, c in doc["class_counts"].items()),
        "",
        "| dimension | accuracy | balanced accuracy | macro F1 |",
        "|---|---|---|---|",
    ]
    for d, m in doc["summary"].items():
        lines.append(
            f"| {d} | "
            + " | ".join(
                f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}"
                for k in ("accuracy", "balanced_accuracy", "f1_macro")
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_nine_class_report(
    out: Path,
    doc: dict[str, Any],
    dataset: dict[str, Any],
    config: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """Write report.json and report.md of a nine-class run to ``out``; returns the document."""
    out.mkdir(parents=True, exist_ok=True)
    full = {**doc, "dataset": dataset, "config": config, "caveats": notes}
    (out / "report.json").write_text(json.dumps(full, indent=2) + "\n")
    (out / "report.md").write_text(nine_class_markdown(doc, dataset, notes))
    return full
