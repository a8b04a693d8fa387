"""Benchmark pusher process: several live sessions of one kind, lab or wearable.

``python -m affectstream.bench.pusher --file sNN.dat [--log OUT.npz] SESSION [SESSION …]`` (the
**lab** kind) opens one :class:`~affectstream.streaming.replay.deap.DeapReplay` per session name
(looping over the file's trials, real time, the replay's own push loop in one thread each), prints
``ready`` once every outlet exists, and plays until its standard input closes. Each session name is
the ``source_id`` prefix of its streams (``<SESSION>-EEG``, ``<SESSION>-GSR`` …), which is how a
consumer selects one session (``SessionMatch(source_id_prefix="<SESSION>-")``).

``--kind wearable`` (no ``--file``) publishes instead, per session, what a wristband
(Empatica-like) sends: ``<SESSION>-EDA``, type ``EDA``, 1 channel at 4 Hz, and ``<SESSION>-BVP``,
type ``BVP``, 1 channel at 64 Hz, with no channel label and no unit (the service labels a
one-channel stream by its type, maps EDA → GSR and BVP → PPG, assumes µS and resamples). The
values are synthetic functions of the LSL time of each sample (:func:`skin_conductance_us`,
:func:`bvp`), each session with its own phase; samples are stamped on the grid ``k / rate`` of
the LSL clock and pushed when their time has come, by one thread for every session of the
process (rounds every 1/32 s: BVP in chunks of two, EDA one sample every eighth round).

With ``--faults SPEC`` (and ``--faults-seed N``) every session's replay injects those faults
(:mod:`affectstream.streaming.replay.faults`; session *i* uses seed N + i), as the soak does.

With ``--log`` it then writes, per session, the push log: for every push round, the LSL time up
to which every data stream of the session is complete after the round (the newest sample's
timestamp plus one sample interval, the least over the session's streams: the service's
watermark) and the LSL clock when every outlet of the session had it (``DeapReplay.on_chunk`` for
the lab kind), as an ``(n, 2)`` array in ``OUT.npz``.

Every section of ``affectstream bench`` that needs live sessions runs it through :func:`start`
and :func:`stop`, as a separate process, as a real acquisition program would be.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["KINDS", "WEARABLE_STREAMS", "bvp", "main", "skin_conductance_us", "start", "stop"]

KINDS = ("lab", "wearable")
WEARABLE_STREAMS = (("EDA", 4.0), ("BVP", 64.0))
"""A wearable session's streams: (LSL type, nominal rate in Hz)."""
ROUND_S = 1 / 32

FloatArray = NDArray[np.float64]


