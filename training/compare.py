"""One side-by-side report of finished training runs (``affectstream train --compare RUN … --out``).

Reads each run's ``report.json`` and writes ``OUT/report.json``, ``OUT/report.md`` (two tables:
model × protocol × valence/arousal accuracy and F1, then balanced accuracy and ROC-AUC, mean ± SD
over folds; the class balance; the caveats of every run; the commands that reproduce it all) and
``OUT/comparison.png`` (accuracy and balanced accuracy per model and protocol). Nothing is
retrained: the figures are the runs' own. A run whose report predates balanced accuracy and ROC-AUC
shows ``—`` for them.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from affectstream.training.report import METRIC_NOTE, mean_sd, roc_auc_note
from affectstream.training.train import DIMENSIONS, write_json

__all__ = ["compare_runs"]

_READS = {"eda_cvx3": "EDA", "stimulus_features": "music"}
_WHY_TWO_PROTOCOLS = (
    "**Why two protocols.** Under `subject` the test subjects are new, but every test song was "
    "also heard by training subjects: the model has seen that song's music feature vector "
    "(identical for every listener) together with other listeners' labels, and a song's labels "
    "agree across listeners. A model that reads the music can therefore recognise the song and "
    "predict its usual label without reading the listener at all: **stimulus leakage**. "
    "RTCAN-1D's published PMEmo figures come from a random split of (subject, song) pairs, which "
    "has the same leak. Under `song` the test songs are new (no music id in both train and test): "
    "only what the music features say about an unheard song, and the listener's EDA, can help. "
    "**The song protocol is the one that measures generalisation to new music.** It shares "
    "subjects between train and test, so it does not measure generalisation to a new person; "
    "the subject protocol does that. The EDA-only model reads no music, but under `subject` "
    "its training set still holds other listeners' EDA for every test song."
)


_SAID_ABOVE = ("Stimulus leakage:", "The song protocol holds songs out")


def compare_runs(run_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Write the comparison of ``run_dirs`` to ``out``; returns the JSON document.

    Raises ``FileNotFoundError`` for a run without ``report.json`` and ``ValueError`` if the runs
    were not made on the same windows with the same label rule (their figures would not compare).
    """
    runs = []
    for d in map(Path, run_dirs):
        path = d / "report.json"
        if not path.is_file():
            raise FileNotFoundError(f"{d}: no report.json (not a finished affectstream train run)")
        runs.append((d, json.loads(path.read_text())))
    first = runs[0][1]
    for d, r in runs[1:]:
        for key in ("path", "windows", "subjects"):
            if r["dataset"].get(key) != first["dataset"].get(key):
                raise ValueError(
                    f"{d}: dataset {key} {r['dataset'].get(key)!r} differs from "
                    f"{runs[0][0]}'s {first['dataset'].get(key)!r}"
                )
        if r["class_balance"] != first["class_balance"]:
            raise ValueError(f"{d}: different labels (class balance) from {runs[0][0]}")
    doc: dict[str, Any] = {
        "kind": "comparison",
        "dataset": first["dataset"],
        "label_rule": first["label_rule"].get("kind"),
        "class_balance": first["class_balance"],
        "class_balance_recordings": first.get("class_balance_recordings"),
        "majority_accuracy": _majority(first["class_balance"]),
        "constant_answer": {r["protocol"]: _constant_answer(r) for _, r in runs},
        "runs": [_run_entry(d, r) for d, r in runs],
        "caveats": list(dict.fromkeys(c for _, r in runs for c in r.get("caveats", []))),
        "commands": _commands(first["dataset"], runs, out),
        "runtime_s": round(sum(r["config"].get("runtime_s", 0.0) for _, r in runs), 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", doc)
    (out / "report.md").write_text(_markdown(doc))
    _figure(out / "comparison.png", doc)
    return doc


def _majority(balance: dict[str, dict[str, int]]) -> dict[str, float]:
    return {d: max(b["high"], b["low"]) / max(1, b["high"] + b["low"]) for d, b in balance.items()}


def _constant_answer(r: dict[str, Any]) -> dict[str, float]:
    """Accuracy of always answering the class that is the majority outside the test fold, mean
    over folds: the chance level of that protocol's folds (a song-independent test fold can be
    far from the overall balance, since a song's listeners tend to agree)."""
    out = {}
    for d in DIMENSIONS:
        total = r["class_balance"][d]
        accs = []
        for f in r["folds"]:
            (tn, fp), (fn, tp) = f["confusion"][d]
            test_low, test_high = tn + fp, fn + tp
            rest_high = total["high"] - test_high
            rest_low = total["low"] - test_low
            guess_high = rest_high > rest_low
            accs.append((test_high if guess_high else test_low) / max(1, test_high + test_low))
        out[d] = float(np.mean(accs))
    return out


def _run_entry(d: Path, r: dict[str, Any]) -> dict[str, Any]:
    from affectstream.models.registry import get

    reads = " + ".join(_READS.get(i.kind, i.kind) for i in get(r["model"]).inputs)
    cfg = r["config"]
    return {
        "run": str(d),
        "model": r["model"],
        "reads": reads,
        "protocol": r["protocol"],
        "protocol_description": r["protocol_description"],
        "summary": r["summary"],
        "epochs_run": [f["epochs_run"] for f in r["folds"]],
        "settings": {
            **{k: cfg.get(k) for k in ("folds", "epochs", "patience", "batch_size", "lr", "seed")},
            "stride_s": r["dataset"].get("stride_s"),
        },
        "command": cfg.get("command"),
        "runtime_s": cfg.get("runtime_s"),
        "folds": [
            {
                "index": f["index"],
                "test_subjects": f["test_subjects"],
                "test_stimuli": f.get("test_stimuli", []),
                "n_train": f["n_train"],
                "n_val": f["n_val"],
                "n_test": f["n_test"],
                "epochs_run": f["epochs_run"],
                "metrics": f["metrics"],
            }
            for f in r["folds"]
        ],
    }


def _commands(ds: dict[str, Any], runs: list[tuple[Path, dict[str, Any]]], out: Path) -> list[str]:
    cmds = []
    gen = ds.get("generator")
    if gen and ds.get("format") == "PMEmo":
        cmds.append(
            shlex.join(
                [
                    "affectstream",
                    "synth",
                    "--format",
                    "pmemo",
                    "--out",
                    ds["path"],
                    "--subjects",
                    str(gen["subjects"]),
                    "--trials",
                    str(gen["songs"]),
                    "--seed",
                    str(gen["seed"]),
                ]
            )
        )
    elif gen:
        cmds.append(
            shlex.join(
                [
                    "affectstream",
                    "synth",
                    "--out",
                    ds["path"],
                    "--subjects",
                    str(gen["subjects"]),
                    "--trials",
                    str(gen["trials"]),
                    "--seed",
                    str(gen["seed"]),
                ]
            )
        )
    cmds += [r["config"]["command"] for _, r in runs if r["config"].get("command")]
    cmds.append(
        shlex.join(
            ["affectstream", "train", "--compare", *(str(d) for d, _ in runs), "--out", str(out)]
        )
    )
    return cmds


def _pm(m: dict[str, Any] | None) -> str:
    """``mean ± std`` of one summary entry (:func:`mean_sd`); ``—`` if the run's report lacks the
    metric (a run made before balanced accuracy and ROC-AUC were reported)."""
    return "—" if m is None else mean_sd(m)


def _markdown(doc: dict[str, Any]) -> str:
    ds = doc["dataset"]
    real = ds.get("format", "DEAP")
    lines = [f"# {real} training comparison: models × protocols", ""]
    if ds.get("synthetic"):
        lines += [
            f"> **SYNTHETIC DATA, NOT {real.upper()}.** Every figure below comes from "
            f"affectstream's synthetic {real}-layout generator (`{ds.get('name')}`), whose "
            "effects are choices made in this repository. They say nothing about performance on "
            f"real {real} recordings, must not be compared with published {real} results, and "
            "only show that the pipeline runs and that the protocols separate what they should.",
            "",
        ]
    lines += [
        "| model | reads | protocol | valence accuracy | valence F1 | arousal accuracy "
        "| arousal F1 | epochs run (per fold) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        s = r["summary"]
        lines.append(
            f"| `{r['model']}` | {r['reads']} | `{r['protocol']}` | "
            f"{_pm(s['valence']['accuracy'])} | {_pm(s['valence']['f1'])} | "
            f"{_pm(s['arousal']['accuracy'])} | {_pm(s['arousal']['f1'])} | "
            f"{', '.join(map(str, r['epochs_run']))} |"
        )
    lines += [
        "",
        "| model | protocol | valence balanced accuracy | valence ROC-AUC "
        "| arousal balanced accuracy | arousal ROC-AUC |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        s = r["summary"]
        lines.append(
            f"| `{r['model']}` | `{r['protocol']}` | "
            + " | ".join(
                _pm(s[d].get(k)) for d in DIMENSIONS for k in ("balanced_accuracy", "roc_auc")
            )
            + " |"
        )
    bal = doc["class_balance"]
    chance = "; ".join(
        f"`{proto}` valence {c['valence']:.3f}, arousal {c['arousal']:.3f}"
        for proto, c in doc["constant_answer"].items()
    )
    undefined = [
        f"`{r['model']}` `{r['protocol']}`: {note}"
        for r in doc["runs"]
        if (note := roc_auc_note(r["summary"]))
    ]
    lines += [
        "",
        METRIC_NOTE
        + (
            " —: the run's report predates balanced accuracy and ROC-AUC."
            if any("balanced_accuracy" not in r["summary"]["valence"] for r in doc["runs"])
            else ""
        ),
        *([""] + [f"- {u}" for u in undefined] if undefined else []),
        "",
        "For reference, a constant answer "
        "(the majority class outside the test fold, given for every test window) scores, over "
        f"the same folds, an accuracy of: {chance}; a coin scores 0.5 on average. (A "
        "song-independent test fold can be far from the overall balance: a song's listeners tend "
        "to agree.)",
        "",
        "## Data and labels",
        "",
        f"- dataset: {ds.get('name')}; {ds.get('subjects')} subjects"
        + (f", {ds['songs']} songs, {ds['recordings']} recordings" if "songs" in ds else "")
        + f", {ds.get('windows')} windows ({ds.get('window_s', '?')} s, one every "
        f"{ds.get('stride_s')} s)",
        f"- label rule: `{doc['label_rule']}`; class balance (high/low): "
        + ", ".join(f"{d} {b['high']}/{b['low']}" for d, b in bal.items())
        + " windows",
    ]
    if doc.get("class_balance_recordings"):
        lines[-1] += (
            "; "
            + ", ".join(
                f"{d} {b['high']}/{b['low']}" for d, b in doc["class_balance_recordings"].items()
            )
            + " recordings (subject × song)"
        )
    if "rating_source" in ds:
        lines.append(f"- ratings: {', '.join(ds['rating_source'])}; skipped: {ds.get('skipped')}")
    if ds.get("format") == "PMEmo":
        rates = ", ".join(f"{r:g}" for r in ds.get("feature_rate_hz", []))
        lines.append(
            f"- EDA: {ds.get('eda_rate_hz', 50):g} Hz into the service's own preprocessing "
            f"(anti-aliasing decimation to {rates} Hz, online cvxEDA → origin, tonic, phasic; "
            f"serving hop {ds.get('hop_s', '?')} s)"
        )
    lines += ["", "## Leakage: read this before the table", "", _WHY_TWO_PROTOCOLS, ""]
    # the per-run leakage notes say the same as the paragraph above; the others stay
    lines += [f"- {c}" for c in doc["caveats"] if not c.startswith(_SAID_ABOVE)]
    settings = {json.dumps(r["settings"], sort_keys=True) for r in doc["runs"]}
    lines += ["", "## Training settings", ""]
    for s in sorted(settings):
        st = json.loads(s)
        lines.append(
            f"- {st['folds']} folds, at most {st['epochs']} epochs (early stopping, patience "
            f"{st['patience']}), batch {st['batch_size']}, Adam lr {st['lr']:g}, "
            f"seed {st['seed']}, a training window every {st['stride_s']:g} s"
        )
    lines += [
        "- Deliberately short training, to keep the whole comparison to a few minutes on 2 CPU "
        "cores (few epochs, and a stride longer than the default 2 s if the commands below say "
        "so; consecutive 20 s windows still overlap); nothing was tuned, and longer training "
        "would change the figures.",
        f"- total runtime of the runs: {doc['runtime_s']:.0f} s (preprocessing included)",
        "",
        "## Reproduce",
        "",
        "```console",
        *(f"$ {c}" for c in doc["commands"]),
        "```",
        "",
        "Per-fold figures and test groups: `report.json`. Figure: `comparison.png`.",
        "",
    ]
    return "\n".join(lines)


def _figure(path: Path, doc: dict[str, Any]) -> None:
    """Bars of mean ± SD over folds per model and protocol: accuracy (dashed: the majority class
    of all windows) above balanced accuracy (dashed: 0.5, a constant answer's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from affectstream.training.figures import mark_synthetic

    models = list(dict.fromkeys(r["model"] for r in doc["runs"]))
    protocols = list(dict.fromkeys(r["protocol"] for r in doc["runs"]))
    width = 0.8 / max(1, len(protocols))
    rows = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"))
    fig, axes = plt.subplots(2, 2, figsize=(7, 4.6), sharey=True)
    for (metric, title), row in zip(rows, axes, strict=True):
        for ax, dim in zip(row, DIMENSIONS, strict=True):
            for k, proto in enumerate(protocols):
                x, mean, std = [], [], []
                for i, m in enumerate(models):
                    run = next(
                        (r for r in doc["runs"] if r["model"] == m and r["protocol"] == proto),
                        None,
                    )
                    # a run from before balanced accuracy was reported has no bar there
                    if run is not None and metric in run["summary"][dim]:
                        value = run["summary"][dim][metric]
                        x.append(i + (k - (len(protocols) - 1) / 2) * width)
                        mean.append(value["mean"])
                        std.append(value["std"])
                ax.bar(x, mean, width, yerr=std, capsize=2, label=proto)
            chance = doc["majority_accuracy"][dim] if metric == "accuracy" else 0.5
            ax.axhline(chance, color="k", ls="--", lw=0.8)
            ax.set_xticks(np.arange(len(models)), models, fontsize=8)
            ax.set_title(f"{dim} {title}", fontsize=9)
            ax.set_ylim(0.3, 1.0)
    axes[0][0].legend(fontsize=7, title="protocol", title_fontsize=7)
    fig.tight_layout()
    mark_synthetic(fig, doc["dataset"])  # after tight_layout: it takes the top line
    fig.savefig(path, dpi=80)
    plt.close(fig)
