"""Measure end-to-end latency, capacity, stage costs and inference throughput on this machine.

``affectstream bench`` runs, on the real code paths (see ``service/bench/``):

1. end-to-end latency (LSL push of a window's last sample → WebSocket receipt of its prediction)
   and capacity, for growing numbers of full DEAP-like sessions against a real ``serve`` process
   with the default models (:mod:`affectstream.bench.e2e`);
2. stage costs (the service's own per-message ``latency_ms``) at one session;
3. inference per architecture at batch 1 and 32, ONNX Runtime vs PyTorch eager on the same input
   (:mod:`affectstream.bench.inference`; needs the ``train`` extra);
4. online cvxEDA vs a from-scratch cvxopt solve per segment length
   (:mod:`affectstream.bench.cvxeda`).

It writes ``<out>/<date>-<host>.json`` and ``<out>/<date>-<host>.png`` (``…-quick.…`` with
``--quick``), prints where, and with ``--update-readme README.md`` rewrites the README's benchmark
block. ``--quick`` (1 and 2 sessions, 5 s each, short timings) checks that everything runs in under
two minutes; its figures are too short to quote. The full run takes about 5-8 minutes.

Exit status: 0 when every measurement ran (targets missed or not: they are reported, not
enforced), 1 when a measurement failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

FULL_SESSIONS = (1, 8, 16, 32, 48, 64)
QUICK_SESSIONS = (1, 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="a < 2 min smoke run (1 and 2 sessions, short timings)"
    )
    parser.add_argument(
        "--sessions",
        default=None,
        metavar="N,N,…",
        help=f"session counts to measure (default {','.join(map(str, FULL_SESSIONS))}; "
        f"quick {','.join(map(str, QUICK_SESSIONS))})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measurement time per session count (default 20; quick 5)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        metavar="DIR",
        help="where the JSON and PNG go (default bench/results)",
    )
    parser.add_argument(
        "--eda-csv",
        type=Path,
        default=None,
        metavar="CSV",
        help="skin conductance for the cvxEDA section: a CSV with an EDA column at 100 Hz "
        "(NeuroKit2 layout); default the GSR of a synthetic DEAP subject",
    )
    parser.add_argument(
        "--update-readme",
        type=Path,
        default=None,
        metavar="README",
        help="rewrite the benchmark block of this README with the results",
    )


def _levels(args: argparse.Namespace) -> tuple[int, ...] | str:
    if args.sessions is None:
        return QUICK_SESSIONS if args.quick else FULL_SESSIONS
    try:
        levels = tuple(sorted({int(x) for x in args.sessions.split(",") if x.strip()}))
    except ValueError:
        return f"--sessions must be comma-separated integers, got {args.sessions!r}"
    if not levels or levels[0] < 1 or levels[-1] > 256:
        return f"--sessions must be within 1-256, got {args.sessions!r}"
    return levels


def run(args: argparse.Namespace) -> int:
    levels = _levels(args)
    if isinstance(levels, str):
        print(f"affectstream bench: error: {levels}", file=sys.stderr)
        return 2
    seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 20.0)
    if not 1.0 <= seconds <= 600.0:
        print("affectstream bench: error: --seconds must be within 1-600", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        print(
            f"affectstream bench: error: {e.name} is missing; the benchmark compares against "
            "PyTorch and plots with matplotlib: pip install 'affectstream[train]'",
            file=sys.stderr,
        )
        return 1
    try:
        doc = measure(levels, seconds, args.quick, eda_csv=args.eda_csv)
    except Exception as e:
        print(
            f"affectstream bench: error: measurement failed: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return 1
    return write(doc, args.out, args.update_readme)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(
    levels: tuple[int, ...], seconds: float, quick: bool, eda_csv: Path | None = None
) -> dict[str, Any]:
    """Run every part; the complete document (without file names)."""
    from affectstream.bench import cvxeda, e2e, inference
    from affectstream.bench.machine import machine
    from affectstream.bench.report import targets
    from affectstream.service.settings import DEFAULT_MODEL_DIR

    started = time.monotonic()
    info = machine("numpy", "scipy", "onnxruntime", "torch", "pylsl", "numba", "cvxopt", "uvicorn")
    _log(f"end-to-end sweep over {list(levels)} sessions, {seconds:g} s each")
    sweep = e2e.run_e2e(levels, seconds, log=_log)
    _log("inference throughput, ONNX Runtime vs PyTorch")
    throughput = inference.measure_all(
        DEFAULT_MODEL_DIR,
        min_time_s=0.1 if quick else 1.5,
        min_runs=5 if quick else 30,
        log=_log,
    )
    _log("online cvxEDA vs cvxopt")
    cvx = _cvxeda(cvxeda, quick, eda_csv)
    first = sweep["levels"][str(min(levels))]
    doc: dict[str, Any] = {
        "benchmark": "affectstream",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": info,
        "e2e_latency_ms": sweep["e2e_latency_ms"],
        "capacity_sessions": sweep["capacity_sessions"],
        "capacity": sweep["capacity"],
        "stage_ms": {
            "sessions": min(levels),
            "source": "the service's per-message latency_ms at the smallest session count",
            **{
                k: first["service_latency_ms"].get(k)
                for k in ("ingest", "preprocess", "inference", "total")
            },
        },
        "inference_throughput": throughput,
        "cvxeda_speedup": cvx,
        "levels": sweep["levels"],
        "models": sweep["models"],
        "client_errors": sweep["client_errors"],
        "service_log_tail": sweep["service_log_tail"],
        "e2e_method": sweep["method"],
    }
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    doc["targets"] = targets(doc)
    doc["wall_s"] = round(time.monotonic() - started, 1)
    return doc


def _cvxeda(cvxeda: Any, quick: bool, eda_csv: Path | None = None) -> dict[str, Any]:
    """The ``cvxeda_speedup`` section at 16 Hz, on ``eda_csv`` (a NeuroKit2-style CSV at 100 Hz)
    or, when None, on the GSR of a synthetic DEAP subject."""
    from affectstream.streaming.preprocess.cvxeda.compiled import compiled_ipm_class

    # numba compiles now (or loads its disk cache), not while timing; --quick skips it
    compiled = not quick and compiled_ipm_class() is not None
    trace = cvxeda.read_neurokit_csv(eda_csv) if eda_csv else cvxeda.synthetic_deap_gsr(seed=0)
    y = cvxeda.resample(trace, 16)
    lengths = (10, 20) if quick else (10, 20, 30, 60)
    hops = 8 if quick else 60
    rows = {
        str(n): cvxeda.measure(y, 16, n, hops, check_every=4 if quick else 10, compiled=compiled)
        for n in lengths
    }
    return {
        "rate_hz": 16,
        "data": f"{trace.source} ({trace.rate_hz:g} Hz), resampled to 16 Hz",
        "online": "OnlineCvxEda.update, warm banded interior point (numpy/LAPACK), steady state",
        "compiled": "the same iteration compiled with numba (what the service uses once ready)"
        if compiled
        else None,
        "reference": "cvxeda() from scratch: model matrices + cvxopt qp",
        "by_segment_s": rows,
    }


def write(doc: dict[str, Any], out: Path, readme: Path | None) -> int:
    from affectstream.bench.report import markdown, plot, update_readme

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-{socket.gethostname()}{'-quick' if doc['quick'] else ''}"
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    doc["files"] = {"json": str(json_path), "png": str(png_path)}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, png_path)
    if readme is not None:
        rel = Path(json_path).resolve().relative_to(readme.resolve().parent)
        rel_png = Path(png_path).resolve().relative_to(readme.resolve().parent)
        update_readme(readme, markdown(doc, str(rel), str(rel_png)))
    print(markdown(doc, str(json_path), str(png_path)))
    print(f"\nwrote {json_path} and {png_path}")
    return 0