def start(
    data: Path | None,
    sessions: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    faults: str | None = None,
    faults_seed: int = 0,
    kind: str = "lab",
) -> subprocess.Popen[str]:
    """Start a pusher publishing ``sessions`` of ``kind`` (lab: replays of ``data``; wearable:
    synthetic EDA + BVP, ``data`` unused); returns once every outlet exists.

    ``env`` is the child's environment (default this process' one: pass one with the LSL
    configuration the consumer uses); ``log``, where the push log goes when the pusher stops.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    argv = [sys.executable, "-m", "affectstream.bench.pusher", "--kind", kind]
    if kind == "lab":
        if data is None:
            raise ValueError("the lab kind replays a DEAP-format file: give data")
        argv += ["--file", str(data)]
    elif faults:
        raise ValueError("faults are injected by the lab kind's replays only")
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


def _recorder(log: list[tuple[float, ...]], interval: float) -> Callable[[float, float], None]:
    def record(last_ts: float, pushed_at: float) -> None:
        log.append((last_ts + interval, pushed_at))

    return record


# -- the wearable kind ------------------------------------------------------------------------


def skin_conductance_us(t: FloatArray, phase_s: float = 0.0) -> FloatArray:
    """Skin conductance in µS at LSL times ``t``: a tonic level of 4.5 µS drifting ±0.3 µS over
    40 s, plus a skin-conductance response (0.4 µS, rise ~0.75 s, recovery ~2 s) every 7 s."""
    u = t + phase_s
    tonic = 4.5 + 0.3 * np.sin(2 * np.pi * u / 40.0)
    phasic = np.zeros_like(u)
    for back in (0, 1, 2):  # the latest responses overlap
        dt = u - (np.floor(u / 7.0) - back) * 7.0
        phasic += 0.4 * (1 - np.exp(-dt / 0.75)) * np.exp(-dt / 2.0)
    out: FloatArray = tonic + phasic
    return out


def bvp(t: FloatArray, phase_s: float = 0.0) -> FloatArray:
    """Blood volume pulse at LSL times ``t`` (arbitrary units, as a wristband's): 72 beats/min, a
    systolic peak and a dicrotic notch (two harmonics)."""
    phase = 2 * np.pi * 1.2 * (t + phase_s)
    out: FloatArray = 30.0 * np.sin(phase) + 12.0 * np.sin(2 * phase + 0.8)
    return out


def _wearable(args: argparse.Namespace) -> int:
    """Publish the wearable sessions until standard input closes (see the module docstring)."""
    from affectstream.streaming.lsl.inlet import local_clock
    from affectstream.streaming.lsl.outlet import ChannelDesc, OutletSpec, open_outlet

    signals = {"EDA": skin_conductance_us, "BVP": bvp}
    outlets: list[list[Any]] = []
    for s in args.sessions:
        desc = {"session": s, "manufacturer": "affectstream bench (synthetic wristband)"}
        outlets.append(
            [
                open_outlet(
                    OutletSpec(
                        name=f"{s} {kind}",
                        type=kind,
                        source_id=f"{s}-{kind}",
                        srate=rate,
                        fmt="float32",
                        # no label, no unit: as a wristband that describes nothing
                        channels=(ChannelDesc("", "", ""),),
                        desc=desc,
                    )
                )
                for kind, rate in WEARABLE_STREAMS
            ]
        )
    phases = [7.0 * i / max(1, len(args.sessions)) for i in range(len(args.sessions))]
    logs: dict[str, list[tuple[float, ...]]] = {s: [] for s in args.sessions}
    stop_event = threading.Event()
    first = [math.floor(local_clock() * rate) for _, rate in WEARABLE_STREAMS]

    def run() -> None:
        newest = [k - 1 for k in first]  # the newest sample pushed, per stream (k / rate)
        while not stop_event.wait(ROUND_S - (local_clock() % ROUND_S)):
            now = local_clock()
            due = [math.floor(now * rate) for _, rate in WEARABLE_STREAMS]
            for i, s in enumerate(args.sessions):
                for j, (kind, rate) in enumerate(WEARABLE_STREAMS):
                    if due[j] <= newest[j]:
                        continue
                    t = np.arange(newest[j] + 1, due[j] + 1) / rate
                    x = signals[kind](t, phases[i]).astype(np.float32)[:, None]
                    outlets[i][j].push_chunk(x, float(t[-1]))  # stamps the chunk's last sample
                if args.log is not None:  # every stream, then each (a model may read one)
                    each = [
                        (max(n, d) + 1) / rate
                        for n, d, (_, rate) in zip(newest, due, WEARABLE_STREAMS, strict=True)
                    ]
                    logs[s].append((min(each), local_clock(), *each))
            newest = [max(n, d) for n, d in zip(newest, due, strict=True)]

    thread = threading.Thread(target=run, name="wearable-pusher", daemon=True)
    thread.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our standard input
    stop_event.set()
    thread.join(5)
    _write_log(args.log, logs)
    outlets.clear()
    return 0


def _write_log(path: Path | None, logs: dict[str, list[tuple[float, ...]]]) -> None:
    if path is not None:
        arrays: dict[str, Any] = {
            s: np.asarray(v, dtype=np.float64).reshape(-1, len(v[0]) if v else 2)
            for s, v in logs.items()
        }
        np.savez(path, **arrays)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, default="lab", help="the sessions' kind (default lab)")
    ap.add_argument("--file", type=Path, default=None, help="lab: a DEAP-format subject (sNN.dat)")
    ap.add_argument("--log", type=Path, default=None, help="write the push logs here (.npz)")
    ap.add_argument("--faults", default=None, help="fault spec for every replay (docs/faults.md)")
    ap.add_argument("--faults-seed", type=int, default=0, help="seed of session 1's faults")
    ap.add_argument("sessions", nargs="+", help="session names (source_id prefixes)")
    args = ap.parse_args(argv)

    from affectstream.streaming.lsl.config import use_machine_scope

    use_machine_scope()
    if args.kind == "wearable":
        return _wearable(args)
    if args.file is None:
        ap.error("the lab kind needs --file")

    from affectstream.streaming.formats.deap import SFREQ, read_deap
    from affectstream.streaming.replay.deap import DeapReplay
    from affectstream.streaming.replay.faults import parse_faults

    spec = parse_faults(args.faults)
    subject = read_deap(args.file)
    trials = list(range(1, subject.n_trials + 1))
    logs: dict[str, list[tuple[float, ...]]] = {s: [] for s in args.sessions}
    replays = [
        DeapReplay(
            subject,
            trials,
            loop=True,
            session=s,
            on_chunk=_recorder(logs[s], 1.0 / SFREQ) if args.log is not None else None,
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
    _write_log(args.log, logs)
    for r in replays:
        r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
