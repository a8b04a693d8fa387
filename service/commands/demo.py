"""Synthesise a subject, replay it as LSL streams and show what a listener receives.

The demo runs what a lab would run, as separate processes: ``affectstream synth`` writes a
synthetic subject in the real DEAP format (once; it is cached), ``affectstream replay`` publishes it
as LSL outlets on this machine, and this process resolves those streams, opens an inlet on each and
prints, once a second, what arrived. Discovery is limited to this machine (see
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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np


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


@dataclass
class _Received:
    """What one inlet has received so far (guarded by ``lock``)."""

    n: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    last: np.ndarray | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(args: argparse.Namespace) -> int:
    from streaming.lsl_config import use_machine_scope

    use_machine_scope()  # before pylsl is first imported in this process
    from streaming.inlet import (
        Inlet,
        LslError,
        StreamDescription,
        decode_marker,
        resolve_streams,
    )

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
    session = f"affectstream-demo-{os.getpid()}"
    replay = subprocess.Popen(
        [*cli, "replay", str(subject_file), "--loop", "--quiet", "--session", session,
         "--speed", str(args.speed), "--wait-for-consumers", "10"],
    )  # fmt: skip
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        streams: list[StreamDescription] = []
        deadline = time.monotonic() + 15
        while len(streams) < 6 and time.monotonic() < deadline and not stop.is_set():
            streams = resolve_streams(timeout=1.0, source_id_prefix=session)
        if len(streams) < 6:
            print(f"demo: found {len(streams)} of the 6 replay streams in 15 s", file=sys.stderr)
            return 1
        print(f"demo: session {session}: {len(streams)} streams on this machine", flush=True)
        inlets = [Inlet(s) for s in streams]
        for inlet in inlets:
            inlet.open()
            labels = inlet.channel_labels()
            shown = ", ".join(labels[:4]) + (" …" if len(labels) > 4 else "")
            print(
                f"  {inlet.stream.type:<8} {inlet.stream.channel_count:>2} ch "
                f"@ {inlet.stream.nominal_srate:g} Hz  [{shown}]",
                flush=True,
            )
        received = {inlet.stream.type: _Received() for inlet in inlets}
        errors: list[str] = []

        def pull_loop(inlet: Inlet) -> None:  # one thread per inlet (DESIGN.md §7)
            rec = received[inlet.stream.type]
            while not stop.is_set():
                try:
                    data, ts = inlet.pull()
                except LslError as e:
                    errors.append(str(e))
                    return
                if len(ts) == 0:
                    time.sleep(0.01)
                    continue
                if inlet.stream.type == "Markers":
                    for text, t in zip(data, ts, strict=True):
                        _print_marker(decode_marker(str(text)), float(t))
                with rec.lock:
                    rec.n += len(ts)
                    rec.first_ts = float(ts[0]) if rec.first_ts is None else rec.first_ts
                    rec.last_ts = float(ts[-1])
                    rec.last = np.array(data[-1])

        threads = [threading.Thread(target=pull_loop, args=(i,), daemon=True) for i in inlets]
        for t in threads:
            t.start()
        start = time.monotonic()
        while not stop.is_set():
            stop.wait(1.0)
            elapsed = time.monotonic() - start
            print(_status_line(elapsed, received), flush=True)
            if errors:
                print("demo: " + "; ".join(errors), file=sys.stderr)
                return 1
            if args.seconds is not None and elapsed >= args.seconds:
                break
        stop.set()
        missing = [k for k, r in received.items() if r.n == 0 and k != "Markers"]
        if missing:
            print(f"demo: no data received from {', '.join(missing)}", file=sys.stderr)
            return 1
        return 0
    finally:
        stop.set()
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


def _status_line(elapsed: float, received: dict[str, _Received]) -> str:
    parts = [f"[{elapsed:6.1f} s]"]
    for kind, rec in received.items():
        if kind == "Markers":
            continue
        with rec.lock:
            n, first, last, value = rec.n, rec.first_ts, rec.last_ts, rec.last
        rate = (n - 1) / (last - first) if n > 1 and last and first and last > first else 0.0
        shown = ""
        if value is not None and kind in ("GSR", "PPG", "RESP"):
            unit = " µS" if kind == "GSR" else ""
            shown = f" last {float(value[0]):.3g}{unit}"
        parts.append(f"{kind} {n} smp {rate:.1f} Hz{shown}")
    return " | ".join(parts)
