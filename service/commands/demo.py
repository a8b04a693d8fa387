"""Synthesise a subject, replay it as LSL streams and show what a listener receives.

The demo runs what a lab would run, as separate processes: ``affectstream synth`` writes a
synthetic subject in the real DEAP format (once; it is cached), ``affectstream replay`` publishes it
as LSL outlets on this machine, and this process takes them in with the ingest layer the service
uses (:class:`streaming.session.IngestSession`) and prints, once a second, what arrived: samples,
measured rate and health per stream, the latest skin conductance, PPG and respiration values, and
each trial marker with its ground-truth ratings. Discovery is limited to this machine (see
``streaming/lsl_machine_scope.cfg``) unless ``LSLAPICFG`` is already set.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streaming.session import IngestSession

STREAM_TYPES = ("EEG", "GSR", "PPG", "RESP", "AUX", "Markers")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "affectstream" / "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder for the synthetic subject (default: {_default_data_dir()})",
    )
    parser.add_argument(
        "--trials", type=int, default=3, help="trials to synthesise (default 3, i.e. 189 s)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )


def run(args: argparse.Namespace) -> int:
    from streaming.lsl_config import use_machine_scope

    use_machine_scope()  # before pylsl is first imported in this process
    from streaming.inlet import decode_marker
    from streaming.session import IngestSession, SessionMatch

    data_dir: Path = args.data or _default_data_dir()
    subject_file = data_dir / "s01.dat"
    cli = [sys.executable, "-m", "service"]
    if not subject_file.exists():
        print(f"demo: writing a synthetic subject to {subject_file} (once) …", flush=True)
        done = subprocess.run(
            [*cli, "synth", "--out", str(data_dir), "--subjects", "1", "--trials",
             str(args.trials), "--seed", "0"],
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print("demo: synth failed", file=sys.stderr)
            return 1
    session_name = f"affectstream-demo-{os.getpid()}"
    replay = subprocess.Popen(
        [*cli, "replay", str(subject_file), "--loop", "--quiet", "--session", session_name,
         "--speed", str(args.speed), "--wait-for-consumers", "10"],
    )  # fmt: skip
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    session = IngestSession(SessionMatch(source_id_prefix=session_name + "-")).start()
    try:
        if not session.wait_for(STREAM_TYPES, timeout=15):
            found = sorted(a.stream.type for a in session.acquirers.values())
            print(f"demo: found only {found} of the replay streams in 15 s", file=sys.stderr)
            return 1
        print(f"demo: session {session_name}: {len(session.acquirers)} streams", flush=True)
        for kind in STREAM_TYPES:
            acq = session.by_type(kind)
            assert acq is not None
            s = acq.stream
            shown = ", ".join(s.channel_labels[:4]) + (" …" if len(s.channel_labels) > 4 else "")
            rate = f"{s.nominal_srate:g} Hz" if s.is_regular else "irregular"
            print(f"  {s.type:<8} {s.channel_count:>2} ch @ {rate:<9} [{shown}]", flush=True)
        start = time.monotonic()
        seen_markers = 0.0
        while not stop.wait(1.0):
            markers = session.by_type("Markers")
            assert markers is not None
            for ts, text in markers.markers_between(seen_markers, float("inf")):
                seen_markers = ts + 1e-9
                _print_marker(decode_marker(text), ts)
            elapsed = time.monotonic() - start
            print(_status_line(elapsed, session), flush=True)
            if args.seconds is not None and elapsed >= args.seconds:
                break
        silent = [
            r["type"] for r in session.report() if r["type"] != "Markers" and not r["samples"]
        ]
        if silent:
            print(f"demo: no data received from {', '.join(map(str, silent))}", file=sys.stderr)
            return 1
        return 0
    finally:
        session.close()  # close the inlets before their outlets go away
        replay.terminate()
        try:
            replay.wait(5)
        except subprocess.TimeoutExpired:
            replay.kill()


def _print_marker(payload: dict[str, Any] | None, ts: float) -> None:
    if payload is None:
        print(f"  marker @ {ts:.3f}: (not JSON)", flush=True)
    elif payload.get("event") == "trial_start":
        print(
            f"  marker @ {ts:.3f}: trial {payload['trial']} starts — ground truth valence "
            f"{payload['valence']:.2f}, arousal {payload['arousal']:.2f}",
            flush=True,
        )
    else:
        print(
            f"  marker @ {ts:.3f}: trial {payload.get('trial')} {payload.get('event')}", flush=True
        )


def _status_line(elapsed: float, session: IngestSession) -> str:
    parts = []
    for kind in STREAM_TYPES[:-1]:
        acq = session.by_type(kind)
        if acq is None or acq.buffer is None:
            continue
        h = acq.health.snapshot()
        rate = "-" if h["measured_srate"] is None else f"{h['measured_srate']:.1f}"
        shown = ""
        if kind in ("GSR", "PPG", "RESP"):
            latest, _ = acq.buffer.latest(1)
            if len(latest):
                unit = " µS" if kind == "GSR" else ""
                shown = f" last {float(latest[0, 0]):.3g}{unit}"
        parts.append(f"{kind} {h['samples']} smp {rate} Hz {h['state']}{shown}")
    return f"[{elapsed:6.1f} s] " + " | ".join(parts)
