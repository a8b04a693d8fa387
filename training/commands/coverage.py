"""Measure a grid model's accuracy against EEG montage coverage on held-out subjects.

``python -m affectstream.training.commands.coverage MODEL_DIR --data DIR --subjects 11 12 …``
runs the exported model (ONNX Runtime, as served) on the windows of those DEAP-format subjects with
random partial montages at each ``--coverage`` (default 1 0.5 0.25 0.125) and a four-electrode
headband, writes ``MODEL_DIR/training/coverage.json`` (or ``--out``) and, unless ``--no-card``,
puts the table into the model card (``MODEL_DIR/README.md``). The subjects must be ones the model
was not trained on. On ``affectstream synth`` data every figure is a synthetic-data figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, help="model folder (model.onnx + model.json)")
    parser.add_argument("--data", type=Path, required=True, help="folder with sNN.dat files")
    parser.add_argument(
        "--subjects",
        type=int,
        nargs="+",
        required=True,
        help="held-out subject numbers (not used in training)",
    )
    parser.add_argument("--coverage", type=float, nargs="+", default=None, metavar="C")
    parser.add_argument("--repeats", type=int, default=5, help="random montages per coverage")
    parser.add_argument("--stride", type=float, default=2.0, help="seconds between windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default MODEL_DIR/training/coverage.json)",
    )
    parser.add_argument("--no-card", action="store_true", help="leave the model card as it is")
    parser.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from affectstream.models.contract import ContractError
    from affectstream.models.runner import ModelLoadError
    from affectstream.training.coverage import (
        COVERAGE_FILE,
        COVERAGES,
        evaluate_coverage,
        held_out_files,
        with_coverage_section,
    )

    coverages = tuple(args.coverage or COVERAGES)
    if not all(0 < c <= 1 for c in coverages) or args.repeats < 1:
        print("coverage: error: coverages must be in (0, 1], --repeats ≥ 1", file=sys.stderr)
        return 2
    try:
        files = held_out_files(args.data, args.subjects)
        doc = evaluate_coverage(
            args.model_dir,
            files,
            coverages=coverages,
            repeats=args.repeats,
            seed=args.seed,
            stride_s=args.stride,
            progress=None if args.quiet else lambda m: print("  " + m, flush=True),
        )
    except (FileNotFoundError, ValueError, ContractError, ModelLoadError) as e:
        print(f"coverage: error: {e}", file=sys.stderr)
        return 2
    out = args.out or args.model_dir / "training" / COVERAGE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    card = args.model_dir / "README.md"
    if not args.no_card and card.is_file():
        card.write_text(with_coverage_section(card.read_text(), doc))
    label = " (synthetic data, not DEAP)" if doc["data"]["synthetic"] else ""
    print(f"coverage curve of {doc['model']}{label}: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m affectstream.training.commands.coverage", description=__doc__
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
