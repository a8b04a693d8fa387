"""Training reports: ``report.json``, ``report.md`` and PNG figures in the run directory.

Per dimension and test fold, and as mean ± SD over the folds: accuracy, balanced accuracy, F1 of
the high class and ROC-AUC (:data:`~affectstream.training.train.METRICS`, by scikit-learn). ROC-AUC
is undefined for a test fold whose windows are all one class: it is ``null`` there in
``report.json``, ``n/a`` in ``report.md``, and the mean leaves that fold out (and says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affectstream.training.protocols import PROTOCOLS
from affectstream.training.train import DIMENSIONS, FoldResult, summarise, write_json

__all__ = ["METRIC_NOTE", "caveats", "mean_sd", "roc_auc_note", "write_report"]

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
                "confusion": r.confusion,
                "history": r.history,
            }
            for r in results
        ],
    }
    write_json(out / "report.json", doc)
    (out / "report.md").write_text(_markdown(doc))
    _figures(out, results)
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
    lines += ["", "Figures: `confusion.png`, `learning_curves.png`.", ""]
    return "\n".join(lines)


def _figures(out: Path, results: list[FoldResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, dim in zip(axes, DIMENSIONS, strict=True):
        cm = np.sum([np.array(r.confusion[dim]) for r in results], axis=0)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xticks([0, 1], ["low", "high"])
        ax.set_yticks([0, 1], ["low", "high"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{dim} (all folds)")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in results:
        ax.plot(r.history["train_loss"], color="C0", alpha=0.6)
        if r.history["val_loss"]:
            ax.plot(r.history["val_loss"], color="C1", alpha=0.6)
    ax.plot([], color="C0", label="train loss")
    ax.plot([], color="C1", label="validation loss")
    ax.set_xlabel("epoch")
    ax.legend()
    ax.set_title("learning curves (one line per fold)")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)
