"""Ingest cost: CPU time of the acquisition layer per live session (``affectstream bench``, section
``ingest``).

Every session is a looping replay of the DEAP-format subject passed in (by default a synthetic
one: 40 channels at 128 Hz in five LSL streams, EEG 32, GSR 1, PPG 1, RESP 1, AUX 5, plus markers),
published by the benchmark's pusher (:mod:`affectstream.bench.pusher`) in a separate process. This
process holds one :class:`~affectstream.streaming.ingest.session.IngestSession` per session (the
real code path: one shared continuous resolver, one acquisition thread per inlet, ring buffers,
health) and nothing else: no windowing, preprocessing or inference.

Sessions are added level by level (e.g. 1, then up to 4, 16, 32; earlier sessions keep running).
At each level, once every session acquires all five data streams and after a short settle, the
process' own CPU time (user + system, liblsl's threads included) is read over ``seconds`` of
steady state. Per level: CPU as a fraction of one core for the whole process and per session,
CPU milliseconds per session-second, the pushers' CPU, and the data samples received vs expected
(nominal rate × time, so it scatters by a chunk around 1). ``sessions_at_50pct_core_measured`` is
the largest level whose CPU stayed under half a core; ``…_extrapolated`` divides half a core by the
per-session cost at the largest level.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectstream.bench import pusher
from affectstream.bench.machine import cpu_seconds

if TYPE_CHECKING:
    import subprocess

    from affectstream.streaming.ingest.session import IngestSession

__all__ = ["DATA_TYPES", "FULL_LEVELS", "QUICK_LEVELS", "run_ingest"]

FULL_LEVELS = (1, 4, 16, 32)
QUICK_LEVELS = (1, 2)
DATA_TYPES = ("EEG", "GSR", "PPG", "RESP", "AUX")
"""The data streams (markers aside) of a DEAP replay session; a session is up when it has all."""


def _data_acquirers(session: IngestSession) -> list[Any]:
    return [a for a in list(session.acquirers.values()) if not a.is_marker]


def _samples(session: IngestSession) -> int:
    return sum(int(a.health.samples) for a in _data_acquirers(session))


def _rate(session: IngestSession) -> float:
    """Nominal data samples per second of one session (all its data streams)."""
    return sum(float(a.stream.nominal_srate) for a in _data_acquirers(session))


def run_ingest(
    levels: Sequence[int],
    seconds: float,
    data: Path,
    *,
    data_label: str | None = None,
    settle_s: float = 2.0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """The ``ingest`` section: every level of ``levels`` measured for ``seconds``, each session a
    looping replay of ``data`` (a DEAP-format subject file) published by the benchmark's pusher."""
    from affectstream.streaming.lsl.config import use_machine_scope

    env = dict(os.environ)
    use_machine_scope(env)
    use_machine_scope()  # before pylsl is loaded, if it is not yet
    from affectstream.streaming.ingest.session import IngestSession, SessionMatch
    from affectstream.streaming.lsl.inlet import StreamDirectory

    prefix = f"ingest{os.getpid()}x{uuid.uuid4().hex[:6]}"  # no other run sees these streams
    directory = StreamDirectory()
    procs: list[subprocess.Popen[str]] = []
    sessions: list[IngestSession] = []
    rows: list[dict[str, Any]] = []
    try:
        for level in sorted(set(levels)):
            new = [f"{prefix}-{i:03d}" for i in range(len(sessions), level)]
            if new:
                procs.append(pusher.start(data, new, env=env))
            for sid in new:
                session = IngestSession(
                    SessionMatch(source_id_prefix=f"{sid}-"), directory=directory
                )
                sessions.append(session.start())
            deadline = time.monotonic() + 60 + level
            while not all(all(s.by_type(t) for t in DATA_TYPES) for s in sessions):
                if time.monotonic() > deadline:
                    up = sum(all(s.by_type(t) for t in DATA_TYPES) for s in sessions)
                    raise RuntimeError(f"ingest: only {up} of {level} sessions found all streams")
                time.sleep(0.1)
            time.sleep(settle_s)  # connections open, buffers warm
            before = [_samples(s) for s in sessions]
            pushers0 = sum(cpu_seconds(p.pid) for p in procs)
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(seconds)
            cpu1, wall1 = time.process_time(), time.monotonic()
            pushers1 = sum(cpu_seconds(p.pid) for p in procs)
            received = sum(_samples(s) - b for s, b in zip(sessions, before, strict=True))
            wall = wall1 - wall0
            core = (cpu1 - cpu0) / wall
            expected = sum(_rate(s) for s in sessions) * wall
            rows.append(
                {
                    "sessions": level,
                    "seconds": round(wall, 3),
                    "cpu_core_fraction": round(core, 4),
                    "cpu_core_fraction_per_session": round(core / level, 5),
                    "cpu_ms_per_session_second": round(1000 * core / level, 3),
                    "pushers_cpu_core_fraction": round((pushers1 - pushers0) / wall, 4),
                    "samples_received": received,
                    "samples_expected": round(expected),
                    "received_ratio": round(received / expected, 4) if expected else None,
                }
            )
            log(
                f"ingest {level} sessions: {core:.3f} of a core "
                f"({1000 * core / level:.1f} ms per session-second), "
                f"received/expected {rows[-1]['received_ratio']}"
            )
    finally:
        for s in sessions:
            s.close()
        directory.close()
        for p in procs:  # all told to stop first, then waited for
            if p.stdin is not None:
                p.stdin.close()
        for p in procs:
            pusher.stop(p)
    under = [int(r["sessions"]) for r in rows if float(r["cpu_core_fraction"]) < 0.5]
    per = float(rows[-1]["cpu_core_fraction_per_session"]) if rows else 0.0
    return {
        "session": "a looping DEAP-format replay: 40 channels at 128 Hz in 5 streams + markers",
        "data": data_label or str(data),
        "by_sessions": {str(r["sessions"]): r for r in rows},
        "sessions_at_50pct_core_measured": max(under) if under else 0,
        "sessions_at_50pct_core_extrapolated": int(0.5 / per) if per > 0 else None,
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    }
