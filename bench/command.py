"""Measure end-to-end latency, capacity, stage costs and inference throughput on this machine.

``affectstream bench`` runs, on the real code paths (the package ``affectstream.bench``), these
sections, in this order (``--only`` picks some of them, e.g. ``--only ingest,cvxeda``):

- ``ingest``: CPU time of the acquisition layer per live session, for growing numbers of full
  DEAP-like sessions held by ``IngestSession`` objects in this process, with nothing else running
  in it (:mod:`affectstream.bench.ingest`; JSON key ``ingest``);
- ``e2e``: end-to-end latency (LSL push of a window's last sample → WebSocket receipt of its
  prediction) and capacity, for growing numbers of sessions of each kind (``--kind``: ``lab``,
  full DEAP-like sessions served by the default models; ``wearable``, EDA 4 Hz + BVP 64 Hz
  served by the wearable models) against a real ``serve`` process, and the stage costs (the
  service's own per-message ``latency_ms``) at the smallest count (:mod:`affectstream.bench.e2e`;
  keys ``e2e_latency_ms``, ``capacity_sessions``, ``capacity``, ``stage_ms``, ``levels`` … for
  the lab kind, the same keys under ``wearable`` for the wearable kind);
- ``profile``: the service's CPU by stage (acquisition, windowing, preprocessing per input kind,
  inference per model, message building, JSON, WebSocket), in ms per session-second, one
  session of each kind profiled with py-spy (:mod:`affectstream.bench.profile`; key
  ``profile``);
- ``inference``: inference per architecture at batch 1 and 32, ONNX Runtime vs PyTorch eager on the
  same input (:mod:`affectstream.bench.inference`; needs the ``train`` extra; key
  ``inference_throughput``);
- ``cvxeda``: online cvxEDA vs a from-scratch cvxopt solve per segment length
  (:mod:`affectstream.bench.cvxeda`; key ``cvxeda_speedup``);
- ``resample``: CPU time per stream-second of the rate conversion for device rates (EEG 250-512
  Hz → 128 Hz, EDA 50/51.2 Hz → 16 Hz …) (:mod:`affectstream.bench.resample`; key
  ``resample_cost``).

The live sessions of ``ingest`` and ``e2e`` are looping replays of one DEAP-format subject,
published by the benchmark's pusher (:mod:`affectstream.bench.pusher`) in separate processes:
``--deap FILE`` (an ``sNN.dat``), by default a synthetic subject. The cvxEDA trace is
``--eda-csv FILE``, by default the GSR of a synthetic subject. Nothing is read from the source
tree.

It writes ``<out>/<date>-<host>.json`` and, with the ``e2e`` section, ``<out>/<date>-<host>.png``
(``…-quick.…`` with ``--quick``; the chosen sections are appended to the name with ``--only``),
prints where, and with ``--update-readme README.md`` (every section needed) rewrites the README's
benchmark block. ``--quick`` (1 and 2 lab sessions, 1 wearable session, short timings) checks that
everything runs in about three and a half minutes; its figures are too short to quote. The full run
takes about 18 minutes on 2 cores.

``--soak MINUTES`` runs the soak instead (:mod:`affectstream.bench.soak`): faulty sessions and
WebSocket client churn against a real ``serve`` process, the service's memory, threads, open files
and latency sampled every ``--soak-interval`` seconds; it writes ``<out>/<date>-<host>-soak.json``
and ``….png``.

Exit status: 0 when every measurement ran (targets missed or not: they are reported, not
enforced), 1 when a measurement failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectstream.bench.ingest import FULL_LEVELS as INGEST_FULL_LEVELS
from affectstream.bench.ingest import QUICK_LEVELS as INGEST_QUICK_LEVELS

SECTIONS: dict[str, str] = {
    "ingest": "acquisition CPU per live session, IngestSession in this process",
    "e2e": "end-to-end latency, capacity and stage costs against a real serve process",
    "profile": "the service's CPU per session-second by stage, py-spy on a real serve process",
    "inference": "inference per architecture, ONNX Runtime vs PyTorch eager",
    "cvxeda": "online cvxEDA vs a from-scratch cvxopt solve",
    "resample": "CPU per stream-second of converting device rates to the models' rates",
}
"""Section name → what it measures, in the order they run."""

FULL_SESSIONS = (1, 8, 12, 16, 24, 32)
QUICK_SESSIONS = (1, 2)
# the quick run's wearable sweep: one level (its warm-up is a 20 s window; the suite's budget)
WEARABLE_QUICK_SESSIONS = (1,)
WEARABLE_FULL_SESSIONS = (1, 10, 20, 30, 50, 100)
KINDS = ("lab", "wearable")
PROFILE_FULL_SECONDS, PROFILE_QUICK_SECONDS = 60.0, 4.0
FULL_SECONDS, QUICK_SECONDS = 20.0, 5.0
INGEST_FULL_SECONDS, INGEST_QUICK_SECONDS = 10.0, 3.0


def _counts(levels: tuple[int, ...]) -> str:
    return ",".join(map(str, levels))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a ~3.5 min smoke run (1 and 2 lab sessions, 1 wearable session, short timings)",
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="SECTION,…",
        help="run only these sections (comma-separated, e.g. ingest,cvxeda; default all): "
        + "; ".join(f"{k}: {v}" for k, v in SECTIONS.items()),
    )
    parser.add_argument(
        "--sessions",
        default=None,
        metavar="N,N,…",
        help=f"e2e: session counts to measure (default {_counts(FULL_SESSIONS)}; "
        f"quick {_counts(QUICK_SESSIONS)})",
    )
    parser.add_argument(
        "--kind",
        default=None,
        metavar="KIND,…",
        help="e2e and profile: the session kinds to measure (default lab,wearable): lab, full "
        "DEAP-like sessions (6 streams, 40 channels at 128 Hz) served by the default models; "
        "wearable, EDA 4 Hz + BVP 64 Hz served by rtcan1d and rtcan1d-eda-bvp",
    )
    parser.add_argument(
        "--wearable-sessions",
        default=None,
        metavar="N,N,…",
        help=f"e2e: wearable session counts to measure (default "
        f"{_counts(WEARABLE_FULL_SESSIONS)}; quick {_counts(WEARABLE_QUICK_SESSIONS)})",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"profile: recording time per kind (default {PROFILE_FULL_SECONDS:g}; quick "
        f"{PROFILE_QUICK_SECONDS:g})",
    )
    parser.add_argument(
        "--profile-rate",
        type=int,
        default=100,
        metavar="HZ",
        help="profile: py-spy samples per second (default 100)",
    )
    parser.add_argument(
        "--workers",
        default=None,
        metavar="N,N,…",
        help="e2e: run the sweep once per worker count, each against a gateway with that many "
        "local worker processes on a fresh redis-server (serve --bus URL --workers N), and "
        "report the capacities and their ratio (needs redis-server on PATH)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"e2e: measurement time per session count (default {FULL_SECONDS:g}; "
        f"quick {QUICK_SECONDS:g})",
    )
    parser.add_argument(
        "--ingest-sessions",
        default=None,
        metavar="N,N,…",
        help=f"ingest: session counts to measure (default {_counts(INGEST_FULL_LEVELS)}; "
        f"quick {_counts(INGEST_QUICK_LEVELS)})",
    )
    parser.add_argument(
        "--ingest-seconds",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"ingest: measurement time per session count (default {INGEST_FULL_SECONDS:g}; "
        f"quick {INGEST_QUICK_SECONDS:g})",
    )
    parser.add_argument(
        "--deap",
        type=Path,
        default=None,
        metavar="FILE",
        help="ingest and e2e: the DEAP-format subject (sNN.dat) every live session replays, "
        "looping over its trials; default a synthetic subject",
    )
    parser.add_argument(
        "--eda-csv",
        type=Path,
        default=None,
        metavar="CSV",
        help="cvxeda: skin conductance, a CSV with an EDA column at 100 Hz "
        "(NeuroKit2 layout); default the GSR of a synthetic DEAP subject",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        metavar="DIR",
        help="where the JSON and PNG go (default bench/results)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="MINUTES",
        help="run the soak instead of the sections: faulty sessions and WebSocket churn against "
        "a real serve process for MINUTES, sampling its RSS, threads, open files and latency",
    )
    parser.add_argument(
        "--soak-sessions",
        type=int,
        default=2,
        metavar="N",
        help="soak: live sessions (default 2)",
    )
    parser.add_argument(
        "--soak-faults",
        default=None,
        metavar="SPEC",
        help="soak: the sessions' faults, as for `affectstream replay --faults` (default: "
        "rare drops and NaN runs, 2 ms jitter, a restart every 45 s, a 1 s stall every 20 s)",
    )
    parser.add_argument(
        "--soak-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="soak: sampling interval (default 5)",
    )
    parser.add_argument(
        "--update-readme",
        type=Path,
        default=None,
        metavar="README",
        help="rewrite the benchmark block of this README with the results (every section needed)",
    )


@dataclass(frozen=True)
class Plan:
    """What one run measures, from the command line."""

    sections: tuple[str, ...]
    quick: bool
    levels: tuple[int, ...]
    seconds: float
    ingest_levels: tuple[int, ...]
    ingest_seconds: float
    deap: Path | None = None
    eda_csv: Path | None = None
    workers: tuple[int, ...] = ()
    kinds: tuple[str, ...] = KINDS
    wearable_levels: tuple[int, ...] = WEARABLE_FULL_SESSIONS
    profile_seconds: float = PROFILE_FULL_SECONDS
    profile_rate: int = 100


def _levels(text: str | None, option: str, default: tuple[int, ...]) -> tuple[int, ...] | str:
    if text is None:
        return default
    try:
        levels = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        return f"{option} must be comma-separated integers, got {text!r}"
    if not levels or levels[0] < 1 or levels[-1] > 256:
        return f"{option} must be within 1-256, got {text!r}"
    return levels


def _kinds(text: str | None) -> tuple[str, ...] | str:
    if text is None:
        return KINDS
    chosen = {x.strip() for x in text.split(",") if x.strip()}
    unknown = sorted(chosen - set(KINDS))
    if unknown or not chosen:
        return f"--kind takes kinds among {', '.join(KINDS)}, got {text!r}"
    return tuple(k for k in KINDS if k in chosen)


def _sections(text: str | None) -> tuple[str, ...] | str:
    if text is None:
        return tuple(SECTIONS)
    chosen = {x.strip() for x in text.split(",") if x.strip()}
    unknown = sorted(chosen - set(SECTIONS))
    if unknown or not chosen:
        return f"--only takes sections among {', '.join(SECTIONS)}, got {text!r}"
    return tuple(k for k in SECTIONS if k in chosen)


def plan(args: argparse.Namespace) -> Plan | str:
    """The run the arguments ask for, or why they are refused."""
    quick = bool(args.quick)
    sections = _sections(args.only)
    levels = _levels(args.sessions, "--sessions", QUICK_SESSIONS if quick else FULL_SESSIONS)
    ingest_levels = _levels(
        args.ingest_sessions,
        "--ingest-sessions",
        INGEST_QUICK_LEVELS if quick else INGEST_FULL_LEVELS,
    )
    workers = _levels(getattr(args, "workers", None), "--workers", ())
    wearable_levels = _levels(
        getattr(args, "wearable_sessions", None),
        "--wearable-sessions",
        WEARABLE_QUICK_SESSIONS if quick else WEARABLE_FULL_SESSIONS,
    )
    kinds = _kinds(getattr(args, "kind", None))
    for value in (sections, levels, ingest_levels, workers, wearable_levels, kinds):
        if isinstance(value, str):
            return value
    assert not isinstance(workers, str) and not isinstance(wearable_levels, str)
    assert not isinstance(kinds, str)
    if workers and workers[-1] > 16:
        return "--workers must be within 1-16"
    if workers and "e2e" not in sections:
        return "--workers measures the e2e section (drop --only, or include e2e)"
    assert not isinstance(sections, str)
    assert not isinstance(levels, str) and not isinstance(ingest_levels, str)
    seconds = args.seconds if args.seconds is not None else QUICK_SECONDS if quick else FULL_SECONDS
    if not 1.0 <= seconds <= 600.0:
        return "--seconds must be within 1-600"
    ingest_seconds = (
        args.ingest_seconds
        if args.ingest_seconds is not None
        else INGEST_QUICK_SECONDS
        if quick
        else INGEST_FULL_SECONDS
    )
    if not 1.0 <= ingest_seconds <= 600.0:
        return "--ingest-seconds must be within 1-600"
    if args.update_readme is not None and len(sections) < len(SECTIONS):
        return "--update-readme needs every section (no --only)"
    if args.update_readme is not None and kinds != KINDS:
        return "--update-readme needs every kind (no --kind)"
    profile_seconds = getattr(args, "profile_seconds", None)
    if profile_seconds is None:
        profile_seconds = PROFILE_QUICK_SECONDS if quick else PROFILE_FULL_SECONDS
    if not 1.0 <= profile_seconds <= 600.0:
        return "--profile-seconds must be within 1-600"
    profile_rate = int(getattr(args, "profile_rate", 100))
    if not 10 <= profile_rate <= 1000:
        return "--profile-rate must be within 10-1000"
    for option, path in (("--deap", args.deap), ("--eda-csv", args.eda_csv)):
        if path is not None and not path.is_file():
            return f"{option}: no such file: {path}"
    return Plan(
        sections,
        quick,
        levels,
        seconds,
        ingest_levels,
        ingest_seconds,
        args.deap,
        args.eda_csv,
        workers,
        kinds,
        wearable_levels,
        float(profile_seconds),
        profile_rate,
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "soak", None) is not None:
        return _soak(args)
    p = plan(args)
    if isinstance(p, str):
        print(f"affectstream bench: error: {p}", file=sys.stderr)
        return 2
    needed = {"e2e": "matplotlib", "inference": "torch"}
    if "profile" in p.sections:
        from affectstream.bench.profile import _pyspy

        try:
            _pyspy()
        except RuntimeError as e:
            print(f"affectstream bench: error: {e}", file=sys.stderr)
            return 1
    try:
        for section, module in needed.items():
            if section in p.sections:
                __import__(module)
    except ImportError as e:
        print(
            f"affectstream bench: error: {e.name} is missing; the benchmark compares against "
            "PyTorch and plots with matplotlib: pip install 'affectstream[train]'",
            file=sys.stderr,
        )
        return 1
    try:
        doc = measure(p)
    except Exception as e:
        print(
            f"affectstream bench: error: measurement failed: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return 1
    return write(doc, args.out, args.update_readme)


def soak_plan(args: argparse.Namespace) -> dict[str, Any] | str:
    """The soak's settings from the arguments, or why they are refused."""
    from affectstream.bench.soak import DEFAULT_FAULTS
    from affectstream.streaming.replay.faults import FaultSpecError, parse_faults

    if not 0 < args.soak <= 24 * 60:
        return "--soak must be within 0-1440 minutes"
    if not 1 <= args.soak_sessions <= 64:
        return "--soak-sessions must be within 1-64"
    if not 0.5 <= args.soak_interval <= 600:
        return "--soak-interval must be within 0.5-600 seconds"
    faults = DEFAULT_FAULTS if args.soak_faults is None else args.soak_faults
    try:
        parse_faults(faults)
    except FaultSpecError as e:
        return f"--soak-faults: {e}"
    if args.only is not None or args.update_readme is not None or args.quick:
        return "--soak runs alone: no --only, --quick or --update-readme"
    if args.deap is not None and not args.deap.is_file():
        return f"--deap: no such file: {args.deap}"
    return {
        "minutes": float(args.soak),
        "sessions": int(args.soak_sessions),
        "faults": faults,
        "interval_s": float(args.soak_interval),
    }


