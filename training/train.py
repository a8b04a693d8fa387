"""Cross-validated training with honest protocols, and the final model for export.

For each fold: normalisation statistics from the fold's training windows only (the stimulus
features of a fusion model too: mean and SD over the training windows' songs, never the test
fold's), a model from the registry, Adam, early stopping on a validation set carved from the
training subjects (songs, under the ``song`` protocol), metrics on the test fold (per dimension,
computed by scikit-learn: :data:`METRICS`), confusion matrices and learning curves. Then a final
model is trained on every window (validation carved the same way) for export.

A model's inputs are its registry inputs, in ``forward`` order: a stream input is the spec's
:class:`~affectstream.streaming.preprocess.spec.FeatureInput` of that name, a
``stimulus_features`` input is the window's stimulus vector (:attr:`WindowSet.stimulus`, PMEmo's
music features).

A grid model trained with electrode dropout (``TrainConfig.electrode_dropout``,
:mod:`affectstream.training.augment`) sees each training batch's ``eeg_grid`` with a random
partial montage per window; validation and test windows keep the full montage. A model whose
``RAW`` input names optional streams, trained with stream dropout (``TrainConfig.stream_dropout``),
sees those streams absent at random in training batches the way a session without them feeds them
(:class:`~affectstream.training.augment.StreamDropout`).

An architecture with an ``auxiliary_loss`` method (BDDAE's weighted denoising reconstruction) has
that term added to every training batch's classification loss (:func:`auxiliary_loss`).

Seeded: numpy and torch seeds are set from ``seed`` and the fold index; torch runs with
deterministic algorithms where it can. CPU by default; CUDA when available.

Calibration (:mod:`affectstream.training.calibration`): each fold fits a temperature per output on
its validation windows and measures expected calibration error on its test windows before and
after (``FoldResult.calibration``); the final model's temperatures, fitted on its validation
windows, go to ``TrainedModel.calibration`` and from there into the exported contract.

Progress: a tqdm bar of the folds (with the final model as one more step) and, below it, one of
the current fit's epochs, both with ETA, on stderr and only when stderr is a terminal
(:func:`progress_bar`); each finished fold also gives one line of its figures to ``progress``.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from torch import nn
from tqdm import tqdm

from affectstream.models.registry import build, get
from affectstream.streaming.preprocess.spec import FeatureInput, FeatureKind, PreprocessSpec
from affectstream.training.augment import (
    ElectrodeDropout,
    StreamDropout,
    electrode_cells,
    optional_columns,
)
from affectstream.training.calibration import final_calibration, fold_calibration
from affectstream.training.datasets.windows import WindowSet
from affectstream.training.labels import binarise
from affectstream.training.optim import make_optimizer
from affectstream.training.protocols import PROTOCOLS, Fold, make_folds
from affectstream.training.tasks import quadrant_metrics

__all__ = [
    "METRICS",
    "FoldResult",
    "ModelInputs",
    "TrainConfig",
    "TrainedModel",
    "auxiliary_loss",
    "grid_dropout",
    "make_labels",
    "model_inputs",
    "norm_stats",
    "predict_scores",
    "progress_bar",
    "run_training",
    "stimulus_norm_stats",
    "stream_dropout",
    "window_tensors",
]

DIMENSIONS = ("valence", "arousal")
METRICS = ("accuracy", "balanced_accuracy", "f1", "f1_low", "roc_auc")
"""The test-fold metrics of every dimension (:func:`binary_metrics`), in report order."""


@dataclass
class TrainConfig:
    model: str
    protocol: str = "subject"
    folds: int = 5
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 6
    seed: int = 0
    label_rule: str = "threshold"
    label_threshold: float = 5.0  # the rating scale's midpoint: 5 for DEAP, 0.5 for PMEmo
    hyper: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    electrode_dropout: ElectrodeDropout | None = None  # partial montages of eeg_grid inputs
    stream_dropout: StreamDropout | None = None  # absent optional streams of raw inputs
    # the optimiser (training/optim.py): "adam" or "sgd" (momentum), lr × lr_gamma every
    # lr_step_epochs epochs (0: constant); RTCAN-1D's setups are in training/options.py
    optimizer: str = "adam"
    momentum: float = 0.0
    lr_step_epochs: int = 0
    lr_gamma: float = 1.0

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class TrainedModel:
    module: nn.Module
    norms: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]
    history: dict[str, list[float]]
    calibration: dict[str, Any] | None = None  # the contract's, fitted on validation windows


@dataclass
class FoldResult:
    fold: Fold
    metrics: dict[str, dict[str, float | None]]  # dimension → METRICS; roc_auc may be None
    confusion: dict[str, list[list[int]]]
    history: dict[str, list[float]]
    epochs_run: int
    calibration: dict[str, Any] = field(default_factory=dict)  # fold_calibration's, or {}
    quadrant: dict[str, Any] = field(default_factory=dict)  # training/tasks.py quadrant_metrics


def norm_stats(
    feature: FeatureInput, x: NDArray[np.float32]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and std of one input over the training windows, broadcastable to its per-sample shape.

    Per channel for raw and cvxEDA inputs, per feature column for DE and statistics, one value for
    the grid (its empty cells must stay 0 after scaling, so the mean is taken over electrodes only
    and the grid is only divided).
    """
    x64 = x.astype(np.float64)
    if feature.kind == FeatureKind.EEG_GRID:
        cells = x64[x64 != 0]
        return np.zeros((1, 1, 1)), np.full((1, 1, 1), max(float(cells.std()), 1e-8))
    if feature.kind == FeatureKind.EDA_CVX3:
        return x64.mean(axis=(0, 2))[:, None], np.maximum(x64.std(axis=(0, 2)), 1e-8)[:, None]
    axes = tuple(range(x64.ndim - 1))  # all but the last (channels / feature columns)
    return x64.mean(axis=axes)[None, :], np.maximum(x64.std(axis=axes), 1e-8)[None, :]


