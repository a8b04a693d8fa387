"""Write the int8 variant of an exported DEAP-format model folder (ONNX Runtime static
quantization) and measure it against the float model.

``python -m affectstream.training.commands.quantize MODEL_DIR --data DIR --calib-subjects 1 2 3
--eval-subjects 11 12 13 14 15 16``: calibrates the activation ranges on windows of the first
subjects (the model's training subjects), measures decisions, probabilities and accuracy of both
models on the second (never seen), and writes ``model.int8.onnx``, ``quantized.json`` and the
model card's int8 section (:func:`affectstream.training.quantize.quantize_model_dir`); refuses
(exit 2, nothing written) when the variant fails the module's rule (``--max-mean-diff``,
``--min-decisive-agreement``, faster at batch 12). ``--keep-float attention --keep-float
shallow`` keeps the nodes whose names contain those words float (what RTCAN-1D needs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectstream.training.commands.quantize")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="DEAP-format folder (sNN.dat)")
    parser.add_argument("--calib-subjects", type=int, nargs="+", required=True)
    parser.add_argument("--eval-subjects", type=int, nargs="+", required=True)
    parser.add_argument("--stride", type=float, default=None, help="default: the model's")
    parser.add_argument("--max-calibration-windows", type=int, default=512)
    parser.add_argument(
        "--max-mean-diff",
        type=float,
        default=0.05,
        help="refuse when the served probability moves more than this on average (default 0.05)",
    )
    parser.add_argument(
        "--min-decisive-agreement",
        type=float,
        default=0.95,
        help="refuse when fewer of the windows the float model is decisive about keep their "
        "decision (default 0.95)",
    )
    parser.add_argument(
        "--op-types",
        default="Conv",
        help="comma-separated operator types to quantize (default Conv; 'all': every one with an "
        "int8 kernel)",
    )
    parser.add_argument(
        "--keep-float",
        action="append",
        default=[],
        metavar="SUBSTRING",
        help="keep nodes whose name contains SUBSTRING float (repeatable)",
    )
    args = parser.parse_args(argv)
    from affectstream.models.runner import ModelLoadError
    from affectstream.training.coverage import held_out_files
    from affectstream.training.quantize import quantize_model_dir

    try:
        record = quantize_model_dir(
            args.model_dir,
            held_out_files(args.data, args.calib_subjects),
            held_out_files(args.data, args.eval_subjects),
            stride_s=args.stride,
            max_calibration_windows=args.max_calibration_windows,
            max_mean_diff=args.max_mean_diff,
            min_decisive_agreement=args.min_decisive_agreement,
            op_types=None if args.op_types == "all" else tuple(args.op_types.split(",")),
            keep_float=tuple(args.keep_float),
        )
    except (FileNotFoundError, ValueError, ModelLoadError) as e:
        print(f"quantize: error: {e}", file=sys.stderr)
        return 2
    ev, speed = record["evaluation"], record["cpu_ms_per_window"]
    print(
        f"{args.model_dir}: decisions agree "
        + ", ".join(f"{d} {ev[d]['decisions_agree']:.1%}" for d in ("valence", "arousal"))
        + ", mean |Δp| "
        + ", ".join(f"{d} {ev[d]['mean_abs_prob_diff']:.4f}" for d in ("valence", "arousal"))
        + f" on {ev['windows']} held-out windows; CPU per window at batch 12: "
        f"{speed['float32_b12']} → {speed['int8_b12']} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