def _soak(args: argparse.Namespace) -> int:
    s = soak_plan(args)
    if isinstance(s, str):
        print(f"affectstream bench: error: {s}", file=sys.stderr)
        return 2
    try:
        __import__("matplotlib")
    except ImportError:
        print(
            "affectstream bench: error: matplotlib is missing; the soak plots with it: "
            "pip install 'affectstream[train]'",
            file=sys.stderr,
        )
        return 1
    from affectstream.bench.machine import machine
    from affectstream.bench.soak import run_soak

    started = time.monotonic()
    doc: dict[str, Any] = {
        "benchmark": "affectstream-soak",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": False,
        "sections": ["soak"],
        "machine": machine("numpy", "onnxruntime", "pylsl", "uvicorn", "websockets"),
    }
    try:
        with contextlib.ExitStack() as stack:
            data, label = _deap_data(args.deap, stack)
            doc["live_sessions_data"] = label
            _log(f"soak for {s['minutes']:g} min, {s['sessions']} sessions")
            doc["soak"] = run_soak(
                s["minutes"],
                data,
                sessions=s["sessions"],
                faults=s["faults"],
                interval_s=s["interval_s"],
                log=_log,
            )
    except Exception as e:
        print(
            f"affectstream bench: error: soak failed: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        return 1
    doc["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    doc["wall_s"] = round(time.monotonic() - started, 1)
    return write_soak(doc, args.out)


def write_soak(doc: dict[str, Any], out: Path) -> int:
    """``<out>/<date>-<host>-soak.json`` and ``.png``; prints the summary. Exit status 0, or 1
    when the service died during the soak."""
    from affectstream.bench.report import plot_soak, soak_markdown

    out.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-{socket.gethostname()}-soak"
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    doc["files"] = {"json": str(json_path), "png": str(png_path)}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    plot_soak(doc, png_path)
    print(soak_markdown(doc, str(json_path), str(png_path)))
    print(f"\nwrote {json_path} and {png_path}")
    return 0 if doc["soak"]["service_alive"] else 1


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(p: Plan) -> dict[str, Any]:
    """Run the planned sections; the document (without file names)."""
    from affectstream.bench.machine import machine
    from affectstream.bench.report import targets

    started = time.monotonic()
    info = machine("numpy", "scipy", "onnxruntime", "torch", "pylsl", "numba", "cvxopt", "uvicorn")
    doc: dict[str, Any] = {
        "benchmark": "affectstream",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": p.quick,
        "sections": list(p.sections),
        "machine": info,
    }
    with contextlib.ExitStack() as stack:
        live = bool({"ingest", "e2e", "profile"} & set(p.sections))
        data, label = _deap_data(p.deap, stack) if live else (Path(), "")
        if live:
            doc["live_sessions_data"] = label
            if "wearable" in p.kinds and {"e2e", "profile"} & set(p.sections):
                doc["live_sessions_data"] += "; wearable sessions: synthetic EDA and BVP"
        if "ingest" in p.sections:  # first: the process holds nothing else yet
            from affectstream.bench.ingest import run_ingest

            _log(f"ingest cost over {list(p.ingest_levels)} sessions, {p.ingest_seconds:g} s each")
            doc["ingest"] = run_ingest(
                p.ingest_levels,
                p.ingest_seconds,
                data,
                data_label=label,
                settle_s=1.0 if p.quick else 2.0,
                log=_log,
            )
        doc["kinds"] = list(p.kinds)
        if "e2e" in p.sections and p.workers:
            for kind in p.kinds:
                doc[_workers_key(kind)] = _e2e_workers(p, data, kind)
        elif "e2e" in p.sections:
            if "lab" in p.kinds:
                doc.update(_e2e(p, data, "lab"))
            if "wearable" in p.kinds:
                doc["wearable"] = _e2e(p, data, "wearable")
        if "profile" in p.sections:
            from affectstream.bench.profile import run_profile

            _log(f"profile of 1 session per kind {list(p.kinds)}, {p.profile_seconds:g} s each")
            doc["profile"] = run_profile(
                p.kinds, p.profile_seconds, data, rate=p.profile_rate, log=_log
            )
        info["load_average_1min_after_live_sections"] = round(os.getloadavg()[0], 2)
    if "inference" in p.sections:
        from affectstream.bench import inference
        from affectstream.service.settings import DEFAULT_MODEL_DIR

        _log("inference throughput, ONNX Runtime vs PyTorch")
        doc["inference_throughput"] = inference.measure_all(
            DEFAULT_MODEL_DIR,
            min_time_s=0.1 if p.quick else 1.5,
            min_runs=5 if p.quick else 30,
            log=_log,
        )
    if "cvxeda" in p.sections:
        from affectstream.bench import cvxeda

        _log("online cvxEDA vs cvxopt")
        doc["cvxeda_speedup"] = _cvxeda(cvxeda, p.quick, p.eda_csv)
    if "resample" in p.sections:
        from affectstream.bench import resample

        _log("resampling cost per stream-second")
        doc["resample_cost"] = resample.measure_all(quick=p.quick)
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    doc["targets"] = targets(doc)
    doc["wall_s"] = round(time.monotonic() - started, 1)
    return doc


def _deap_data(deap: Path | None, stack: contextlib.ExitStack) -> tuple[Path, str]:
    """The DEAP-format subject the live sessions replay, and its name for the document."""
    if deap is not None:
        return deap, str(deap)
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="affectstream-bench-")))
    (path,) = write_synthetic_deap(tmp, n_subjects=1, n_trials=2, seed=0)
    return path, "synthetic DEAP-format subject (seed 0, 2 trials)"


