"""Export a trained run to ONNX with its contract (model.json) and model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", type=Path, required=True, help="run directory of affectstream train"
    )
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
    from training.export import export_run

    if not (args.run / "final.json").exists():
        print(
            f"affectstream export: error: {args.run} has no final.json (run affectstream train)",
            file=sys.stderr,
        )
        return 2
    out = export_run(args.run, args.out, args.name, args.version, args.compare)
    print(f"exported {out / 'model.onnx'} with {out / 'model.json'} and {out / 'README.md'}")
    return 0
