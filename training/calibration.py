"""Calibrating the served probabilities: temperature scaling per output, and how it is measured.

A model's output is ``sigmoid(logit)`` per dimension (valence, arousal). Networks trained to a low
loss are often over-confident, and with early stopping on few subjects they can be under-confident
too; nothing in training makes "0.7" mean "high 70 % of the time". Temperature scaling (Guo et al.,
On Calibration of Modern Neural Networks, 2017) fits one number per output, ``T > 0``, and serves
``sigmoid(logit / T)``:

- **what it is fitted on**: the windows of the validation subjects (validation songs under the
  ``song`` protocol), which the model never took a gradient step on; they were used for early
  stopping only. In cross-validation each fold fits its own ``T`` on its validation subjects and
  is measured on its test subjects, which neither training nor the fit saw;
- **how**: ``T`` minimises the binary negative log-likelihood of the validation labels, found by
  bisection on the derivative in ``β = 1/T`` (the loss is convex in ``β``), within
  [:data:`T_MIN`, :data:`T_MAX`]; a bound reached means the validation data ask for more (a
  model no better than chance there gets ``T_MAX``: its probabilities become ~0.5);
- **what it does not change**: ``logit / T`` keeps the sign and the order of the logits, so the
  decision at 0.5, accuracy, balanced accuracy, F1 and ROC-AUC are the same before and after.
  Only how far a probability sits from 0.5 changes. Isotonic regression was not chosen: on the
  few validation subjects a fold has (2-3 here) it overfits into steps, ties windows (which
  lowers ROC-AUC) and can move the 0.5 decision; one parameter per output cannot.

Squared-hinge models (``bimodal-lstm``) output margins, not log-odds; ``sigmoid(margin / T)`` is
then Platt scaling without an intercept, fitted the same way. The intercept is left out on
purpose: it would move the decision threshold away from the margin's 0.

**Expected calibration error** (ECE) of the probability of high, ``p``: windows are put into
:data:`N_BINS` equal-width bins of ``p`` on [0, 1]; ECE = Σ_b (n_b / N) · |mean p in b − fraction
of high labels in b|. It is the calibration of the value a message carries (P(high)), not the
"top-label confidence" variant. With 10 bins and a few hundred test windows per fold, ECE has a
positive bias of a few hundredths even for a perfectly calibrated model: compare before with after
on the same windows, not with 0. The Brier score (mean (p − y)², a proper scoring rule) is reported
beside it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from affectstream.models.contract import ModelContract
    from affectstream.models.runner import ModelRunner

__all__ = [
    "DIMENSIONS",
    "N_BINS",
    "T_MAX",
    "T_MIN",
    "apply_temperature",
    "brier",
    "ece",
    "ece_of_bins",
    "final_calibration",
    "fit_temperature",
    "fold_calibration",
    "logit",
    "reliability_bins",
    "reliability_figure",
    "sigmoid",
]

DIMENSIONS = ("valence", "arousal")
N_BINS = 10
"""Equal-width bins of P(high) on [0, 1] for ECE and the reliability diagram."""
T_MIN, T_MAX = 0.05, 100.0
"""The range the fitted temperature is kept in."""
PROB_EPS = 1e-7


def sigmoid(z: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    z64: NDArray[np.float64] = np.asarray(z, dtype=np.float64)
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z64))
    return out


def logit(p: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """log(p / (1 − p)), with ``p`` clipped to [1e-7, 1 − 1e-7] (float32 sigmoids saturate)."""
    q = np.clip(np.asarray(p, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
    return np.log(q) - np.log1p(-q)


def apply_temperature(
    logits: NDArray[np.floating[Any]], temperature: tuple[float, ...] | float
) -> NDArray[np.float64]:
    """``sigmoid(logits / T)``; ``temperature`` per column of ``logits`` or one for all."""
    return sigmoid(np.asarray(logits, dtype=np.float64) / np.asarray(temperature, np.float64))


def fit_temperature(logits: NDArray[np.floating[Any]], y: NDArray[np.integer[Any]]) -> float:
    """The ``T`` in [T_MIN, T_MAX] that minimises the mean binary NLL of ``sigmoid(logits / T)``
    against ``y`` in {0, 1}. ``ValueError`` for no windows or non-finite logits."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    s = 2.0 * np.asarray(y, dtype=np.float64).ravel() - 1.0  # ±1
    if len(z) == 0 or len(z) != len(s):
        raise ValueError(f"{len(z)} logits for {len(s)} labels: nothing to fit")
    if not np.isfinite(z).all():
        raise ValueError("logits hold NaN/Inf")
    sz = s * z

    def slope(beta: float) -> float:  # d/dβ of Σ softplus(−β·s·z); increasing in β
        return float(-(sz * sigmoid(-beta * sz)).sum())

    lo, hi = math.log(1 / T_MAX), math.log(1 / T_MIN)
    if slope(math.exp(lo)) >= 0:
        return T_MAX
    if slope(math.exp(hi)) <= 0:
        return T_MIN
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if slope(math.exp(mid)) > 0:
            hi = mid
        else:
            lo = mid
    return float(1.0 / math.exp(0.5 * (lo + hi)))


