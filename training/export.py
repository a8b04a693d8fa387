"""Export a trained run to ONNX + contract + model card (``affectstream export``).

``RUN_DIR/final.pt`` (state dict) and ``RUN_DIR/final.json`` (architecture, preprocessing, norms,
label rule, dataset, protocol and metrics) are written by ``affectstream train``. Export writes
``OUT/model.onnx`` (opset 17, output ``probs`` = sigmoid of the logits), ``OUT/model.json`` (the
contract, with the ONNX file's sha256; the same contract without the hash is stored in the ONNX
metadata under ``affectstream_contract``, since a file cannot hold its own hash) and
``OUT/README.md`` (model card), after checking PyTorch vs ONNX Runtime on random inputs.

Calibration: the final model's temperatures (fitted on its validation subjects by
``affectstream train``, :mod:`affectstream.training.calibration`) go into the contract's
``calibration``, with the cross-validated ECE before and after on held-out subjects as its
``evaluation``; the model card quotes both. The ONNX metadata also gets
:data:`~affectstream.models.contract.ONNX_SYNTHETIC_KEY`, so the ONNX file alone says whether
the model was trained on synthetic data.

A fusion model (``rtcan1d-music``, ``music-mlp``) also has a stimulus input: its run holds
``stimulus_features.npz`` (every song of the dataset, raw values), copied to ``OUT`` and named in
the contract's :class:`~affectstream.models.contract.StimulusInput` with its sha256 and the final
model's training statistics.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectstream.models.contract import (
    ONNX_CONTRACT_KEY,
    ONNX_SYNTHETIC_KEY,
    STIMULUS_TABLE,
    Calibration,
    InputContract,
    ModelContract,
    StimulusInput,
    feature_from_dict,
    feature_to_dict,
    file_sha256,
    load_stimulus_table,
)
from affectstream.models.export import export_onnx, onnx_parity
from affectstream.models.registry import build, get
from affectstream.streaming.formats.deap import BASELINE_SAMPLES, SFREQ
from affectstream.streaming.preprocess.spec import FeatureInput
from affectstream.training.augment import ElectrodeDropout, StreamDropout
from affectstream.training.coverage import COVERAGE_FILE, with_coverage_section
from affectstream.training.datasets.windows import WindowSet
from affectstream.training.presets import Preset
from affectstream.training.report import mean_sd
from affectstream.training.train import TrainedModel, model_inputs, write_json

__all__ = ["PARITY_TOLERANCE", "baseline_text", "export_run", "label_rule_text", "write_final"]

PARITY_TOLERANCE = 1e-4

# the metrics a model card lists per dimension, as the training report names them
_CARD_METRICS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("f1", "F1"),
    ("f1_low", "F1 of low"),
    ("roc_auc", "ROC-AUC"),
)


def write_final(
    out: Path,
    p: Preset,
    ws: WindowSet,
    final: TrainedModel,
    doc: dict[str, Any],
    rule: dict[str, Any],
    retrain: str,
    *,
    preset_name: str | None = None,
    electrode_dropout: ElectrodeDropout | None = None,
    stream_dropout: StreamDropout | None = None,
) -> None:
    """What ``affectstream train`` leaves for export: ``final.pt``, ``final.json`` and, for a
    model with a stimulus input, :data:`~affectstream.models.contract.STIMULUS_TABLE` (every
    stimulus of the dataset, raw values, ids as strings).

    doc : the run's report document (model, protocol, summary, dataset, caveats, command)
    preset_name : the preset trained (``cnn-lstm-lab``), when it is not the architecture's name;
        export names the model after it
    electrode_dropout : the partial-montage augmentation the grid input was trained with; the
        contract then says the grid's channels are optional (:func:`montage_policy`)
    stream_dropout : the augmentation the optional streams of raw inputs were trained with
        (:func:`optional_policy`)
    """
    model = doc["model"]
    inputs = model_inputs(model, p.spec)
    torch.save(final.module.state_dict(), out / "final.pt")
    stimulus = None
    if inputs.stimulus is not None:
        assert ws.stimulus is not None
        np.savez(
            out / STIMULUS_TABLE,
            allow_pickle=False,
            ids=np.array([str(i) for i in ws.stimulus.ids], dtype=np.str_),
            names=np.array(ws.stimulus.names, dtype=np.str_),
            values=ws.stimulus.values,
        )
        mean, std = final.norms[inputs.stimulus]
        stimulus = {
            "name": inputs.stimulus,
            "n_features": ws.stimulus.n_features,
            "source": ws.stimulus.source,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "table": STIMULUS_TABLE,
        }
    by_song = doc["protocol"] == "song"
    write_json(
        out / "final.json",
        {
            "architecture": model,
            **({"preset": preset_name} if preset_name and preset_name != model else {}),
            "hyper": dict(p.hyper),
            "hop_s": p.spec.hop_s,
            "note": p.note,
            "inputs": [
                {
                    "feature": feature_to_dict(f),
                    "shape": list(f.shape),
                    "mean": final.norms[f.name][0].tolist(),
                    "std": final.norms[f.name][1].tolist(),
                }
                for f in inputs.streams.values()
            ],
            **({"stimulus": stimulus} if stimulus else {}),
            **(
                {"optional_streams": optional_policy(p, stream_dropout)}
                if optional_policy(p, stream_dropout)
                else {}
            ),
            **(
                {"montage": montage_policy(p, electrode_dropout)}
                if montage_policy(p, electrode_dropout)
                else {}
            ),
            **(
                {"calibration": calibration_with_evaluation(final.calibration, doc)}
                if final.calibration
                else {}
            ),
            "label_rule": rule if rule["kind"] == "threshold" else {"kind": rule["kind"]},
            "trained_on": {
                "dataset": doc["dataset"],
                "protocol": doc["protocol"],
                "protocol_description": doc["protocol_description"],
                "metrics": doc["summary"],
                "caveats": doc["caveats"],
                "final_model": "all songs (validation songs carved out for stopping)"
                if by_song
                else "all subjects (validation subjects carved out for stopping)",
                "retrain_command": retrain,
                "command": doc["config"]["command"],
            },
        },
    )


def calibration_with_evaluation(calibration: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The final model's calibration (contract form) with ``evaluation``: the report's
    cross-validated ECE and Brier before/after on each fold's test subjects (the final model's
    own temperatures cannot be measured on held-out subjects: it was trained on all of them)."""
    cal = doc.get("summary_calibration")
    if not cal:
        return calibration
    evaluation = {
        "held_out": "each fold's test subjects (songs under the song protocol); temperature "
        "fitted on that fold's validation subjects",
        "protocol": doc.get("protocol"),
        "synthetic": bool(doc.get("dataset", {}).get("synthetic")),
        "n_bins": cal["n_bins"],
        "folds": cal["folds"],
        **{
            d: {
                k: cal[d][k]
                for k in (
                    "ece_before",
                    "ece_after",
                    "pooled_ece_before",
                    "pooled_ece_after",
                    "brier_before",
                    "brier_after",
                    "temperature",
                )
            }
            for d in ("valence", "arousal")
        },
    }
    return {**calibration, "evaluation": evaluation}


