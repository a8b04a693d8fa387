"""Benchmark pusher process: replay one DEAP-format file as several live sessions.

``python -m affectstream.bench.pusher --file sNN.dat [--log OUT.npz] SESSION [SESSION …]`` opens one
:class:`~affectstream.streaming.replay.deap.DeapReplay` per session name (looping over the file's
trials, real time, the replay's own push loop in one thread each), prints ``ready`` once every
outlet exists, and plays until its standard input closes. Each session name is the ``source_id``
prefix of its streams (``<SESSION>-EEG``, ``<SESSION>-GSR`` …), which is how a consumer selects
one session (``SessionMatch(source_id_prefix="<SESSION>-")``).

With ``--faults SPEC`` (and ``--faults-seed N``) every session's replay injects those faults
(:mod:`affectstream.streaming.replay.faults`; session *i* uses seed N + i), as the soak does.

With ``--log`` it then writes, per session, the replay's push log: for every push round, the LSL
timestamp of the round's last sample and the LSL clock when every outlet of the session had it
(``DeapReplay.on_chunk``), as an ``(n, 2)`` array in ``OUT.npz``.

Every section of ``affectstream bench`` that needs live sessions runs it through :func:`start`
and :func:`stop`, as a separate process, as a real acquisition program would be.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "start", "stop"]


def start(
    data: Path,
    sessions: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    faults: str | None = None,
    faults_seed: int = 0,
) -> subprocess.Popen[str]:
    """Start a pusher replaying ``data`` as ``sessions``; returns once every outlet exists.

    ``env`` is the child's environment (default this process' one: pass one with the LSL
    configuration the consumer uses); ``log``, where the push log goes when the pusher stops.
    """
    argv = [sys.executable, "-m", "affectstream.bench.pusher", "--file", str(data)]
    if log is not None:
        argv += ["--log", str(log)]
    if faults:
        argv += ["--faults", faults, "--faults-seed", str(faults_seed)]
    p = subprocess.Popen(
        [*argv, *sessions],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ) if env is None else env,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != "ready":
        if p.poll() is None:
            p.kill()
        p.wait()
        raise RuntimeError(f"pusher did not start (exit {p.returncode}): {line!r}")
    return p


def stop(p: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Close the pusher's standard input (it stops, writes its log, exits); kill it if it hangs."""
    if p.stdin is not None and not p.stdin.closed:
        p.stdin.close()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _recorder(log: list[tuple[float, float]]) -> Callable[[float, float], None]:
    def record(last_ts: float, pushed_at: float) -> None:
        log.append((last_ts, pushed_at))

    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, required=True, help="a DEAP-format subject (sNN.dat)")
    ap.add_argument("--log", type=Path, default=None, help="write the push logs here (.npz)")
    ap.add_argument("--faults", default=None, help="fault spec for every replay (docs/faults.md)")
    ap.add_argument("--faults-seed", type=int, default=0, help="seed of session 1's faults")
    ap.add_argument("sessions", nargs="+", help="session names (source_id prefixes)")
    args = ap.parse_args(argv)

    import numpy as np

    from affectstream.streaming.formats.deap import read_deap
    from affectstream.streaming.lsl.config import use_machine_scope

    use_machine_scope()
    from affectstream.streaming.replay.deap import DeapReplay
    from affectstream.streaming.replay.faults import parse_faults

    spec = parse_faults(args.faults)
    subject = read_deap(args.file)
    trials = list(range(1, subject.n_trials + 1))
    logs: dict[str, list[tuple[float, float]]] = {s: [] for s in args.sessions}
    replays = [
        DeapReplay(
            subject,
            trials,
            loop=True,
            session=s,
            on_chunk=_recorder(logs[s]) if args.log is not None else None,
        )
        for s in args.sessions
    ]
    for i, r in enumerate(replays):
        if spec.active:
            r.faults, r.faults_seed = spec, args.faults_seed + i
        r.open()
    stop_event = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop_event,), daemon=True) for r in replays]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our standard input
    stop_event.set()
    for t in threads:
        t.join(5)
    if args.log is not None:
        arrays: dict[str, Any] = {
            s: np.asarray(v, dtype=np.float64).reshape(-1, 2) for s, v in logs.items()
        }
        np.savez(args.log, **arrays)
    for r in replays:
        r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