def reliability_bins(
    y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]], n_bins: int = N_BINS
) -> dict[str, list[float]]:
    """Per equal-width bin of ``p``: window ``count``, ``sum_p`` and ``sum_y`` (sums, so folds
    pool by adding); bin b holds b/n ≤ p < (b+1)/n, the last one p = 1 too."""
    pf = np.asarray(p, dtype=np.float64).ravel()
    yf = np.asarray(y, dtype=np.float64).ravel()
    idx = np.clip((pf * n_bins).astype(np.int64), 0, n_bins - 1)
    return {
        "count": np.bincount(idx, minlength=n_bins).astype(np.float64).tolist(),
        "sum_p": np.bincount(idx, weights=pf, minlength=n_bins).tolist(),
        "sum_y": np.bincount(idx, weights=yf, minlength=n_bins).tolist(),
    }


def ece_of_bins(bins: dict[str, list[float]]) -> float | None:
    """ECE of :func:`reliability_bins` output (``None`` for no windows)."""
    n = np.asarray(bins["count"], dtype=np.float64)
    if n.sum() == 0:
        return None
    gap = np.abs(np.asarray(bins["sum_p"]) - np.asarray(bins["sum_y"]))  # n_b·|mean p − mean y|
    return float(gap.sum() / n.sum())


def ece(
    y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]], n_bins: int = N_BINS
) -> float | None:
    """Expected calibration error of P(high) ``p`` against labels ``y`` (module docstring)."""
    return ece_of_bins(reliability_bins(y, p, n_bins))


def brier(y: NDArray[np.integer[Any]], p: NDArray[np.floating[Any]]) -> float | None:
    """Mean (p − y)²; ``None`` for no windows."""
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(p) == 0:
        return None
    return float(np.mean((p - np.asarray(y, dtype=np.float64).ravel()) ** 2))


def fold_calibration(
    val_logits: NDArray[np.floating[Any]],
    y_val: NDArray[np.integer[Any]],
    test_logits: NDArray[np.floating[Any]],
    y_test: NDArray[np.integer[Any]],
    n_bins: int = N_BINS,
) -> dict[str, Any]:
    """Fit ``T`` per dimension on a fold's validation windows, measure it on its test windows.

    logits : shape (n, 2), the model's raw outputs (before the sigmoid); y : (n, 2) in {0, 1}
    returns, per dimension: ``temperature`` (1.0 and ``fitted: false`` when the fold has no
    validation windows), ``ece_before``/``ece_after`` and ``brier_before``/``brier_after`` on the
    test windows, and the test windows' reliability ``bins_before``/``bins_after``
    """
    out: dict[str, Any] = {"n_bins": n_bins, "n_val": len(y_val), "n_test": len(y_test)}
    for k, dim in enumerate(DIMENSIONS):
        fitted = len(y_val) > 0
        t = fit_temperature(val_logits[:, k], y_val[:, k]) if fitted else 1.0
        before = sigmoid(test_logits[:, k])
        after = apply_temperature(test_logits[:, k], t)
        bins_before = reliability_bins(y_test[:, k], before, n_bins)
        bins_after = reliability_bins(y_test[:, k], after, n_bins)
        out[dim] = {
            "temperature": t,
            "fitted": fitted,
            "ece_before": ece_of_bins(bins_before),
            "ece_after": ece_of_bins(bins_after),
            "brier_before": brier(y_test[:, k], before),
            "brier_after": brier(y_test[:, k], after),
            "bins_before": bins_before,
            "bins_after": bins_after,
        }
    return out