def montage_policy(p: Preset, electrode_dropout: ElectrodeDropout | None) -> dict[str, Any]:
    """Which EEG channels a grid model needs and which it may use, by input: ``{}`` unless an
    ``eeg_grid`` input was trained with electrode dropout. Then that input's channels are all
    optional: any ``min_channels`` of them give a prediction, the absent ones' cells are 0."""
    if electrode_dropout is None or electrode_dropout.p == 0:
        return {}
    grids = [f for f in p.spec.inputs if str(f.kind) == "eeg_grid"]
    return {
        f.name: {
            "min_channels": electrode_dropout.min_keep,
            "n_channels": len(f.channels),
            "absent_channels": "zero cells",
            "electrode_dropout": electrode_dropout.to_dict(),
        }
        for f in grids
    }


def optional_policy(p: Preset, stream_dropout: StreamDropout | None) -> dict[str, Any]:
    """Input → its optional streams and the stream dropout they were trained with, for the inputs
    that name optional streams (``{}`` when none does). A contract's optional streams without
    stream dropout in training would be a claim the model never learnt: refused here."""
    out = {
        f.name: {
            "streams": list(f.optional_streams),
            "absent": "zeros (the feature of a zero signal)",
            "stream_dropout": stream_dropout.to_dict() if stream_dropout is not None else None,
        }
        for f in p.spec.inputs
        if f.optional_streams
    }
    if out and (stream_dropout is None or stream_dropout.p == 0):
        raise ValueError(
            f"inputs {sorted(out)} name optional streams but the model was trained without "
            "stream dropout"
        )
    return out


