"""An int8 variant of an exported model, and how far its outputs are from the float model's.

Serving a lab session runs five models four times a second; their convolutions are most of the
service's CPU (#16). ONNX Runtime's **static quantization** stores the weights as int8 (per
output channel) and runs the convolutions and matrix products on uint8 activations whose ranges
were measured beforehand on real inputs (calibration windows); what cannot be quantized (LSTM
cells, ELU, softmax) runs in float between quantize/dequantize pairs (the QDQ format).

:func:`quantize_model_dir` writes, beside ``model.onnx``, ``model.int8.onnx`` and its record
``quantized.json``; the float model, its contract and its card's other sections are unchanged:

- **calibration windows**: windows of ``calib_files`` (the model's training subjects: the ranges
  the network saw), preprocessed and normalised exactly as served (the contract's own windowing
  and preprocessing, :func:`~affectstream.training.datasets.deap.deap_windows`), at most
  ``max_calibration_windows`` of them spread evenly; MinMax ranges;
- **agreement**, measured on the windows of ``eval_files`` (subjects neither saw): both models
  through ONNX Runtime on the CPU with the contract's calibration, as served: the fraction of
  windows whose decision at 0.5 is the same, the largest and the mean absolute difference of the
  served probability, and each model's accuracy against the labels (the contract's label rule);
- **refusal**: the variant is not written when, in either dimension, the served probability
  moves by more than ``max_mean_diff`` on average, or fewer than ``min_decisive_agreement`` of
  the windows the float model is decisive about (``|p − 0.5| ≥ 0.1``) keep their decision, or
  when it is not faster at batch 12. Accuracy against the labels is reported, not a criterion:
  for an output calibrated to about 0.5 everywhere (a dimension the model barely learnt) a
  difference of a few thousandths flips decisions at random, and the accuracy of both is chance;
- **what stays float**: only ``op_types`` are quantized (default ``Conv``: the cost of these
  networks), and nodes whose name contains one of ``keep_float`` stay float, for layers whose
  int8 error the rest of the network amplifies (measured on RTCAN-1D: quantizing its first
  convolution, which reads the raw decomposition, or the attention blocks, whose softmax
  exponentiates the error, moved the arousal probability by 0.20 on average);
- **speed**: CPU time per window of both files at batch 1 and 12 on this machine, one thread (the
  best of three rounds).

The serving side (:class:`~affectstream.models.runner.ModelRunner`, ``precision="int8"``)
serves the variant only while the record names the folder's ``model.onnx`` by its hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["QUANTIZE_START", "quantize_model_dir", "quantized_section"]

QUANTIZE_START = "<!-- quantized:begin -->"
QUANTIZE_END = "<!-- quantized:end -->"
DECISIVE = 0.1
"""A window the float model is decisive about: its served probability at least this far from
0.5."""


def _machine() -> str:
    """This machine's CPU model and core count (what the speed figures were measured on)."""
    import os

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def _cpu_ms_per_window(path: Path, inputs: dict[str, NDArray[np.float32]], batch: int) -> float:
    import onnxruntime as ort

    from affectstream.models.runner import session_options

    session = ort.InferenceSession(
        str(path), session_options(1), providers=["CPUExecutionProvider"]
    )
    feed = {k: np.ascontiguousarray(v[:batch]) for k, v in inputs.items()}
    for _ in range(5):
        session.run(None, feed)
    runs, t0 = 0, time.process_time()
    while runs < 20 or time.process_time() - t0 < 0.5:
        session.run(None, feed)
        runs += 1
    return round((time.process_time() - t0) / runs / batch * 1000, 4)


