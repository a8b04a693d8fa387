"""Export a trained run to ONNX + contract + model card (``affectstream export``).

``RUN_DIR/final.pt`` (state dict) and ``RUN_DIR/final.json`` (architecture, preprocessing, norms,
label rule, dataset, protocol and metrics) are written by ``affectstream train``. Export writes
``OUT/model.onnx`` (opset 17, output ``probs`` = sigmoid of the logits), ``OUT/model.json`` (the
contract, with the ONNX file's sha256; the same contract without the hash is stored in the ONNX
metadata under ``affectstream_contract``, since a file cannot hold its own hash) and
``OUT/README.md`` (model card), after checking PyTorch vs ONNX Runtime on random inputs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.contract import InputContract, ModelContract, feature_from_dict, file_sha256
from models.export import export_onnx, onnx_parity
from models.registry import build

__all__ = ["PARITY_TOLERANCE", "export_run"]

PARITY_TOLERANCE = 1e-4


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
    shapes = {i.name: i.shape for i in inputs}
    model = build(meta["architecture"], shapes, **meta.get("hyper", {}))
    model.load_state_dict(torch.load(run_dir / "final.pt", weights_only=True))
    model.eval()
    contract = ModelContract(
        name=name or meta["architecture"],
        version=version,
        architecture=meta["architecture"],
        inputs=inputs,
        hop_s=float(meta["hop_s"]),
        label_rule=meta["label_rule"],
        trained_on=meta["trained_on"],
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        description=meta.get("description", ""),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    export_onnx(
        model, shapes, onnx_path, opset=17, metadata={"affectstream_contract": contract.to_json()}
    )
    rng = np.random.default_rng(0)
    probe = {k: rng.normal(size=(4, *s)).astype(np.float32) for k, s in shapes.items()}
    diff = onnx_parity(model, onnx_path, probe)
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {diff:.2e} > {PARITY_TOLERANCE}")
    final = ModelContract(**{**contract.__dict__, "onnx_sha256": file_sha256(onnx_path)})
    (out_dir / "model.json").write_text(final.to_json())
    (out_dir / "README.md").write_text(model_card(final, meta, diff))
    return out_dir


def model_card(c: ModelContract, meta: dict[str, Any], parity: float) -> str:
    t = c.trained_on
    synthetic = bool(t.get("dataset", {}).get("synthetic"))
    lines = [f"# {c.id} — {c.architecture}", ""]
    if synthetic:
        lines += [
            "> **Demo model trained on synthetic data.** It was trained on affectstream's",
            "> synthetic DEAP-format data (`affectstream synth`), not on DEAP or any real",
            "> recording. Its figures below say nothing about real-world performance.",
            "> Retrain on real DEAP with:",
            f"> `{t.get('retrain_command', '')}`",
            "",
        ]
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
    ds = t.get("dataset", {})
    gen = ds.get("generator")
    made = ""
    if gen:
        made = (f" (`affectstream synth --subjects {gen['subjects']} --trials {gen['trials']} "
                f"--seed {gen['seed']}`)")  # fmt: skip
    lines += [
        "",
        f"Output `probs` (batch, 2): probability of high valence and of high arousal. Hop "
        f"{c.hop_s:g} s. Label rule: {c.label_rule.get('kind')}.",
        "",
        "## Training",
        "",
        f"- dataset: {ds.get('name')}{made}; {ds.get('subjects')} subjects, "
        f"{ds.get('windows')} windows",
        f"- protocol: {t.get('protocol')} ({t.get('protocol_description')})",
    ]
    for dim, m in t.get("metrics", {}).items():
        lines.append(
            f"- {dim}: accuracy {m['accuracy']['mean']:.3f} ± {m['accuracy']['std']:.3f}, "
            f"F1 {m['f1']['mean']:.3f} ± {m['f1']['std']:.3f}"
        )
    cmp = t.get("comparison")
    if cmp:
        desc = cmp["protocol_description"]
        if cmp["leaky"]:
            desc = (
                desc.replace("leaky:", "**leaky**:") if "leaky:" in desc else f"**leaky**, {desc}"
            )
        lines.append(f"- for comparison, protocol `{cmp['protocol']}` ({desc}, "
                     f"{cmp['folds']} folds):")  # fmt: skip
        for dim, m in cmp["metrics"].items():
            lines.append(f"  - {dim}: accuracy {m['accuracy']['mean']:.3f} ± "
                         f"{m['accuracy']['std']:.3f}")  # fmt: skip
    if t.get("command"):
        lines.append(f"- trained with: `{t['command']}`")
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


def _architecture_doc(architecture: str) -> str:
    import importlib

    from models.registry import get

    arch = get(architecture)
    doc = importlib.import_module(arch.module).__doc__ or ""
    return f"{arch.description} ({arch.paper})\n\n{doc.strip()}"
