"""Benchmark pusher process: replay one DEAP-format file as several live sessions, logging pushes.

``python -m affectstream.bench.pusher --file sNN.dat --log OUT.npz SESSION [SESSION …]`` opens one
:class:`~affectstream.streaming.replay.deap.DeapReplay` per session name (looping over the file's
trials, real time, the replay's own push loop in one thread each), prints ``ready`` once every
outlet exists, and plays until its standard input closes. Then it writes, per session, the replay's
push log: for every push round, the LSL timestamp of the round's last sample and the LSL clock when
every outlet of the session had it (``DeapReplay.on_chunk``), as an ``(n, 2)`` array in ``OUT.npz``.

The benchmark runs it as a separate process, as a real acquisition program would be.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _recorder(log: list[tuple[float, float]]) -> Callable[[float, float], None]:
    def record(last_ts: float, pushed_at: float) -> None:
        log.append((last_ts, pushed_at))

    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("sessions", nargs="+")
    args = ap.parse_args(argv)

    from affectstream.streaming.formats.deap import read_deap
    from affectstream.streaming.lsl.config import use_machine_scope

    use_machine_scope()
    from affectstream.streaming.replay.deap import DeapReplay

    subject = read_deap(args.file)
    trials = list(range(1, subject.n_trials + 1))
    logs: dict[str, list[tuple[float, float]]] = {s: [] for s in args.sessions}
    replays = [
        DeapReplay(subject, trials, loop=True, session=s, on_chunk=_recorder(logs[s]))
        for s in args.sessions
    ]
    for r in replays:
        r.open()
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in replays]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our standard input
    stop.set()
    for t in threads:
        t.join(5)
    arrays: dict[str, Any] = {
        s: np.asarray(v, dtype=np.float64).reshape(-1, 2) for s, v in logs.items()
    }
    np.savez(args.log, **arrays)
    for r in replays:
        r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
