"""Calibrate an exported DEAP-format model folder in place (temperature scaling per output).

``python -m affectstream.training.commands.calibrate MODEL_DIR --data DIR --fit-subjects 4 7
--eval-subjects 11 12 13 14 15 16``: fits on the first subjects (the final model's validation
subjects), measures on the second (never seen), and writes the calibration into the contract,
the ONNX metadata, the model card and ``training/reliability.png``
(:func:`affectstream.training.calibration.calibrate_model_dir`). Models trained now get their
calibration from ``affectstream train`` and ``affectstream export``; this is for folders whose
training run is gone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectstream.training.commands.calibrate")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="DEAP-format folder (sNN.dat)")
    parser.add_argument("--fit-subjects", type=int, nargs="+", required=True)
    parser.add_argument("--eval-subjects", type=int, nargs="+", required=True)
    parser.add_argument("--stride", type=float, default=None, help="default: the model's")
    parser.add_argument("--note", default="", help="a caveat the model card quotes")
    args = parser.parse_args(argv)
    from affectstream.models.runner import ModelLoadError
    from affectstream.training.calibration import calibrate_model_dir
    from affectstream.training.coverage import held_out_files

    try:
        cal = calibrate_model_dir(
            args.model_dir,
            held_out_files(args.data, args.fit_subjects),
            held_out_files(args.data, args.eval_subjects),
            stride_s=args.stride,
            note=args.note,
        )
    except (FileNotFoundError, ValueError, ModelLoadError) as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    ev = cal["evaluation"]
    print(
        f"{args.model_dir}: T = "
        + ", ".join(f"{d} {t:.3f}" for d, t in cal["temperature"].items())
        + "; ECE on held-out "
        + ", ".join(
            f"{d} {ev[d]['ece_before']:.3f} → {ev[d]['ece_after']:.3f}"
            for d in ("valence", "arousal")
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
