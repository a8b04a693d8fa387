"""Training reports: ``report.json``, ``report.md`` and PNG figures in the run directory.

Per dimension and test fold, and as mean ± SD over the folds: accuracy, balanced accuracy, F1 of
the high class and of the low class (``f1``, ``f1_low``) and ROC-AUC
(:data:`~affectstream.training.train.METRICS`, by scikit-learn). ROC-AUC is undefined for a test
fold whose windows are all one class: it is ``null`` there in ``report.json``, ``n/a`` in
``report.md``, and the mean leaves that fold out (and says so).

Calibration (:mod:`affectstream.training.calibration`): per fold, the temperature fitted on the
fold's validation subjects and the expected calibration error (ECE, 10 equal-width bins of
P(high)) and Brier score on its test subjects before and after; in ``summary_calibration``
their mean ± SD over the folds and the ECE of all test windows pooled; ``reliability.png``, the
pooled reliability diagram before and after.

Figures: ``confusion.png``, ``learning_curves.png``, ``reliability.png``. Made from synthetic
data, each carries a visible mark saying so (:func:`~affectstream.training.figures.mark_synthetic`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectstream.training.calibration import N_BINS, ece_of_bins, reliability_figure
from affectstream.training.figures import mark_synthetic
from affectstream.training.protocols import PROTOCOLS
from affectstream.training.train import DIMENSIONS, FoldResult, summarise, write_json

__all__ = [
    "CALIBRATION_NOTE",
    "METRIC_NOTE",
    "calibration_summary",
    "caveats",
    "figures_from_report",
    "mean_sd",
    "roc_auc_note",
    "write_report",
]

CALIBRATION_NOTE = (
    "Calibration: per fold, one temperature per dimension fitted on the fold's validation "
    "subjects (binary NLL), applied to the test subjects' logits. ECE = expected calibration "
    f"error of P(high), {N_BINS} equal-width bins on [0, 1], on the test windows (lower is "
    "better; a few hundredths of it is the bias of a finite sample); Brier = mean (p − y)². "
    "Temperature scaling changes no decision and no ranking: accuracy, F1 and ROC-AUC are the "
    "same after it."
)
"""What the calibration columns mean, printed under them."""


def _mean_std(values: list[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    return {
        "mean": float(v.mean()) if len(v) else None,
        "std": float(v.std()) if len(v) else None,
    }


def calibration_summary(results: list[FoldResult]) -> dict[str, Any] | None:
    """Per dimension, over the folds that have a calibration (``FoldResult.calibration``): mean
    ± SD of the temperature and of ECE and Brier before/after on the test windows, the ECE of all
    test windows pooled before/after and the pooled bins; ``None`` when no fold has one."""
    cals = [r.calibration for r in results if r.calibration]
    if not cals:
        return None
    out: dict[str, Any] = {"n_bins": cals[0].get("n_bins", N_BINS), "folds": len(cals)}
    for dim in DIMENSIONS:
        entry: dict[str, Any] = {
            key: _mean_std([c[dim][key] for c in cals])
            for key in ("temperature", "ece_before", "ece_after", "brier_before", "brier_after")
        }
        for when in ("before", "after"):
            pooled = {
                k: np.sum([c[dim][f"bins_{when}"][k] for c in cals], axis=0).tolist()
                for k in ("count", "sum_p", "sum_y")
            }
            entry[f"bins_{when}"] = pooled
            entry[f"pooled_ece_{when}"] = ece_of_bins(pooled)
        out[dim] = entry
    return out


METRIC_NOTE = (
    "Mean ± SD over the test folds. F1 is that of the high class; balanced accuracy is the mean "
    "of the recalls of high and low, and ROC-AUC is computed from the predicted probability of "
    "high: both are 0.5 for a constant answer, whatever the class balance. ROC-AUC is undefined "
    "for a test fold whose windows are all one class (null in report.json, n/a here); the mean "
    "leaves such a fold out, and balanced accuracy there is the recall of its one class."
)
"""What the metric columns mean, printed under them (the comparison report prints it too)."""


def roc_auc_note(summary: dict[str, Any]) -> str | None:
    """Which folds have no ROC-AUC (one class in their test windows), per dimension; ``None``
    when every fold has one. ``summary`` : the ``summary`` of a report."""
    undefined = {
        d: m["roc_auc"].get("undefined_folds", [])
        for d, m in summary.items()
        if "roc_auc" in m and m["roc_auc"].get("undefined_folds")
    }
    if not undefined:
        return None
    return "ROC-AUC undefined (test windows of one class) in " + "; ".join(
        f"{d}: fold{'s' if len(f) > 1 else ''} {', '.join(str(i) for i in f)}"
        for d, f in undefined.items()
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def mean_sd(m: dict[str, Any]) -> str:
    """``mean ± std`` of one summary entry; ``n/a`` when no fold has a value, and how many folds
    the mean leaves out when some have none."""
    if m["mean"] is None:
        return "n/a"
    left_out = len(m.get("undefined_folds", []))
    return f"{m['mean']:.3f} ± {m['std']:.3f}" + (
        f" (without {left_out} fold{'s' if left_out > 1 else ''})" if left_out else ""
    )


def caveats(protocol: str, *, stimuli: bool, reads_stimulus: bool, label_rule: str) -> list[str]:
    """What a reader must know to read the figures: leakage of the protocol and the label rule.

    stimuli : the windows have stimulus ids (PMEmo songs); reads_stimulus : the model reads the
    stimulus features (music)
    """
    out = []
    if stimuli and protocol in ("subject", "loso"):
        who = (
            "This model reads the music features, so it can score by recognising a song it was "
            "trained on."
            if reads_stimulus
            else "This model reads no music features, but training holds other listeners' EDA "
            "for every test song."
        )
        out.append(
            "Stimulus leakage: under the subject protocol every test song is also a training "
            "song, so the same song's music feature vector, with its correlated labels, is in "
            f"train and test. {who} These figures do not measure generalisation to new music; "
            "the song protocol (no song in both train and test) is the one that does."
        )
    if stimuli and protocol == "song":
        out.append(
            "The song protocol holds songs out (no music id in both train and test): it measures "
            "generalisation to new music. The subjects are shared between train and test, so it "
            "does not measure generalisation to a new person."
        )
    if protocol == "segment":
        out.append(
            "**Leaky protocol:** windows of the same trial are in train and test; the figures "
            "overstate what a model does for a new person."
        )
    if label_rule == "kmeans":
        out.append(
            "k-means labels (after RTCAN-1D's rule): each subject's threshold per dimension is "
            "the midpoint of a 1-D 2-means clustering of all that subject's ratings of that "
            "dimension, test recordings included (the paper clusters the (valence, arousal) pairs "
            "in the plane); they define the labels and see no features."
        )
    if label_rule == "kmeans2d":
        out.append(
            "2-D k-means labels (RTCAN-1D's rule): each subject's thresholds are the coordinates "
            "of the midpoint between the two centres of a k-means on all that subject's (valence, "
            "arousal) pairs, test recordings included; they define the labels and see no features."
        )
    return out


def write_report(
    out: Path,
    *,
    model: str,
    protocol: str,
    results: list[FoldResult],
    label_rule: dict[str, Any],
    dataset: dict[str, Any],
    config: dict[str, Any],
    class_balance: dict[str, dict[str, int]],
    class_balance_recordings: dict[str, dict[str, int]] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Write the report files; returns the JSON document.

    class_balance : high/low counts over windows; class_balance_recordings : the same counting
    each (subject, trial) once; notes : caveats (:func:`caveats`), shown before the figures
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    calibration = calibration_summary(results)
    if notes is None:
        notes = caveats(
            protocol, stimuli=False, reads_stimulus=False, label_rule=label_rule.get("kind", "")
        )
    doc: dict[str, Any] = {
        "model": model,
        "protocol": protocol,
        "protocol_description": PROTOCOLS[protocol],
        "leaky": protocol == "segment",
        "dataset": dataset,
        "label_rule": label_rule,
        "class_balance": class_balance,
        **(
            {"class_balance_recordings": class_balance_recordings}
            if class_balance_recordings
            else {}
        ),
        "caveats": notes,
        "config": config,
        "summary": summary,
        **({"summary_calibration": calibration} if calibration else {}),
        "folds": [
            {
                "index": r.fold.index,
                "train_subjects": list(r.fold.train_subjects),
                "val_subjects": list(r.fold.val_subjects),
                "test_subjects": list(r.fold.test_subjects),
                **(
                    {
                        "train_stimuli": list(r.fold.train_stimuli),
                        "val_stimuli": list(r.fold.val_stimuli),
                        "test_stimuli": list(r.fold.test_stimuli),
                    }
                    if r.fold.test_stimuli
                    else {}
                ),
                "n_train": len(r.fold.train),
                "n_val": len(r.fold.val),
                "n_test": len(r.fold.test),
                "epochs_run": r.epochs_run,
                "metrics": r.metrics,
                **({"calibration": r.calibration} if r.calibration else {}),
                "confusion": r.confusion,
                "history": r.history,
            }
            for r in results
        ],
    }
    write_json(out / "report.json", doc)
    (out / "report.md").write_text(_markdown(doc))
    _figures(out, [r.confusion for r in results], [r.history for r in results], dataset)
    if calibration:
        reliability_figure(
            out / "reliability.png",
            {
                d: {"before": calibration[d]["bins_before"], "after": calibration[d]["bins_after"]}
                for d in DIMENSIONS
            },
            f"{model}, test subjects of all folds pooled; temperature fitted per fold on its "
            "validation subjects",
            dataset,
        )
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    ds = doc["dataset"]
    real = ds.get("format", "DEAP")
    lines = [f"# Training report: {doc['model']}", ""]
    if ds.get("synthetic"):
        lines += [
            f"> **Synthetic data, not {real}.** These figures come from affectstream's synthetic",
            f"> {real}-format generator and say nothing about performance on real recordings.",
            "",
        ]
    for note in doc.get("caveats", []):
        lines += [f"> {note}", ""]
    balance = "- class balance (high/low): " + ", ".join(
        f"{d} {b['high']}/{b['low']}" for d, b in doc["class_balance"].items()
    )
    if doc.get("class_balance_recordings"):
        balance += (
            " windows; "
            + ", ".join(
                f"{d} {b['high']}/{b['low']}" for d, b in doc["class_balance_recordings"].items()
            )
            + " recordings (subject × song)"
        )
    lines += [
        f"- dataset: {ds.get('name')} ({ds.get('subjects')} subjects, {ds.get('windows')} windows)",
        f"- protocol: `{doc['protocol']}` — {doc['protocol_description']}",
        f"- label rule: {doc['label_rule'].get('kind')}",
        balance,
        "",
        "| dimension | accuracy | balanced accuracy | F1 | ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    s = doc["summary"]
    for d in DIMENSIONS:
        lines.append(
            f"| {d} | {mean_sd(s[d]['accuracy'])} | {mean_sd(s[d]['balanced_accuracy'])} | "
            f"{mean_sd(s[d]['f1'])} | {mean_sd(s[d]['roc_auc'])} |"
        )
    lines += ["", METRIC_NOTE]
    undefined = roc_auc_note(s)
    if undefined:
        lines += ["", f"**{undefined}.**"]
    cal = doc.get("summary_calibration")
    lines += [
        "",
        "| dimension | F1 high | F1 low | temperature | ECE before | ECE after | "
        "pooled ECE before → after | Brier before | Brier after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in DIMENSIONS:
        row = f"| {d} | {mean_sd(s[d]['f1'])} | "
        row += f"{mean_sd(s[d]['f1_low']) if 'f1_low' in s[d] else 'n/a'} | "
        if cal:
            c = cal[d]
            row += (
                f"{mean_sd(c['temperature'])} | {mean_sd(c['ece_before'])} | "
                f"{mean_sd(c['ece_after'])} | {_fmt(c['pooled_ece_before'])} → "
                f"{_fmt(c['pooled_ece_after'])} | {mean_sd(c['brier_before'])} | "
                f"{mean_sd(c['brier_after'])} |"
            )
        else:
            row += "n/a | n/a | n/a | n/a | n/a | n/a |"
        lines.append(row)
    lines += ["", CALIBRATION_NOTE]
    by_song = doc["protocol"] == "song"
    lines += [
        "",
        f"| fold | test {'songs' if by_song else 'subjects'} | valence acc | valence bal. acc "
        "| valence ROC-AUC | arousal acc | arousal bal. acc | arousal ROC-AUC | epochs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in doc["folds"]:
        held_out = f["test_stimuli"] if by_song else f["test_subjects"]
        m = f["metrics"]
        lines.append(
            f"| {f['index']} | {', '.join(map(str, held_out))} | "
            + " | ".join(
                _fmt(m[d][k])
                for d in DIMENSIONS
                for k in ("accuracy", "balanced_accuracy", "roc_auc")
            )
            + f" | {f['epochs_run']} |"
        )
    figures = "`confusion.png`, `learning_curves.png`" + (", `reliability.png`" if cal else "")
    lines += ["", f"Figures: {figures}.", ""]
    return "\n".join(lines)


def figures_from_report(run_dir: Path) -> list[Path]:
    """Redraw ``confusion.png`` and ``learning_curves.png`` of ``run_dir`` from its
    ``report.json`` (the folds' confusion matrices and histories), with the synthetic-data mark
    when the report's dataset is synthetic; returns the files written."""
    import json

    doc = json.loads((Path(run_dir) / "report.json").read_text())
    folds = doc["folds"]
    _figures(
        Path(run_dir),
        [f["confusion"] for f in folds],
        [f["history"] for f in folds],
        doc["dataset"],
    )
    return [Path(run_dir) / "confusion.png", Path(run_dir) / "learning_curves.png"]


def _figures(
    out: Path,
    confusions: list[dict[str, list[list[int]]]],
    histories: list[dict[str, list[float]]],
    dataset: dict[str, Any],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, dim in zip(axes, DIMENSIONS, strict=True):
        cm = np.sum([np.array(c[dim]) for c in confusions], axis=0)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks([0, 1], ["low", "high"])
        ax.set_yticks([0, 1], ["low", "high"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{dim} (all folds)")
    fig.tight_layout()
    mark_synthetic(fig, dataset)
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for h in histories:
        ax.plot(h["train_loss"], color="C0", alpha=0.6)
        if h.get("val_loss"):
            ax.plot(h["val_loss"], color="C1", alpha=0.6)
    ax.plot([], color="C0", label="train loss")
    ax.plot([], color="C1", label="validation loss")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.set_title("learning curves (one line per fold)")
    fig.tight_layout()
    mark_synthetic(fig, dataset)
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)