def stimulus_norm_stats(
    ws: WindowSet, idx: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and SD of each stimulus feature over windows ``idx`` (a song weighs as many windows as
    it has there), shape (n_features,) each.

    A feature that is constant over those windows gets SD 1 (it only loses its mean), so a test
    song that differs there is not blown up by a near-zero SD.
    """
    if ws.stimulus is None:
        raise ValueError("these windows carry no stimulus features")
    rows, counts = np.unique(ws.stimulus.rows(ws.trials[idx]), return_counts=True)
    values = ws.stimulus.values[rows]
    w = counts / counts.sum()
    mean = w @ values
    std = np.sqrt(w @ (values - mean) ** 2)
    constant = std <= 1e-9 * np.maximum(np.abs(mean), 1e-12)
    return mean, np.where(constant, 1.0, std)


@dataclass(frozen=True)
class ModelInputs:
    """A model's inputs in ``forward`` order: stream features by name, and at most one stimulus
    input (its name, e.g. ``music``)."""

    names: tuple[str, ...]
    streams: dict[str, FeatureInput]
    stimulus: str | None

    def shapes(self, ws: WindowSet) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every input, in ``forward`` order."""
        n_stim = ws.stimulus.n_features if ws.stimulus is not None else 0
        return {n: self.streams[n].shape if n in self.streams else (n_stim,) for n in self.names}


def model_inputs(model: str, spec: PreprocessSpec) -> ModelInputs:
    """Match ``model``'s registry inputs with ``spec``'s features; ``ValueError`` if one lacks."""
    by_name = {f.name: f for f in spec.inputs}
    streams: dict[str, FeatureInput] = {}
    stimulus = None
    for i in get(model).inputs:
        if i.kind == "stimulus_features":
            stimulus = i.name
        elif i.name in by_name:
            streams[i.name] = by_name[i.name]
        else:
            raise ValueError(f"{model}: input {i.name!r} is not produced by the preprocessing")
    return ModelInputs(get(model).input_names, streams, stimulus)


def make_labels(cfg: TrainConfig, ws: WindowSet) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """High/low labels of every window with ``cfg``'s rule (k-means: one rating per recording)."""
    return binarise(
        ws.ratings[:, :2], ws.subjects, cfg.label_rule, cfg.label_threshold, trials=ws.trials
    )


def _norms(
    inputs: ModelInputs, ws: WindowSet, idx: NDArray[np.int64]
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    norms = {n: norm_stats(f, ws.X[n][idx]) for n, f in inputs.streams.items()}
    if inputs.stimulus is not None:
        norms[inputs.stimulus] = stimulus_norm_stats(ws, idx)
    return norms


def _seed(seed: int) -> None:
    torch.manual_seed(seed)  # numpy randomness here always goes through explicit Generators


def _loss_fn(model_name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if get(model_name).loss == "squared_hinge":  # Tang et al.: squared hinge, y in {-1, 1}
        return lambda out, y: torch.clamp(1 - (2 * y - 1) * out, min=0).pow(2).mean()
    bce = nn.BCEWithLogitsLoss()
    return lambda out, y: bce(out, y)


def window_tensors(
    ws: WindowSet, idx: NDArray[np.int64], inputs: ModelInputs, norms: dict[str, Any]
) -> list[torch.Tensor]:
    """The model's input tensors for windows ``idx``, standardised with ``norms`` (the stimulus
    features looked up per window)."""
    out = []
    for name in inputs.names:
        mean, std = norms[name]
        if name == inputs.stimulus:
            assert ws.stimulus is not None  # model_inputs/run_training checked
            table = ((ws.stimulus.values - mean) / std).astype(np.float32)  # one row per song
            x = table[ws.stimulus.rows(ws.trials[idx])]
        else:
            x = ((ws.X[name][idx].astype(np.float64) - mean) / std).astype(np.float32)
        out.append(torch.from_numpy(x))
    return out


def fit(
    cfg: TrainConfig,
    spec: PreprocessSpec,
    ws: WindowSet,
    y: NDArray[np.int64],
    train: NDArray[np.int64],
    val: NDArray[np.int64],
    seed: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainedModel:
    """Train one model on ``train`` windows with early stopping on ``val`` windows.

    Every normalisation statistic (stimulus features included) comes from ``train`` only.
    on_epoch : called after every epoch with that epoch's ``train_loss`` and, when there are
        validation windows, ``val_loss`` and ``val_accuracy``
    """
    _seed(seed)
    device = cfg.torch_device()
    inputs = model_inputs(cfg.model, spec)
    norms = _norms(inputs, ws, train)
    model = build(cfg.model, inputs.shapes(ws), **cfg.hyper).to(device)
    opt, schedule = make_optimizer(
        cfg.optimizer,
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        lr_step_epochs=cfg.lr_step_epochs,
        lr_gamma=cfg.lr_gamma,
    )
    loss_fn = _loss_fn(cfg.model)
    xs_train = window_tensors(ws, train, inputs, norms)
    y_train = torch.from_numpy(y[train].astype(np.float32))
    xs_val = window_tensors(ws, val, inputs, norms) if len(val) else []
    y_val = torch.from_numpy(y[val].astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    dropout = grid_dropout(cfg, inputs, seed)
    absent = stream_dropout(cfg, inputs, norms, seed)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best, best_loss, waited = copy.deepcopy(model.state_dict()), math.inf, 0
    aux: torch.Tensor | None = None
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        total = total_aux = 0.0
        for start in range(0, len(order), cfg.batch_size):
            b = order[start : start + cfg.batch_size]
            opt.zero_grad()
            batch = [x[b] for x in xs_train]
            if dropout is not None:
                batch = dropout(batch)
            if absent is not None:
                batch = absent(batch)
            xs = [x.to(device) for x in batch]
            out = model(*xs)
            loss = loss_fn(out, y_train[b].to(device))
            aux = auxiliary_loss(model, xs)
            (loss if aux is None else loss + aux).backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(loss.detach()) * len(b)
            if aux is not None:
                total_aux += float(aux.detach()) * len(b)
        history["train_loss"].append(total / max(1, len(order)))
        if schedule is not None:
            schedule.step()
        if aux is not None:  # the model has an auxiliary term
            history.setdefault("train_aux_loss", []).append(total_aux / max(1, len(order)))
        if not len(val):
            best = copy.deepcopy(model.state_dict())
            if on_epoch is not None:
                on_epoch({"train_loss": history["train_loss"][-1]})
            continue
        vloss, vacc = _evaluate(model, xs_val, y_val, loss_fn, device)
        history["val_loss"].append(vloss)
        history["val_accuracy"].append(vacc)
        if on_epoch is not None:
            on_epoch(
                {"train_loss": history["train_loss"][-1], "val_loss": vloss, "val_accuracy": vacc}
            )
        if vloss < best_loss - 1e-4:
            best, best_loss, waited = copy.deepcopy(model.state_dict()), vloss, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    model.load_state_dict(best)
    model.eval()
    return TrainedModel(model.cpu(), norms, history)


def auxiliary_loss(model: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor | None:
    """The architecture's own training term on a batch, ``None`` when it has none: a model with
    an ``auxiliary_loss(*inputs)`` method (BDDAE: its weighted denoising reconstruction error) gets
    it added to the classification loss it is trained with. ``train_loss`` stays the
    classification loss (comparable with ``val_loss``); the term's mean goes to
    ``train_aux_loss``."""
    hook = getattr(model, "auxiliary_loss", None)
    if not callable(hook):
        return None
    aux: torch.Tensor = hook(*inputs)
    return aux


def stream_dropout(
    cfg: TrainConfig,
    inputs: ModelInputs,
    norms: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    seed: int,
) -> Callable[[list[torch.Tensor]], list[torch.Tensor]] | None:
    """The stream-dropout step of a batch (``None`` when ``cfg`` has none or no input has optional
    streams): per window and optional stream, with probability ``p``, that stream's columns take
    the normalised value of a zero signal, ``(0 − mean) / std`` with the input's ``norms`` — what
    serving feeds when a session lacks the stream. Seeded by ``seed``."""
    aug = cfg.stream_dropout
    plans: dict[int, tuple[list[NDArray[np.int64]], torch.Tensor]] = {}
    for k, name in enumerate(inputs.names):
        f = inputs.streams.get(name)
        if f is None or not f.optional_streams:
            continue
        mean, std = norms[name]
        zero = torch.from_numpy((-mean / std).reshape(-1).astype(np.float32))  # per column
        plans[k] = (list(optional_columns(f).values()), zero)
    if aug is None or aug.p == 0 or not plans:
        return None
    rng = np.random.default_rng([seed, 0x53445250])  # "SDRP": apart from order and electrodes

    def apply(batch: list[torch.Tensor]) -> list[torch.Tensor]:
        out = list(batch)
        for k, (columns, zero) in plans.items():
            x = out[k]  # (batch, n_times, n_columns)
            drops = aug.drops(rng, len(x), len(columns))
            lacks = np.zeros((len(x), x.shape[-1]), dtype=bool)
            for j, cols in enumerate(columns):
                lacks[np.ix_(np.flatnonzero(drops[:, j]), cols)] = True
            x = torch.where(torch.from_numpy(lacks)[:, None, :], zero[None, None, :], x)
            out[k] = x
        return out

    return apply


def grid_dropout(
    cfg: TrainConfig, inputs: ModelInputs, seed: int
) -> Callable[[list[torch.Tensor]], list[torch.Tensor]] | None:
    """The electrode-dropout step of a batch (``None`` when ``cfg`` has none or the model has no
    ``eeg_grid`` input): zeroes the cells of a random subset of electrodes per window
    (:class:`~affectstream.training.augment.ElectrodeDropout`), seeded by ``seed``."""
    aug = cfg.electrode_dropout
    grids = {
        k: electrode_cells(f)
        for k, f in enumerate(inputs.streams.get(n) for n in inputs.names)
        if f is not None and f.kind == FeatureKind.EEG_GRID
    }
    if aug is None or aug.p == 0 or not grids:
        return None
    rng = np.random.default_rng([seed, 0x45445250])  # "EDRP": apart from the batch order

    def apply(batch: list[torch.Tensor]) -> list[torch.Tensor]:
        out = list(batch)
        for k, cells in grids.items():
            masks = torch.from_numpy(aug.masks(rng, len(out[k]), cells))
            out[k] = out[k] * masks[:, None]  # (batch, n_times, 9, 9) × (batch, 1, 9, 9)
        return out

    return apply


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    xs: list[torch.Tensor],
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
) -> tuple[float, float]:
    model.eval()
    out = predict_scores(model, xs, device)
    loss = float(loss_fn(out, y))
    # every (window, dimension) decision counts once
    acc = float(accuracy_score(y.numpy().ravel().astype(np.int64), (out > 0).numpy().ravel()))
    return loss, acc


@torch.no_grad()
def predict_scores(
    model: nn.Module, xs: list[torch.Tensor], device: torch.device, batch: int = 256
) -> torch.Tensor:
    parts = []
    for start in range(0, len(xs[0]), batch):
        parts.append(model(*[x[start : start + batch].to(device) for x in xs]).cpu())
    return torch.cat(parts) if parts else torch.zeros((0, 2))


def binary_metrics(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], y_prob: NDArray[np.float64]
) -> dict[str, Any]:
    """Test-fold metrics of one dimension, computed by scikit-learn; high (1) is the positive class.

    y_true, y_pred : true and predicted labels in {0, 1}; y_prob : predicted probability of high
    returns ``accuracy``; ``balanced_accuracy``, the mean recall of the classes present in
    ``y_true`` (of low and high; of the only class when the fold has one); ``f1`` of the high
    class (0 when no window is high or predicted high) and ``f1_low`` of the low class (0 when
    none is low or predicted low); ``roc_auc`` of ``y_prob``, ``None`` when
    ``y_true`` holds one class only (it is undefined then); ``confusion``, ``[[tn, fp], [fn, tp]]``
    """
    if len(y_true) == 0:
        raise ValueError("no test windows to score")
    with warnings.catch_warnings():  # a one-class fold: sklearn warns, then scores that class
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = float(balanced_accuracy_score(y_true, y_pred))
    both_classes = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "f1": float(f1_score(y_true, y_pred, pos_label=1, average="binary", zero_division=0.0)),
        "f1_low": float(f1_score(y_true, y_pred, pos_label=0, average="binary", zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y_true, y_prob)) if both_classes else None,
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    }


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is a terminal (not a file, a pipe or a test's capture)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def progress_bar(
    total: int, desc: str, unit: str, *, enabled: bool | None = None, leave: bool = True
) -> tqdm[Any]:
    """A tqdm bar (count, rate and ETA) on stderr.

    enabled : ``None`` shows it only when stderr is a terminal (:func:`stderr_is_terminal`), so
        logs and captured output never hold it; ``False`` never (``--quiet``); ``True`` always.
        A hidden bar takes the same calls and does nothing.
    leave : keep the finished bar on the terminal (else it is cleared)
    """
    show = stderr_is_terminal() if enabled is None else enabled
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not show,
        leave=leave,
        dynamic_ncols=True,
    )


_POSTFIX = {"train_loss": "loss", "val_loss": "val loss", "val_accuracy": "val acc"}


def _fit_with_bar(
    cfg: TrainConfig,
    spec: PreprocessSpec,
    ws: WindowSet,
    y: NDArray[np.int64],
    train: NDArray[np.int64],
    val: NDArray[np.int64],
    seed: int,
    name: str,
    bar: bool | None,
) -> TrainedModel:
    """:func:`fit` under an epoch bar (cleared when the fit ends, early stopping or not) whose
    postfix holds the last epoch's losses and validation accuracy."""
    with progress_bar(cfg.epochs, f"{name} epochs", "epoch", enabled=bar, leave=False) as epochs:

        def on_epoch(values: dict[str, float]) -> None:
            epochs.set_postfix(
                {
                    _POSTFIX[k]: f"{v:.3f}" if k == "val_accuracy" else f"{v:.4f}"
                    for k, v in values.items()
                },
                refresh=False,
            )
            epochs.update()

        return fit(cfg, spec, ws, y, train, val, seed, on_epoch)


def _fold_line(name: str, seconds: float, metrics: dict[str, dict[str, float | None]]) -> str:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return f"{name} done in {seconds:.0f} s: " + ", ".join(
        f"{d} acc {fmt(m['accuracy'])} bal acc {fmt(m['balanced_accuracy'])} "
        f"f1 {fmt(m['f1'])} auc {fmt(m['roc_auc'])}"
        for d, m in metrics.items()
    )


def run_training(
    cfg: TrainConfig,
    spec: PreprocessSpec,
    ws: WindowSet,
    progress: Callable[[str], None] | None = None,
    final_model: bool = True,
    bar: bool | None = None,
) -> tuple[list[FoldResult], TrainedModel | None, dict[str, Any]]:
    """Cross-validate, then (unless ``final_model`` is false) train the final model on all
    windows. Returns the fold results, the final model and the label-rule description.

    progress : called with one line of figures per finished fold (with the bars cleared meanwhile)
    bar : the progress bars, one step per fold (and the final model) over one step per epoch of
        the current fit; ``None``: only when stderr is a terminal, ``False``: never (see
        :func:`progress_bar`)
    """
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {cfg.protocol!r}; choose from {sorted(PROTOCOLS)}")
    inputs = model_inputs(cfg.model, spec)
    if inputs.stimulus is not None and ws.stimulus is None:
        raise ValueError(
            f"{cfg.model} needs stimulus features ({inputs.stimulus!r}); these windows have none "
            "(PMEmo's music features come with --dataset pmemo)"
        )
    y, rule = make_labels(cfg, ws)
    stimuli = ws.trials if ws.stimulus is not None else None
    folds = make_folds(cfg.protocol, ws.subjects, cfg.folds, cfg.seed, stimuli=stimuli)
    results = []
    with progress_bar(len(folds) + int(final_model), "training", "fit", enabled=bar) as fits:
        for fold in folds:
            t0 = time.monotonic()
            name = f"fold {fold.index + 1}/{len(folds)}"
            fits.set_description(name)
            seed = cfg.seed * 1000 + fold.index
            trained = _fit_with_bar(cfg, spec, ws, y, fold.train, fold.val, seed, name, bar)
            xs = window_tensors(ws, fold.test, inputs, trained.norms)
            scores = predict_scores(trained.module, xs, torch.device("cpu"))
            pred = (scores > 0).numpy().astype(np.int64)
            prob = torch.sigmoid(scores.double()).numpy()  # of high, as the exported ``probs``
            metrics, confusion = {}, {}
            for k, dim in enumerate(DIMENSIONS):
                m = binary_metrics(y[fold.test, k], pred[:, k], prob[:, k])
                confusion[dim] = m.pop("confusion")
                metrics[dim] = m
            val_xs = window_tensors(ws, fold.val, inputs, trained.norms)
            val_scores = predict_scores(trained.module, val_xs, torch.device("cpu"))
            calibration = fold_calibration(
                val_scores.double().numpy(), y[fold.val], scores.double().numpy(), y[fold.test]
            )
            results.append(
                FoldResult(
                    fold,
                    metrics,
                    confusion,
                    trained.history,
                    len(trained.history["train_loss"]),
                    calibration,
                    quadrant=quadrant_metrics(y[fold.test], pred),
                )
            )
            fits.update()
            if progress:
                with tqdm.external_write_mode(file=sys.stdout):
                    progress(_fold_line(name, time.monotonic() - t0, metrics))
        if not final_model:
            return results, None, rule
        # final model: every window; validation subjects (songs under ``song``) carved out for
        # stopping
        groups = ws.trials if cfg.protocol == "song" else ws.subjects
        rng = np.random.default_rng(cfg.seed)
        ids = rng.permutation(np.unique(groups))
        n_val = max(1, round(0.15 * len(ids)))
        val_mask = np.isin(groups, ids[:n_val])
        fits.set_description("final model")
        final = _fit_with_bar(
            cfg,
            spec,
            ws,
            y,
            np.flatnonzero(~val_mask),
            np.flatnonzero(val_mask),
            cfg.seed * 1000 + 999,
            "final model",
            bar,
        )
        val = np.flatnonzero(val_mask)
        val_xs = window_tensors(ws, val, inputs, final.norms)
        final.calibration = final_calibration(
            predict_scores(final.module, val_xs, torch.device("cpu")).double().numpy(),
            y[val],
            {
                "songs" if cfg.protocol == "song" else "subjects": [
                    int(i) for i in np.unique(groups[val])
                ]
            },
        )
        fits.update()
    return results, final, rule


def summarise(results: list[FoldResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean and SD over the folds of every metric (:data:`METRICS`) of every dimension.

    A fold whose value is ``None`` (the ROC-AUC of a one-class test fold) is left out of the mean
    and SD, which are ``None`` when no fold has a value; ``roc_auc`` also lists those folds
    (their indices) as ``undefined_folds``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for dim in DIMENSIONS:
        out[dim] = {}
        for metric in METRICS:
            values = [r.metrics[dim][metric] for r in results]
            v = np.array([x for x in values if x is not None], dtype=np.float64)
            entry: dict[str, Any] = {
                "mean": float(v.mean()) if len(v) else None,
                "std": float(v.std()) if len(v) else None,
            }
            if metric == "roc_auc":
                entry["undefined_folds"] = [
                    r.fold.index for r, x in zip(results, values, strict=True) if x is None
                ]
            out[dim][metric] = entry
    return out


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
