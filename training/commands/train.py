"""Train a model on DEAP (or synthetic DEAP-format data) with an honest evaluation protocol."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["deap"], default="deap")
    parser.add_argument("--data", type=Path, required=True, help="folder with s01.dat … sNN.dat")
    parser.add_argument("--model", required=True, help="architecture name (see models/registry.py)")
    parser.add_argument(
        "--protocol",
        choices=["subject", "loso", "segment"],
        default="subject",
        help="subject-independent k-fold (default), leave-one-subject-out, or the leaky "
        "segment-level random split (for comparison with papers)",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=6, help="early-stopping patience, epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-rule", choices=["threshold", "kmeans"], default="threshold")
    parser.add_argument("--subjects", type=int, default=None, help="use the first N subjects only")
    parser.add_argument(
        "--stride",
        type=float,
        default=None,
        help="seconds between training windows (default: preset)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument(
        "--cv-only",
        action="store_true",
        help="report the cross-validation only; no final model (e.g. a comparison protocol)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory for the report")


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / max(1, total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            "affectstream train needs PyTorch: pip install 'affectstream[train]'", file=sys.stderr
        )
        return 2
    import numpy as np

    from models.contract import feature_to_dict
    from training.datasets.deap import deap_files, deap_windows
    from training.presets import preset
    from training.report import write_report
    from training.synthetic import SYNTHETIC_MARKER
    from training.train import TrainConfig, run_training, summarise, write_json

    try:
        p = preset(args.model)
        files = deap_files(args.data)[: args.subjects]
    except (ValueError, FileNotFoundError) as e:
        print(f"affectstream train: error: {e}", file=sys.stderr)
        return 2
    synthetic = (args.data / SYNTHETIC_MARKER).exists()
    t0 = time.monotonic()
    print(f"preprocessing {len(files)} subject(s) for {args.model} …", flush=True)
    done = [0]

    def on_file(msg: str) -> None:
        done[0] += 1
        print(f"  {_bar(done[0], len(files))} {msg}", flush=True)

    stride = args.stride or p.stride_s
    ws = deap_windows(files, p.spec, stride, progress=on_file)
    print(f"{len(ws)} windows in {time.monotonic() - t0:.0f} s", flush=True)
    cfg = TrainConfig(
        model=args.model,
        protocol=args.protocol,
        folds=args.folds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        label_rule=args.label_rule,
        hyper=dict(p.hyper),
        device=args.device,
    )
    try:
        results, final, rule = run_training(
            cfg,
            p.spec,
            ws,
            progress=lambda m: print("  " + m, flush=True),
            final_model=not args.cv_only,
        )
    except ValueError as e:
        print(f"affectstream train: error: {e}", file=sys.stderr)
        return 2
    from training.labels import binarise

    y, _ = binarise(ws.ratings[:, :2], ws.subjects, args.label_rule)
    balance = {
        d: {"high": int(y[:, k].sum()), "low": int(len(y) - y[:, k].sum())}
        for k, d in enumerate(("valence", "arousal"))
    }
    dataset = {
        "name": "synthetic DEAP-format data (affectstream synth)" if synthetic else "DEAP",
        "synthetic": synthetic,
        "generator": json.loads((args.data / SYNTHETIC_MARKER).read_text()) if synthetic else None,
        "path": str(args.data),
        "subjects": len(np.unique(ws.subjects)),
        "windows": len(ws),
        "stride_s": stride,
    }
    config = {k: v for k, v in vars(args).items() if k not in ("data", "out") and k[0] != "_"}
    config["out"] = str(args.out)
    doc = write_report(
        args.out,
        model=args.model,
        protocol=args.protocol,
        results=results,
        label_rule=rule,
        dataset=dataset,
        config=config,
        class_balance=balance,
    )
    retrain = (
        f"affectstream train --dataset deap --data data_preprocessed_python --model "
        f"{args.model} --protocol subject --folds {args.folds} --epochs {args.epochs} "
        f"--patience {args.patience} --stride {stride:g} --seed {args.seed} "
        f"--out runs/{args.model}-deap"
    )
    if final is not None:
        import torch as _torch

        _torch.save(final.module.state_dict(), args.out / "final.pt")
        write_json(
            args.out / "final.json",
            {
                "architecture": args.model,
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
                    for f in p.spec.inputs
                ],
                "label_rule": rule if rule["kind"] == "threshold" else {"kind": "kmeans"},
                "trained_on": {
                    "dataset": dataset,
                    "protocol": args.protocol,
                    "protocol_description": doc["protocol_description"],
                    "metrics": summarise(results),
                    "final_model": "all subjects (validation subjects carved out for stopping)",
                    "retrain_command": retrain,
                    "command": "affectstream train " + " ".join(map(shlex.quote, sys.argv[2:])),
                },
            },
        )
    s = doc["summary"]
    print(f"report: {args.out / 'report.md'}")
    print(
        "  "
        + ", ".join(
            f"{d} accuracy {s[d]['accuracy']['mean']:.3f} ± {s[d]['accuracy']['std']:.3f}"
            for d in ("valence", "arousal")
        )
        + (" (synthetic data, not DEAP)" if synthetic else "")
        + (" [LEAKY protocol]" if args.protocol == "segment" else "")
    )
    print(json.dumps({"report": str(args.out / "report.json")}))
    return 0