def quantize_model_dir(
    model_dir: Path,
    calib_files: list[Path],
    eval_files: list[Path],
    *,
    stride_s: float | None = None,
    max_calibration_windows: int = 512,
    max_mean_diff: float = 0.05,
    min_decisive_agreement: float = 0.95,
    method: str = "minmax",
    op_types: tuple[str, ...] | None = ("Conv",),
    keep_float: tuple[str, ...] = (),
    batch: int = 256,
) -> dict[str, Any]:
    """Quantize the folder's model (module docstring); returns the record written to
    ``quantized.json``. Raises ``ValueError`` (nothing written) for a stimulus-input model, a
    label rule without a fixed threshold, overlapping subjects, or a variant that fails the
    refusal rule (module docstring)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from affectstream.models.contract import file_sha256
    from affectstream.models.runner import QUANTIZED_ONNX, QUANTIZED_RECORD
    from affectstream.streaming.synthetic.deap import is_synthetic_deap
    from affectstream.training.calibration import labelled_windows, threshold_model

    model_dir = Path(model_dir)
    contract = threshold_model(model_dir, "the int8 variant's accuracy").contract
    stride = float(stride_s or contract.trained_on.get("dataset", {}).get("stride_s") or 2.0)
    calib_x, _, calib_subjects = labelled_windows(contract, calib_files, stride)
    eval_x, eval_y, eval_subjects = labelled_windows(contract, eval_files, stride)
    if set(calib_subjects) & set(eval_subjects):
        raise ValueError(f"subjects {sorted(set(calib_subjects) & set(eval_subjects))} in both")
    n_calib = len(next(iter(calib_x.values())))
    pick = np.unique(np.linspace(0, n_calib - 1, min(n_calib, max_calibration_windows)).round())
    picked = {k: v[pick.astype(int)] for k, v in calib_x.items()}

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, NDArray[np.float32]]] = iter(
                {k: v[a : a + 32] for k, v in picked.items()} for a in range(0, len(pick), 32)
            )

        def get_next(self) -> dict[str, NDArray[np.float32]] | None:
            return next(self._batches, None)

    onnx_path = model_dir / "model.onnx"
    out_path = model_dir / QUANTIZED_ONNX
    tmp_pre = model_dir / ".model.pre.onnx"
    tmp_out = model_dir / ".model.int8.onnx"
    try:
        quant_pre_process(str(onnx_path), str(tmp_pre))
        excluded = [
            n.name
            for n in onnx.load(str(tmp_pre)).graph.node
            if any(k in n.name for k in keep_float)
        ]
        quantize_static(
            str(tmp_pre),
            str(tmp_out),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=excluded,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
        )
        # the float model's metadata (the contract, the synthetic flag) goes with the variant
        source, model = onnx.load(str(onnx_path)), onnx.load(str(tmp_out))
        del model.metadata_props[:]
        model.metadata_props.extend(source.metadata_props)
        onnx.save(model, str(tmp_out))

        def served(path: Path) -> NDArray[np.float32]:
            import onnxruntime as ort

            from affectstream.models.contract import OUTPUT_NAME

            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            n = len(eval_y)
            raw = np.concatenate(
                [
                    session.run([OUTPUT_NAME], {k: v[a : a + batch] for k, v in eval_x.items()})[0]
                    for a in range(0, n, batch)
                ]
            )
            cal = contract.calibration
            return cal.apply(raw) if cal is not None else np.asarray(raw, dtype=np.float32)

        p_float, p_int8 = served(onnx_path), served(tmp_out)
        agreement: dict[str, Any] = {}
        for k, dim in enumerate(("valence", "arousal")):
            f, q = p_float[:, k].astype(np.float64), p_int8[:, k].astype(np.float64)
            decisive = np.abs(f - 0.5) >= DECISIVE
            diff = np.abs(f - q)
            agreement[dim] = {
                "decisions_agree": round(float(np.mean((f > 0.5) == (q > 0.5))), 4),
                "decisive_windows": int(decisive.sum()),
                "decisive_agree": round(float(np.mean((f > 0.5) == (q > 0.5), where=decisive)), 4)
                if decisive.any()
                else None,
                "max_abs_prob_diff": round(float(diff.max()), 4),
                "mean_abs_prob_diff": round(float(diff.mean()), 5),
                "accuracy_float32": round(float(np.mean((f > 0.5) == eval_y[:, k])), 4),
                "accuracy_int8": round(float(np.mean((q > 0.5) == eval_y[:, k])), 4),
            }
        for dim, a in agreement.items():
            low = a["decisive_agree"] is not None and a["decisive_agree"] < min_decisive_agreement
            if a["mean_abs_prob_diff"] > max_mean_diff or low:
                raise ValueError(
                    f"{contract.id}: {dim}: mean |Δp| {a['mean_abs_prob_diff']:.4f}, decisive "
                    f"decisions kept {a['decisive_agree']} on the held-out windows (limits "
                    f"{max_mean_diff}, {min_decisive_agreement}): not written"
                )
        # the best of three rounds, the two models in turn: a busy moment of the machine
        # should not decide which is faster
        rounds = [
            {
                f"{name}_b{b}": _cpu_ms_per_window(path, eval_x, b)
                for name, path in (("float32", onnx_path), ("int8", tmp_out))
                for b in (1, 12)
            }
            for _ in range(3)
        ]
        speed = {k: min(r[k] for r in rounds) for k in rounds[0]}
        if speed["int8_b12"] >= speed["float32_b12"]:
            raise ValueError(
                f"{contract.id}: int8 {speed['int8_b12']} ms per window at batch 12, float "
                f"{speed['float32_b12']} ms: not faster, not written"
            )
        synthetic = all(is_synthetic_deap(f) for f in [*calib_files, *eval_files])
        record = {
            "file": QUANTIZED_ONNX,
            "onnx_sha256": file_sha256(tmp_out),
            "source_onnx_sha256": contract.onnx_sha256,
            "model": contract.id,
            "method": "ONNX Runtime static quantization, QDQ format: int8 weights per output "
            "channel, uint8 activations with MinMax ranges from the calibration windows; LSTM "
            "cells and the other operators without an int8 kernel run in float",
            "calibration": {
                "subjects": calib_subjects,
                "windows": len(pick),
                "stride_s": stride,
            },
            "evaluation": {
                "subjects": eval_subjects,
                "windows": len(eval_y),
                "synthetic": synthetic,
                "source": "ONNX Runtime on the CPU, both models through the contract's "
                "calibration (the served value)",
                **agreement,
            },
            "op_types": list(op_types) if op_types else "all",
            "keep_float": list(keep_float),
            "kept_float": excluded,
            "accepted_if": {
                "max_mean_abs_prob_diff": max_mean_diff,
                "min_decisive_agreement": min_decisive_agreement,
                "decisive": f"|p_float - 0.5| >= {DECISIVE}",
                "faster_at_batch_12": True,
            },
            "cpu_ms_per_window": speed,
            "machine": _machine(),
            "onnxruntime": __import__("onnxruntime").__version__,
        }
        tmp_out.replace(out_path)
        (model_dir / QUANTIZED_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    finally:
        tmp_pre.unlink(missing_ok=True)
        tmp_out.unlink(missing_ok=True)
        for extra in model_dir.glob(".model.pre*.onnx*"):
            extra.unlink(missing_ok=True)
    card = model_dir / "README.md"
    if card.is_file():
        card.write_text(with_quantized_section(card.read_text(), quantized_section(record)))
    return record


def quantized_section(record: dict[str, Any]) -> str:
    """The model card's int8 section (between markers, so quantizing again replaces it)."""
    ev, cal, speed = record["evaluation"], record["calibration"], record["cpu_ms_per_window"]
    data = "synthetic subjects" if ev["synthetic"] else "subjects"

    def decisive(a: dict[str, Any]) -> str:
        if a["decisive_agree"] is None:
            return "none decisive"
        return f"{a['decisive_agree']:.1%} of {a['decisive_windows']}"

    rows = [
        f"| {dim} | {a['mean_abs_prob_diff']:.4f} | {a['max_abs_prob_diff']:.3f} | "
        f"{decisive(a)} | {a['decisions_agree']:.1%} | {a['accuracy_float32']:.3f} | "
        f"{a['accuracy_int8']:.3f} |"
        for dim in ("valence", "arousal")
        for a in (ev[dim],)
    ]
    kept, ops = record["kept_float"], record["op_types"]
    what = ", ".join(ops) if isinstance(ops, list) else "every operator with an int8 kernel"
    if kept:
        patterns = record.get("keep_float") or []
        named = " or ".join(f"`{k}`" for k in patterns)
        what += f", except {len(kept)} node(s) kept float"
        what += f" (their names contain {named}; listed in `quantized.json`)" if named else ""
    lines = [
        QUANTIZE_START,
        "",
        "## int8 variant (`model.int8.onnx`)",
        "",
        f"{record['method']}. Quantized: {what}"
        + f". Calibrated on {cal['windows']} windows of {data} "
        f"{', '.join(map(str, cal['subjects']))}; measured against this float model on "
        f"{ev['windows']} windows of held-out {data} {', '.join(map(str, ev['subjects']))} "
        "(served values, after the calibration above). The service serves it with "
        "`inference_precision = int8` (the default) while `quantized.json` names this "
        "`model.onnx`. Written only if the served probability moves by at most "
        f"{record['accepted_if']['max_mean_abs_prob_diff']} on average and at least "
        f"{record['accepted_if']['min_decisive_agreement']:.0%} of the windows the float model is "
        f"decisive about ({record['accepted_if']['decisive']}) keep their decision, in each "
        "output, and if it is faster; accuracy is reported, not a criterion.",
        "",
        "| output | mean \\|Δp\\| | max \\|Δp\\| | decisive decisions kept | all decisions kept "
        "| accuracy float32 | accuracy int8 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"CPU per window, one thread, best of three rounds (onnxruntime {record['onnxruntime']}, "
        f"{record.get('machine', 'the machine that quantized it')}): float32 "
        f"{speed['float32_b1']} ms at batch 1, {speed['float32_b12']} ms "
        f"at batch 12; int8 {speed['int8_b1']} ms and {speed['int8_b12']} ms.",
        "",
        QUANTIZE_END,
    ]
    return "\n".join(lines) + "\n"


def with_quantized_section(card: str, section: str) -> str:
    """``card`` with its int8 section replaced by ``section``, or appended."""
    if QUANTIZE_START in card and QUANTIZE_END in card:
        head, rest = card.split(QUANTIZE_START, 1)
        return head + section.rstrip("\n") + rest.split(QUANTIZE_END, 1)[1]
    return card.rstrip("\n") + "\n\n" + section
