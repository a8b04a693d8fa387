"""Training reports: ``report.json``, ``report.md`` and PNG figures in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.protocols import PROTOCOLS
from training.train import DIMENSIONS, FoldResult, summarise, write_json

__all__ = ["write_report"]


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
) -> dict[str, Any]:
    """Write the report files; returns the JSON document."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    doc = {
        "model": model,
        "protocol": protocol,
        "protocol_description": PROTOCOLS[protocol],
        "leaky": protocol == "segment",
        "dataset": dataset,
        "label_rule": label_rule,
        "class_balance": class_balance,
        "config": config,
        "summary": summary,
        "folds": [
            {
                "index": r.fold.index,
                "train_subjects": list(r.fold.train_subjects),
                "val_subjects": list(r.fold.val_subjects),
                "test_subjects": list(r.fold.test_subjects),
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
    lines = [f"# Training report: {doc['model']}", ""]
    if ds.get("synthetic"):
        lines += [
            "> **Synthetic data, not DEAP.** These figures come from affectstream's synthetic",
            "> DEAP-format generator and say nothing about performance on real recordings.",
            "",
        ]
    if doc["leaky"]:
        lines += [
            "> **Leaky protocol:** windows of the same trial are in train and test; the",
            "> figures overstate what a model does for a new person.",
            "",
        ]
    lines += [
        f"- dataset: {ds.get('name')} ({ds.get('subjects')} subjects, {ds.get('windows')} windows)",
        f"- protocol: `{doc['protocol']}` — {doc['protocol_description']}",
        f"- label rule: {doc['label_rule'].get('kind')}",
        "- class balance (high/low): "
        + ", ".join(f"{d} {b['high']}/{b['low']}" for d, b in doc["class_balance"].items()),
        "",
        "| dimension | accuracy (mean ± std) | F1 (mean ± std) |",
        "|---|---|---|",
    ]
    for d in DIMENSIONS:
        a, f = doc["summary"][d]["accuracy"], doc["summary"][d]["f1"]
        lines.append(
            f"| {d} | {a['mean']:.3f} ± {a['std']:.3f} | {f['mean']:.3f} ± {f['std']:.3f} |"
        )
    lines += [
        "",
        "| fold | test subjects | valence acc | arousal acc | epochs |",
        "|---|---|---|---|---|",
    ]
    for f in doc["folds"]:
        lines.append(
            f"| {f['index']} | {', '.join(map(str, f['test_subjects']))} | "
            f"{f['metrics']['valence']['accuracy']:.3f} | "
            f"{f['metrics']['arousal']['accuracy']:.3f} | {f['epochs_run']} |"
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
