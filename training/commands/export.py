"""Export a trained run to ONNX with its contract (model.json) and model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", nargs="?", type=Path, default=None, help="run directory of affectstream train"
    )
    parser.add_argument("--run", type=Path, default=None, help="the same, as an option")
    parser.add_argument(
        "--out", type=Path, required=True, help="model folder, e.g. models/zoo/NAME"
    )
    parser.add_argument("--name", default=None, help="model name (default: the architecture)")
    parser.add_argument("--version", default="1")
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another run of the same model (e.g. the leaky segment split) to quote beside it",
    )


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            "affectstream export needs PyTorch: pip install 'affectstream[train]'", file=sys.stderr
        )
        return 2
    from affectstream.models.contract import ContractError
    from affectstream.training.export import export_run

    if (args.run is None) == (args.run_dir is None):
        print(
            "affectstream export: error: give the run directory once (RUN_DIR or --run)",
            file=sys.stderr,
        )
        return 2
    args.run = args.run or args.run_dir
    if not (args.run / "final.json").exists():
        print(
            f"affectstream export: error: {args.run} has no final.json (run affectstream train)",
            file=sys.stderr,
        )
        return 2
    try:
        out = export_run(args.run, args.out, args.name, args.version, args.compare)
    except (FileNotFoundError, ContractError) as e:
        print(f"affectstream export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {out / 'model.onnx'} with {out / 'model.json'} and {out / 'README.md'}")
    return 0