def final_calibration(
    val_logits: NDArray[np.floating[Any]],
    y_val: NDArray[np.integer[Any]],
    fitted_on: dict[str, Any],
    n_bins: int = N_BINS,
) -> dict[str, Any] | None:
    """The exported model's calibration, in the contract's form
    (:class:`~affectstream.models.contract.Calibration`): ``T`` per dimension fitted on the
    final model's validation windows; ``None`` when there are none (the runner then serves the
    probabilities unchanged). ``fitted_on`` is completed with the windows count and the ECE on
    those same windows before and after (in-sample: the held-out figures are the folds')."""
    if len(y_val) == 0:
        return None
    temps = [fit_temperature(val_logits[:, k], y_val[:, k]) for k in range(len(DIMENSIONS))]
    in_sample = {
        dim: {
            "ece_before": ece(y_val[:, k], sigmoid(val_logits[:, k]), n_bins),
            "ece_after": ece(y_val[:, k], apply_temperature(val_logits[:, k], temps[k]), n_bins),
        }
        for k, dim in enumerate(DIMENSIONS)
    }
    return {
        "kind": "temperature",
        "temperature": dict(zip(DIMENSIONS, temps, strict=True)),
        "fitted_on": {
            **fitted_on,
            "windows": len(y_val),
            "method": "temperature scaling per output, binary NLL on the validation windows",
            "n_bins": n_bins,
            "in_sample": in_sample,
        },
        "evaluation": {},
    }


def reliability_figure(
    path: Path,
    bins: dict[str, dict[str, dict[str, list[float]]]],
    title: str,
    dataset: dict[str, Any] | None,
) -> None:
    """A reliability diagram per dimension: fraction of high labels against mean P(high) per bin,
    before and after calibration, with the diagonal and the window counts; marked synthetic when
    ``dataset`` is (:func:`~affectstream.training.figures.mark_synthetic`).

    bins : dimension → ``{"before": reliability bins, "after": …}``
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from affectstream.training.figures import mark_synthetic

    fig, axes = plt.subplots(1, len(bins), figsize=(4.2 * len(bins), 4.2), squeeze=False)
    for ax, (dim, by) in zip(axes[0], bins.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
        for key, colour in (("before", "C3"), ("after", "C0")):
            b = by[key]
            n = np.asarray(b["count"])
            keep = n > 0
            mean_p = np.asarray(b["sum_p"])[keep] / n[keep]
            frac = np.asarray(b["sum_y"])[keep] / n[keep]
            e = ece_of_bins(b)
            ax.plot(
                mean_p,
                frac,
                marker="o",
                color=colour,
                label=f"{key} calibration (ECE {e:.3f})" if e is not None else key,
            )
        n_all = np.asarray(by["before"]["count"])
        edges = np.linspace(0, 1, len(n_all) + 1)
        twin = ax.twinx()
        twin.bar(edges[:-1], n_all, width=np.diff(edges), align="edge", alpha=0.12, color="C3")
        twin.set_yticks([])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"predicted P({dim} high), bin mean")
        ax.set_ylabel("fraction of windows labelled high")
        ax.set_title(dim)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=9, y=0.93)
    fig.tight_layout()
    mark_synthetic(fig, dataset)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def threshold_model(model_dir: Path, purpose: str) -> ModelRunner:
    """The folder's model on ONNX Runtime's CPU provider, for a measurement against labels
    (``purpose`` names it in the errors): ``ValueError`` for a stimulus-input model or a label
    rule without a fixed threshold."""
    from affectstream.models.runner import ModelRunner

    runner = ModelRunner(Path(model_dir), providers=["CPUExecutionProvider"])
    contract = runner.contract
    if contract.stimulus is not None:
        raise ValueError(f"{contract.id}: a stimulus-input model is not measured here ({purpose})")
    if contract.label_rule.get("kind") != "threshold":
        raise ValueError(
            f"{contract.id}: label rule {contract.label_rule}; {purpose} needs a fixed threshold"
        )
    return runner


def labelled_windows(
    contract: ModelContract, files: list[Path], stride_s: float
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.int64], list[int]]:
    """The windows of ``files`` as the model is served them (the contract's preprocessing and
    normalisation), their binary labels by the contract's threshold rule, and their subjects."""
    from affectstream.training.datasets.deap import deap_windows
    from affectstream.training.labels import binarise

    ws = deap_windows(files, contract.preprocess_spec(), stride_s)
    threshold = float(contract.label_rule["value"])
    y, _ = binarise(ws.ratings[:, :2], ws.subjects, "threshold", threshold)
    x = {i.name: i.normalise(ws.X[i.name]) for i in contract.inputs}
    return x, y, sorted(int(s) for s in np.unique(ws.subjects))


