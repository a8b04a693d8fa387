"""Ingest cost benchmark: CPU time of the acquisition layer per live session.

A session here is a replayed DEAP-format subject: 40 channels at 128 Hz in five LSL streams
(EEG 32, GSR 1, PPG 1, RESP 1, AUX 5) plus markers, published by ``DeapReplay`` objects in a
separate pusher process. This process runs one ``IngestSession`` per replayed session (the real
code path: continuous resolver, one acquisition thread per inlet, ring buffers, health) and
measures its own CPU time (user + system) over a steady-state interval.

Prints a JSON document and writes it to ``bench/results/ingest-<date>-<host>.json``:
per session count, CPU fraction of one core for the whole process and per session, samples
received vs expected; and ``sessions_at_50pct_core``: the largest measured count whose CPU stayed
under 50 % of one core, plus the count extrapolated from the per-session cost at the largest load.

Usage: ``python -m affectstream.bench.ingest [--sessions 1,4,16] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from affectstream.bench.machine import machine
from affectstream.streaming.lsl.config import use_machine_scope

use_machine_scope()


def push(path: Path, n: int, prefix: str) -> None:
    """Pusher process: n looping replays of one file, in threads, until stdin closes."""
    from affectstream.streaming.formats.deap import read_deap
    from affectstream.streaming.replay.deap import DeapReplay

    subject = read_deap(path)
    stop = threading.Event()
    replays = [DeapReplay(subject, [1], loop=True, session=f"{prefix}-{i:03d}") for i in range(n)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in replays]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    stop.set()


def measure(path: Path, n: int, seconds: float) -> dict[str, Any]:
    from affectstream.streaming.ingest.session import IngestSession, SessionMatch
    from affectstream.streaming.lsl.inlet import StreamDirectory

    prefix = f"bench-{os.getpid()}-{n}"
    argv = ["--push", str(n), "--prefix", prefix, "--file", str(path)]
    pusher = subprocess.Popen(
        [sys.executable, "-m", "affectstream.bench.ingest", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert pusher.stdout is not None and pusher.stdin is not None
    pusher.stdout.readline()
    directory = StreamDirectory()
    sessions = [
        IngestSession(SessionMatch(source_id_prefix=f"{prefix}-{i:03d}-"), directory=directory)
        for i in range(n)
    ]
    try:
        for s in sessions:
            s.start()
        deadline = time.monotonic() + 60 + n
        types = ["EEG", "GSR", "PPG", "RESP", "AUX"]
        while not all(all(s.by_type(t) for t in types) for s in sessions):
            if time.monotonic() > deadline:
                raise SystemExit(f"only some streams found for {n} sessions")
            time.sleep(0.2)
        time.sleep(2.0)  # settle: connections open, buffers warm
        before = {id(s): _samples(s) for s in sessions}
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        received = sum(_samples(s) - before[id(s)] for s in sessions)
    finally:
        for s in sessions:
            s.close()
        directory.close()
        pusher.stdin.close()
        pusher.wait(30)
    wall = wall1 - wall0
    core = (cpu1 - cpu0) / wall
    expected = n * 5 * 128 * wall  # samples of the 5 data streams
    return {
        "sessions": n,
        "seconds": round(wall, 3),
        "cpu_core_fraction": round(core, 4),
        "cpu_core_fraction_per_session": round(core / n, 5),
        "cpu_ms_per_session_second": round(1000 * core / n, 3),
        "samples_received": received,
        "samples_expected": round(expected),
        "received_ratio": round(received / expected, 4),
    }


def _samples(session: object) -> int:
    return sum(a.health.samples for a in session.acquirers.values() if not a.is_marker)  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", default="1,4,16,32")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--push", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.push:
        push(args.file, args.push, args.prefix)
        return 0
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    with tempfile.TemporaryDirectory() as tmp:
        (path,) = write_synthetic_deap(Path(tmp), n_subjects=1, n_trials=1, seed=0)
        rows: list[dict[str, Any]] = []
        for n in (int(x) for x in args.sessions.split(",")):
            row = measure(path, n, args.seconds)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    under = [r["sessions"] for r in rows if float(r["cpu_core_fraction"]) < 0.5]
    heaviest = max(rows, key=lambda r: int(r["sessions"]))
    per = float(heaviest["cpu_core_fraction_per_session"])
    doc = {
        "benchmark": "ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "session": "DEAP layout: 40 channels at 128 Hz in 5 streams + markers",
        "machine": machine("numpy", "pylsl"),
        "results": rows,
        "sessions_at_50pct_core_measured": max(under) if under else 0,
        "sessions_at_50pct_core_extrapolated": int(0.5 / per) if per > 0 else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"ingest-{dt.date.today().isoformat()}-{socket.gethostname()}.json"
    (args.out / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
