"""Synthesise a subject, replay it over LSL, serve live valence/arousal, show the first predictions.

The demo runs what a lab would run, as separate processes on this machine:

1. ``affectstream synth`` writes one synthetic subject in the real DEAP format (once; cached):
   subject :data:`DEMO_SUBJECT` of seed 0, which no shipped model was trained or evaluated on
   (they were trained on subjects 1-10 and their coverage curves measured on 11-16), so the
   online score it prints is measured on unseen data;
2. ``affectstream replay … --loop`` publishes it as LSL streams (EEG, GSR, PPG, RESP, AUX,
   Markers with the trial's ratings), holding its clock until the service listens;
3. ``affectstream serve --auto-attach`` loads the shipped models (``models/zoo``), creates a
   session for the replay's streams and publishes predictions over WebSocket;
4. this process prints the dashboard URL, subscribes like any client, and prints predictions
   (about one line a second) next to the ground truth of the running trial, and the online score
   every ``--score-every`` seconds.

Discovery is limited to this machine (``streaming/lsl/machine_scope.cfg``) unless ``LSLAPICFG``
is set. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

DEMO_SUBJECT = 17
"""The synthetic subject the demo replays: outside every shipped model's training set (a test
checks it against each model's ``trained_on`` record)."""


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
    parser.add_argument("--trials", type=int, default=3, help="trials to synthesise (default 3)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1)")
    parser.add_argument("--port", type=int, default=8000, help="service port (default 8000)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)"
    )
    parser.add_argument(
        "--score-every", type=float, default=15.0, help="print the online score every N seconds"
    )


def run(args: argparse.Namespace) -> int:
    from affectstream.streaming.lsl.config import use_machine_scope

    use_machine_scope()  # inherited by the replay and service processes
    data_dir: Path = args.data or _default_data_dir()
    subject_file = data_dir / f"s{DEMO_SUBJECT:02d}.dat"
    cli = [sys.executable, "-m", "affectstream.service"]
    if not subject_file.exists():
        print(f"demo: writing a synthetic subject to {subject_file} (once) …", flush=True)
        synth = [
            *cli,
            "synth",
            "--out",
            str(data_dir),
            "--subjects",
            "1",
            "--first-subject",
            str(DEMO_SUBJECT),
            "--trials",
            str(args.trials),
            "--seed",
            "0",
        ]
        if subprocess.run(synth, check=False).returncode != 0:
            print("demo: synth failed", file=sys.stderr)
            return 1
    session = f"demo-{os.getpid()}"
    base = f"http://127.0.0.1:{args.port}"
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [*cli, "serve", "--auto-attach", "--port", str(args.port), "--log-level", "warning"]
            )
        )
        if not _wait_http(f"{base}/ready", 30, procs[0]):
            print(f"demo: the service did not become ready on {base}", file=sys.stderr)
            return 1
        models = _get(f"{base}/models")
        names = [m["name"] + "@" + m["version"] for m in models["models"]]
        print(
            f"demo: service on {base} with {', '.join(names)} ({models['models'][0]['provider']})",
            flush=True,
        )
        for name, why in models.get("refused", {}).items():
            print(f"demo: model {name} refused: {why}", file=sys.stderr)
        procs.append(
            subprocess.Popen(
                [
                    *cli,
                    "replay",
                    str(subject_file),
                    "--loop",
                    "--quiet",
                    "--session",
                    session,
                    "--speed",
                    str(args.speed),
                    "--wait-for-consumers",
                    "20",
                ],
            )
        )
        print(f"demo: replaying {subject_file} (synthetic data, not DEAP) as session {session}")
        print(f"demo: dashboard  {base}/?session={session}", flush=True)
        return asyncio.run(_follow(base, session, args, lambda: stopping, procs))
    finally:
        # the service first (its inlets close cleanly while the outlets still exist), then replay
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


async def _follow(
    base: str, session: str, args: argparse.Namespace, stopping: Any, procs: list[Any]
) -> int:
    import websockets

    start = time.monotonic()
    while session not in {s["session"] for s in _get(f"{base}/sessions")["sessions"]}:
        if time.monotonic() - start > 30 or stopping():
            print("demo: the service did not attach to the replay's streams", file=sys.stderr)
            return 1
        await asyncio.sleep(0.2)
    ws_url = base.replace("http", "ws", 1) + f"/ws/sessions/{session}"
    last_print: dict[str, float] = {}
    last_score = time.monotonic()
    async with websockets.connect(ws_url) as ws:
        while not stopping():
            if args.seconds is not None and time.monotonic() - start >= args.seconds:
                break
            if any(p.poll() is not None for p in procs):
                print("demo: a child process ended unexpectedly", file=sys.stderr)
                return 1
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            if msg["type"] == "status":
                print(f"  status: {msg['stream']['type']} {msg['state']} {msg.get('reason', '')}")
            elif msg["type"] == "prediction":
                now = time.monotonic()
                if now - last_print.get(msg["model"], 0.0) >= 1.0:
                    last_print[msg["model"]] = now
                    print(_prediction_line(msg), flush=True)
            if time.monotonic() - last_score >= args.score_every:
                last_score = time.monotonic()
                _print_score(_get(f"{base}/sessions/{session}"))
    _print_score(_get(f"{base}/sessions/{session}"))
    return 0


def _prediction_line(m: dict[str, Any]) -> str:
    truth = m.get("ground_truth")
    t = f"  truth V {truth['valence']:.1f} A {truth['arousal']:.1f}" if truth else ""
    return (
        f"  #{m['seq']:<5} {m['model']:<16} valence {m['valence']:.2f}  arousal "
        f"{m['arousal']:.2f}{t}  latency {m['latency_ms']['total']:.0f} ms"
    )


def _print_score(detail: dict[str, Any]) -> None:
    for model in detail["models"]:
        s = model["online_score"]
        if s.get("windows"):
            print(
                f"  online score {model['model']}: valence {s['valence_accuracy']:.0%}, "
                f"arousal {s['arousal_accuracy']:.0%} over {s['windows']} windows "
                "(vs. the replay's ratings, threshold 5; synthetic data)",
                flush=True,
            )


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError):
            _get(url)
            return True
        time.sleep(0.2)
    return False