def _workers_key(kind: str) -> str:
    return "e2e_workers" if kind == "lab" else f"e2e_workers_{kind}"


def _kind_levels(p: Plan, kind: str) -> tuple[int, ...]:
    return p.levels if kind == "lab" else p.wearable_levels


def _e2e(p: Plan, data: Path, kind: str = "lab") -> dict[str, Any]:
    """The keys of the ``e2e`` section for one kind of session."""
    from affectstream.bench import e2e

    levels = _kind_levels(p, kind)
    _log(f"end-to-end sweep over {list(levels)} {kind} sessions, {p.seconds:g} s each")
    sweep = e2e.run_e2e(levels, p.seconds, data, log=_log, kind=kind)
    first = sweep["levels"][str(min(levels))]
    return {
        "kind": kind,
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
        "levels": sweep["levels"],
        "models": sweep["models"],
        "client_errors": sweep["client_errors"],
        "service_log_tail": sweep["service_log_tail"],
        "e2e_method": sweep["method"],
    }


def _e2e_workers(p: Plan, data: Path, kind: str = "lab") -> dict[str, Any]:
    """The e2e sweep once per worker count (a gateway and N local workers on a fresh Redis):
    capacity, latency and CPU per count, and the capacity ratio of the largest count to the
    smallest."""
    from affectstream.bench import e2e

    by_count: dict[str, Any] = {}
    levels = _kind_levels(p, kind)
    for n in p.workers:
        _log(f"end-to-end sweep over {list(levels)} {kind} sessions with {n} worker(s)")
        sweep = e2e.run_e2e(levels, p.seconds, data, log=_log, workers=n, kind=kind)
        by_count[str(n)] = {
            "capacity_sessions": sweep["capacity_sessions"],
            "capacity": sweep["capacity"],
            "e2e_latency_ms": sweep["e2e_latency_ms"],
            "levels": sweep["levels"],
            "client_errors": sweep["client_errors"],
            "service_log_tail": sweep["service_log_tail"],
        }
    low, high = by_count[str(min(p.workers))], by_count[str(max(p.workers))]
    ratio = (
        high["capacity_sessions"] / low["capacity_sessions"] if low["capacity_sessions"] else None
    )
    return {
        "kind": kind,
        "topology": "a gateway (serve --bus) and N local worker processes on one redis-server, "
        "pushers and clients on the same machine",
        "by_workers": by_count,
        "capacity_ratio": None if ratio is None else round(ratio, 2),
        "ratio_of": [min(p.workers), max(p.workers)],
        "models": sweep["models"],
    }


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
    sections = doc.get("sections", list(SECTIONS))
    stem = (
        f"{dt.date.today().isoformat()}-{socket.gethostname()}{'-quick' if doc['quick'] else ''}"
        + ("" if len(sections) == len(SECTIONS) else "-" + "-".join(sections))
        + ("-workers" if any(k.startswith("e2e_workers") for k in doc) else "")
        + (
            ""
            if doc.get("kinds", list(KINDS)) == list(KINDS)
            or not ({"e2e", "profile"} & set(sections))
            else "-" + "-".join(doc["kinds"])
        )
    )
    json_path = out / f"{stem}.json"
    png_path = out / f"{stem}.png" if "e2e_latency_ms" in doc or "wearable" in doc else None
    doc["files"] = {"json": str(json_path), "png": None if png_path is None else str(png_path)}
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    if png_path is not None:
        plot(doc, png_path)
    if readme is not None:  # links relative to the README, also to files outside its folder
        base = readme.resolve().parent
        rel = os.path.relpath(json_path.resolve(), base)
        rel_png = None if png_path is None else os.path.relpath(png_path.resolve(), base)
        update_readme(readme, markdown(doc, rel, rel_png))
    print(markdown(doc, str(json_path), None if png_path is None else str(png_path)))
    print(f"\nwrote {json_path}" + ("" if png_path is None else f" and {png_path}"))
    return 0