def calibrate_model_dir(
    model_dir: Path,
    fit_files: list[Path],
    eval_files: list[Path],
    *,
    stride_s: float | None = None,
    batch: int = 256,
    n_bins: int = N_BINS,
    note: str = "",
) -> dict[str, Any]:
    """Fit the temperature of an exported model (ONNX Runtime, as served) on ``fit_files`` and
    measure it on ``eval_files`` (DEAP-format subject files); write it into the folder.

    For a model exported before calibration existed, or whose run is gone: the fit subjects
    should be the final model's validation subjects (never a training subject), the evaluation
    subjects ones it never saw. The ONNX file gets the new contract (with ``calibration`` and the
    synthetic flag) in its metadata, ``model.json`` the new file hash, ``training/reliability.png``
    the reliability diagram (marked synthetic when the data is) and ``README.md`` its calibration
    section. Weights and graph are unchanged. ``note``: a caveat for the card (e.g. that the data
    came from a later version of the generator). Returns the calibration (contract form).
    """
    import json

    import onnx

    from affectstream.models.contract import Calibration, ModelContract, file_sha256
    from affectstream.streaming.synthetic.deap import is_synthetic_deap
    from affectstream.training.export import (
        calibration_section,
        contract_json,
        onnx_metadata,
        with_calibration_section,
    )

    model_dir = Path(model_dir)
    runner = threshold_model(model_dir, "the temperature fit")
    contract = runner.contract
    dataset = contract.trained_on.get("dataset", {})
    stride = float(stride_s or dataset.get("stride_s") or 2.0)

    def logits_and_labels(files: list[Path]) -> tuple[Any, Any, list[int]]:
        x, y, subjects = labelled_windows(contract, files, stride)
        probs = np.concatenate(
            [
                runner.run({n: v[a : a + batch] for n, v in x.items()}, calibrated=False)
                for a in range(0, len(y), batch)
            ]
        )
        return logit(probs), y, subjects

    fit_z, fit_y, fit_subjects = logits_and_labels(fit_files)
    eval_z, eval_y, eval_subjects = logits_and_labels(eval_files)
    if set(fit_subjects) & set(eval_subjects):
        raise ValueError(f"subjects {sorted(set(fit_subjects) & set(eval_subjects))} in both")
    temps = tuple(fit_temperature(fit_z[:, k], fit_y[:, k]) for k in range(len(DIMENSIONS)))
    synthetic = all(is_synthetic_deap(f) for f in [*fit_files, *eval_files])
    bins: dict[str, dict[str, dict[str, list[float]]]] = {}
    evaluation: dict[str, Any] = {
        "held_out": f"subjects {', '.join(map(str, eval_subjects))}, in neither the model's "
        "training nor the fit",
        "synthetic": synthetic,
        "source": "ONNX Runtime outputs of this folder's model",
        "subjects": eval_subjects,
        "windows": len(eval_y),
        "n_bins": n_bins,
        "figure": "training/reliability.png",
        **({"note": note} if note else {}),
    }
    for k, dim in enumerate(DIMENSIONS):
        before, after = sigmoid(eval_z[:, k]), apply_temperature(eval_z[:, k], temps[k])
        bins[dim] = {
            "before": reliability_bins(eval_y[:, k], before, n_bins),
            "after": reliability_bins(eval_y[:, k], after, n_bins),
        }
        evaluation[dim] = {
            "ece_before": ece_of_bins(bins[dim]["before"]),
            "ece_after": ece_of_bins(bins[dim]["after"]),
            "brier_before": brier(eval_y[:, k], before),
            "brier_after": brier(eval_y[:, k], after),
        }
    calibration = Calibration(
        temperature=(temps[0], temps[1]),
        fitted_on={
            "subjects": fit_subjects,
            "windows": len(fit_y),
            "stride_s": stride,
            "method": "temperature scaling per output, binary NLL; logits recovered from the "
            "ONNX probabilities",
            "why_these_subjects": "the final model's validation subjects (early stopping only)",
        },
        evaluation=evaluation,
    )
    data = {"synthetic": synthetic, "format": "DEAP"}
    (model_dir / "training").mkdir(exist_ok=True)
    reliability_figure(
        model_dir / "training" / "reliability.png",
        bins,
        f"{contract.id}: held-out subjects {', '.join(map(str, eval_subjects))}; temperature "
        f"fitted on subjects {', '.join(map(str, fit_subjects))}",
        data,
    )
    new = ModelContract(**{**contract.__dict__, "calibration": calibration, "onnx_sha256": ""})
    montage = new.trained_on.get("montage") or None
    onnx_path = model_dir / "model.onnx"
    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(onnx_metadata(new, montage))
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(onnx_path))
    final = ModelContract(**{**new.__dict__, "onnx_sha256": file_sha256(onnx_path)})
    (model_dir / "model.json").write_text(contract_json(final, montage))
    card = model_dir / "README.md"
    if card.is_file():
        section = "\n".join(calibration_section(final, bool(dataset.get("synthetic"))))
        card.write_text(with_calibration_section(card.read_text(), section))
    ModelRunner(model_dir, providers=["CPUExecutionProvider"])  # loads, hash and flags agree
    as_json: dict[str, Any] = json.loads(json.dumps(calibration.to_dict()))
    return as_json