def contract_json(contract: ModelContract, montage: dict[str, Any] | None) -> str:
    """``contract.to_json()`` with each grid input's ``min_channels`` (and ``optional_channels``:
    its channel labels a session may leave out) added to that input's entry.

    Today's :class:`~affectstream.models.contract.InputContract` reads neither key and loads the
    contract as before (every channel then needed); they are the fields the service will read
    once the contract knows optional channels.
    """
    d = contract.to_dict()
    for entry in d["inputs"]:
        policy = (montage or {}).get(entry["tensor"])
        if policy:
            entry["min_channels"] = int(policy["min_channels"])
            entry["optional_channels"] = [lab for _, lab in entry["feature"]["channels"]]
    return json.dumps(d, indent=2) + "\n"


def export_run(
    run_dir: Path,
    out_dir: Path,
    name: str | None = None,
    version: str = "1",
    compare: Path | None = None,
) -> Path:
    """Export ``run_dir``; ``compare``: another run of the same model (e.g. the leaky segment
    split) whose summary is quoted beside this one's in the contract and the model card."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    meta = json.loads((run_dir / "final.json").read_text())
    if compare is not None:
        other = json.loads((Path(compare) / "report.json").read_text())
        meta["trained_on"]["comparison"] = {
            "protocol": other["protocol"],
            "protocol_description": other["protocol_description"],
            "leaky": other["leaky"],
            "folds": len(other["folds"]),
            "metrics": other["summary"],
        }
    inputs = tuple(
        InputContract(
            feature_from_dict(i["feature"]),
            tuple(i["shape"]),
            np.asarray(i["mean"], dtype=np.float64),
            np.asarray(i["std"], dtype=np.float64),
        )
        for i in meta["inputs"]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stimulus = _stimulus(meta.get("stimulus"), run_dir, out_dir)
    by_name = {i.name: i.shape for i in inputs}
    if stimulus is not None:
        by_name[stimulus.name] = stimulus.shape
    shapes = {n: by_name[n] for n in get(meta["architecture"]).input_names}  # forward order
    model = build(meta["architecture"], shapes, **meta.get("hyper", {}))
    model.load_state_dict(torch.load(run_dir / "final.pt", weights_only=True))
    model.eval()
    montage = meta.get("montage") or None
    if montage:
        meta["trained_on"]["montage"] = montage
    if meta.get("optional_streams"):
        meta["trained_on"]["optional_streams"] = meta["optional_streams"]
    contract = ModelContract(
        name=name or meta.get("preset") or meta["architecture"],
        version=version,
        architecture=meta["architecture"],
        inputs=inputs,
        hop_s=float(meta["hop_s"]),
        label_rule=meta["label_rule"],
        trained_on=meta["trained_on"],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        description=meta.get("description", ""),
        stimulus=stimulus,
        calibration=Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None,
    )
    onnx_path = out_dir / "model.onnx"
    export_onnx(model, shapes, onnx_path, opset=17, metadata=onnx_metadata(contract, montage))
    rng = np.random.default_rng(0)
    probe = {k: rng.normal(size=(4, *s)).astype(np.float32) for k, s in shapes.items()}
    diff = onnx_parity(model, onnx_path, probe)
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {diff:.2e} > {PARITY_TOLERANCE}")
    final = ModelContract(**{**contract.__dict__, "onnx_sha256": file_sha256(onnx_path)})
    (out_dir / "model.json").write_text(contract_json(final, montage))
    card = model_card(final, meta, diff)
    coverage = out_dir / "training" / COVERAGE_FILE
    if coverage.is_file():  # a re-export keeps the measured coverage curve in the card
        card = with_coverage_section(card, json.loads(coverage.read_text()))
    (out_dir / "README.md").write_text(card)
    return out_dir


def onnx_metadata(contract: ModelContract, montage: dict[str, Any] | None) -> dict[str, str]:
    """The ONNX ``metadata_props``: the contract (without the file hash) and the synthetic flag."""
    return {
        ONNX_CONTRACT_KEY: contract_json(contract, montage),
        ONNX_SYNTHETIC_KEY: "true" if contract.synthetic else "false",
    }


def _stimulus(d: dict[str, Any] | None, run_dir: Path, out_dir: Path) -> StimulusInput | None:
    """The contract's stimulus input, after copying the run's table to ``out_dir`` and checking
    it with the loader the service uses."""
    if d is None:
        return None
    src = run_dir / d.get("table", STIMULUS_TABLE)
    if not src.is_file():
        raise FileNotFoundError(f"{run_dir}: no {src.name} (the fusion model's feature table)")
    shutil.copyfile(src, out_dir / STIMULUS_TABLE)
    stimulus = StimulusInput(
        name=str(d["name"]),
        n_features=int(d["n_features"]),
        source=str(d["source"]),
        mean=np.asarray(d["mean"], dtype=np.float64),
        std=np.asarray(d["std"], dtype=np.float64),
        table=STIMULUS_TABLE,
        table_sha256=file_sha256(out_dir / STIMULUS_TABLE),
    )
    load_stimulus_table(out_dir, stimulus)  # ContractError if the table does not fit
    return stimulus


def model_card(c: ModelContract, meta: dict[str, Any], parity: float) -> str:
    t = c.trained_on
    ds = t.get("dataset", {})
    synthetic = bool(ds.get("synthetic"))
    real = ds.get("format", "DEAP")
    lines = [f"# {c.id} — {c.architecture}", ""]
    if synthetic:
        how = "`affectstream synth --format pmemo`" if real == "PMEmo" else "`affectstream synth`"
        layout = "PMEmo-layout" if real == "PMEmo" else "DEAP-format"
        lines += [
            "> **Demo model trained on synthetic data.** It was trained on affectstream's",
            f"> synthetic {layout} data ({how}), not on {real} or any real",
            "> recording. Its figures below say nothing about real-world performance.",
            f"> Retrain on real {real} with:",
            f"> `{t.get('retrain_command', '')}`",
            "",
        ]
    for note in t.get("caveats", []):
        lines += [f"> {note}", ""]
    lines += [c.description or meta.get("note", ""), "", "## Inputs", ""]
    lines += [
        "| tensor | feature | channels | rate | window | shape |",
        "|---|---|---|---|---|---|",
    ]
    for i in c.inputs:
        f = i.feature
        chans = ", ".join(ch.label for ch in f.channels[:6]) + (" …" if len(f.channels) > 6 else "")
        lines.append(
            f"| `{i.name}` | {f.kind} | {chans} | {f.srate:g} Hz | {f.window_s:g} s | "
            f"{list(i.shape)} |"
        )
    if c.stimulus is not None:
        st = c.stimulus
        lines += [
            f"| `{st.name}` | stimulus_features | {st.source} | — | per stimulus | "
            f"{list(st.shape)} |",
            "",
            f"`{st.name}` is not computed from a stream: the session supplies it per stimulus, as "
            f"an id of `{st.table}` (shipped here, raw values, one row per song) or as the raw "
            "vector itself. The runner standardises it with the mean and SD in `model.json`, "
            "which come from the final model's training windows only.",
        ]
        if not c.inputs:
            lines += [
                "",
                "It has no stream input, so a live session has no windows to time it by: it is a "
                "baseline for comparisons, run with `affectstream.models.runner.ModelRunner` "
                "directly, not a model to serve.",
            ]
    if real == "PMEmo":
        rates = sorted({i.feature.srate for i in c.inputs})
        if rates:
            lines += [
                "",
                f"Trained on PMEmo's {ds.get('eda_rate_hz', 50):g} Hz EDA through the service's "
                f"own preprocessing (decimation to {', '.join(f'{r:g}' for r in rates)} Hz, online "
                "cvxEDA). The service decimates by whole factors only, so a live GSR stream must "
                "run at a whole multiple of that rate: 50 Hz (PMEmo, `affectstream replay --format "
                "pmemo`) works, DEAP's 128 Hz does not.",
            ]
    for tensor, opt in (t.get("optional_streams") or {}).items():
        drop = opt.get("stream_dropout") or {}
        lines += [
            "",
            f"Optional streams: `{tensor}` may use {', '.join(opt['streams'])} (`optional_streams` "
            "in `model.json`; `GET /models` lists them under `may_use`): a session without such "
            "a stream still gets predictions, its channels fed as zeros. It was trained with "
            f"stream dropout (p = {drop.get('p')}: {drop.get('distribution', '')}).",
        ]
    for tensor, policy in (t.get("montage") or {}).items():
        drop = policy.get("electrode_dropout", {})
        lines += [
            "",
            f"Partial EEG montages: `{tensor}` reads up to {policy['n_channels']} electrodes and "
            f"needs at least {policy['min_channels']} of them (`min_channels` in `model.json`); "
            "an absent electrode's cell is 0, as the cells that never hold one. It was trained "
            f"with electrode dropout (p = {drop.get('p')}, min_keep = {drop.get('min_keep')}: "
            f"{drop.get('distribution', '')}). Coverage = the fraction of its electrodes present.",
        ]
    gen = ds.get("generator")
    made = ""
    if gen and real == "PMEmo":
        made = (
            f" (`affectstream synth --format pmemo --subjects {gen['subjects']} "
            f"--trials {gen['songs']} --seed {gen['seed']}`)"
        )
    elif gen:
        made = (
            f" (`affectstream synth --subjects {gen['subjects']} --trials {gen['trials']} "
            f"--seed {gen['seed']}`)"
        )
    songs = f"{ds['songs']} songs, " if "songs" in ds else ""
    deap_baseline = (
        baseline_text(
            [i.feature for i in c.inputs],
            float(ds.get("stride_s") or 0.0),
            BASELINE_SAMPLES / SFREQ,
        )
        if real == "DEAP"
        else None
    )
    if deap_baseline:
        lines += ["", deap_baseline]
    lines += [
        "",
        f"Output `probs` (batch, 2): probability of high valence and of high arousal. Hop "
        f"{c.hop_s:g} s. Label rule: {label_rule_text(c.label_rule, c.architecture)}",
        "",
        "## Training",
        "",
        f"- dataset: {ds.get('name')}{made}; {ds.get('subjects')} subjects, {songs}"
        f"{ds.get('windows')} windows",
        f"- protocol: {t.get('protocol')} ({t.get('protocol_description')})",
    ]
    for dim, m in t.get("metrics", {}).items():
        lines.append(
            f"- {dim}: "
            + ", ".join(f"{name} {mean_sd(m[key])}" for key, name in _CARD_METRICS if key in m)
        )
    cmp = t.get("comparison")
    if cmp:
        desc = cmp["protocol_description"]
        if cmp["leaky"]:
            desc = (
                desc.replace("leaky:", "**leaky**:") if "leaky:" in desc else f"**leaky**, {desc}"
            )
        lines.append(
            f"- for comparison, protocol `{cmp['protocol']}` ({desc}, {cmp['folds']} folds):"
        )
        for dim, m in cmp["metrics"].items():
            lines.append(
                f"  - {dim}: "
                + ", ".join(f"{name} {mean_sd(m[key])}" for key, name in _CARD_METRICS if key in m)
            )
    if t.get("command"):
        lines.append(f"- trained with: `{t['command']}`")
    lines += calibration_section(c, synthetic)
    lines += [
        "",
        "## Architecture and choices where the paper is silent",
        "",
        _architecture_doc(c.architecture),
        "",
        f"ONNX opset 17; max |PyTorch − ONNX Runtime| on random input at export: {parity:.1e}.",
        "",
    ]
    return "\n".join(lines)


CALIBRATION_START, CALIBRATION_END = "<!-- calibration:start -->", "<!-- calibration:end -->"


def calibration_section(c: ModelContract, synthetic: bool) -> list[str]:
    """The model card's calibration lines (between markers, so a re-calibration replaces them):
    the temperatures, what they were fitted on, and ECE before/after on held-out subjects."""
    cal = c.calibration
    lines = ["", CALIBRATION_START, "", "## Calibration", ""]
    if cal is None:
        lines += [
            "None: the served probabilities are the network's sigmoid outputs as they are; "
            "nothing says they are calibrated.",
            "",
            CALIBRATION_END,
        ]
        return lines
    temps = ", ".join(
        f"{d} T = {t:.3f}" for d, t in zip(("valence", "arousal"), cal.temperature, strict=True)
    )
    fitted = cal.fitted_on
    where = ", ".join(
        f"{k if len(v) > 1 else k[:-1]} {', '.join(map(str, v))}"
        for k, v in fitted.items()
        if k in ("subjects", "songs") and isinstance(v, list)
    )
    lines += [
        f"Temperature scaling per output ({temps}): the runner serves "
        "`sigmoid(logit / T)`, so the messages carry calibrated values. Fitted on the validation "
        f"windows of the final model ({where or 'its validation subjects'}; "
        f"{fitted.get('windows', '?')} windows), which it did not train on (they only stopped its "
        "training). It changes no decision at 0.5 and no ranking, so the figures above are "
        "unchanged by it (docs/models.md#calibration).",
        "",
    ]
    ev = cal.evaluation
    if ev:
        data = "synthetic " if ev.get("synthetic") or synthetic else ""
        lines += [
            f"Expected calibration error of P(high) ({ev.get('n_bins', 10)} equal-width bins) on "
            f"held-out {data}subjects: {ev.get('held_out', '')}"
            + (f" ({ev['source']})" if ev.get("source") else "")
            + ":",
            "",
            "| dimension | ECE before | ECE after | Brier before | Brier after |",
            "|---|---|---|---|---|",
        ]
        for d in ("valence", "arousal"):
            e = ev.get(d)
            if not isinstance(e, dict):
                continue
            lines.append(
                f"| {d} | {_value(e.get('ece_before'))} | {_value(e.get('ece_after'))} | "
                f"{_value(e.get('brier_before'))} | {_value(e.get('brier_after'))} |"
            )
        if synthetic:
            lines += [
                "",
                "Synthetic-data figures: they show that the fit works, not how calibrated the "
                "model would be on real recordings (refit it on real validation subjects).",
            ]
        if ev.get("note"):
            lines += ["", str(ev["note"])]
        if ev.get("figure"):
            lines += ["", f"Reliability diagram: `{ev['figure']}`."]
    lines += ["", CALIBRATION_END]
    return lines


def with_calibration_section(card: str, section: str) -> str:
    """``card`` with its calibration section (between the markers) replaced by ``section``, or
    put in before the architecture notes when it has none."""
    block = section.strip("\n")
    if CALIBRATION_START in card and CALIBRATION_END in card:
        head, rest = card.split(CALIBRATION_START, 1)
        return head.rstrip("\n") + "\n\n" + block + rest.split(CALIBRATION_END, 1)[1]
    marker = "\n## Architecture and choices"
    if marker in card:
        head, tail = card.split(marker, 1)
        return head.rstrip("\n") + "\n\n" + block + "\n" + marker + tail
    return card.rstrip("\n") + "\n\n" + block + "\n"


def _value(v: Any) -> str:
    """A card cell: ``mean ± sd`` of a summary entry, or one number."""
    if isinstance(v, dict):
        return mean_sd(v)
    return "n/a" if v is None else f"{float(v):.3f}"


_CALIBRATED = (
    " The served value has been through the contract's calibration (## Calibration): among "
    "windows served about 0.7, about 70 % should be high by that rule, as far as the temperature "
    "fitted on the validation subjects carries over to a new person."
)


def label_rule_text(rule: dict[str, Any], architecture: str = "") -> str:
    """What a high label (and so a served probability) means under a contract's ``label_rule``,
    in the words a model card uses."""
    kind = rule.get("kind")
    if kind == "threshold":
        value = float(rule.get("value", 5.0))
        text = (
            f"threshold {value:g}: high = the subject's rating of the stimulus > {value:g}, so "
            f"`valence` 0.7 is the model's probability that the valence rating is above {value:g}."
            + _CALIBRATED
        )
        if architecture.startswith("rtcan1d"):
            text += (
                " RTCAN-1D's paper labels with a per-subject k-means threshold instead "
                "(`--label-rule kmeans2d`, docs/models.md#labels-and-protocols)."
            )
        return text
    if kind == "kmeans":
        return (
            "per-subject k-means: for each training subject and each dimension separately, a 1-D "
            "two-cluster k-means on one rating per recording; high = above the midpoint of the two "
            "centres. RTCAN-1D's paper clusters the (valence, arousal) pairs in the plane instead "
            "(`kmeans2d`, docs/models.md#labels-and-protocols). `valence` 0.7 is the model's "
            "probability that the subject's valence rating falls in that subject's higher cluster, "
            "not that it is above the scale's midpoint." + _CALIBRATED
        )
    if kind == "kmeans2d":
        return (
            "per-subject 2-D k-means (RTCAN-1D's rule): for each training subject, one two-cluster "
            "k-means on the (valence, arousal) pairs, one per recording; high valence = above the "
            "valence coordinate of the midpoint between the two centres (arousal likewise), so a "
            "subject's valence threshold also depends on their arousal ratings. `valence` 0.7 is "
            "the model's probability that the subject's valence rating lies above that "
            "subject-specific cut, not above the scale's midpoint." + _CALIBRATED
        )
    return str(kind)


def baseline_text(
    features: Sequence[FeatureInput], stride_s: float, baseline_s: float
) -> str | None:
    """Whether training windows include seconds of a recording's pre-trial baseline (DEAP: its
    first 3 s), for the inputs without a calibration period: the model card's sentence, or
    ``None`` when no window does. A window ending at ``e`` covers ``[e − window_s, e)``; training
    windows end at multiples of ``stride_s``, from the first at which every input is full."""
    if not features or baseline_s <= 0 or stride_s <= 0:
        return None
    need = max(f.baseline_s + f.window_s for f in features)
    first = math.ceil(need / stride_s - 1e-9)  # in strides
    parts = []
    for f in features:
        if f.baseline_s > 0:
            continue  # its calibration period is consumed before its first window
        ends = []
        k = first
        while k * stride_s - f.window_s < baseline_s - 1e-9:
            ends.append(f"{k * stride_s:g}")
            k += 1
        if ends:
            at = ends[0] if len(ends) == 1 else f"{', '.join(ends[:-1])} and {ends[-1]}"
            parts.append(
                f"`{f.name}` (no calibration period): the first {len(ends)} training "
                f"window{'s' if len(ends) > 1 else ''} of each trial, ending at {at} s"
            )
    if not parts:
        return None
    return (
        f"Pre-trial baseline: {'; '.join(parts)} (stride {stride_s:g} s), hold seconds of "
        f"DEAP's {baseline_s:g} s pre-trial baseline; the later windows do not."
    )


def _architecture_doc(architecture: str) -> str:
    import importlib

    from affectstream.models.registry import get

    arch = get(architecture)
    doc = importlib.import_module(arch.module).__doc__ or ""
    return f"{arch.description} ({arch.paper})\n\n{doc.strip()}"
