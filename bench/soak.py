"""Soak: a real ``serve`` process under faulty sessions and WebSocket churn, watched over time.

``affectstream bench --soak MINUTES`` starts, as :mod:`affectstream.bench.e2e` does, the service
(``python -m affectstream.service serve``, the default models) and one pusher process
(:mod:`affectstream.bench.pusher`) replaying ``sessions`` full DEAP-like sessions **with faults**
(``--faults``, the replay's fault injection: dropped and NaN samples, jitter, producer restarts,
stalls; docs/faults.md), registers each session over REST and follows it with one WebSocket client
for the whole run. Meanwhile ``churn_clients`` more clients keep connecting to a random session,
reading for 0.2-3 s and disconnecting (or, one time in four, leaving without reading anything).

Once every session has predicted (warm-up), every ``interval_s`` it samples the service process
from ``/proc``: resident memory (RSS), threads, open file descriptors, CPU; and, over the interval,
the predictions received by the followers and their latency: the service's own ``latency_ms.total``
(last sample → handed to the hub) and, after the run, the end-to-end latency (LSL push of the
window's last sample → WebSocket receipt, from the pusher's push log as in the e2e benchmark).
At the end it reads each session's counters (``GET /sessions``: gaps, non-finite samples,
reconnects, skipped windows …). ``service_alive`` is false if the process ever exited or stopped
answering ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectstream.bench.e2e import (
    ServiceProcess,
    free_port,
    percentiles,
    push_time,
    replay_models_when_ready,
    start_service,
    stop_service,
)
from affectstream.bench.machine import cpu_seconds

__all__ = ["DEFAULT_FAULTS", "process_sample", "run_soak"]

DEFAULT_FAULTS = (
    "drop=0.002,drop-run=50ms,nan=0.002,nan-run=0.2s,jitter=2ms,"
    "restart=45s,restart-down=1s,stall=1s,stall-every=20s"
)
"""The soak's faults: rare holes and NaN runs, timestamp jitter, a producer restart every 45 s and a
1 s stall every 20 s (no clock step: see docs/faults.md for what a forward step does today)."""


def process_sample(pid: int) -> dict[str, float | int]:
    """RSS (MiB), threads and open file descriptors of ``pid`` now (from ``/proc``)."""
    out: dict[str, float | int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss_mib"] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            out["threads"] = int(value)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


@dataclass
class _Soak:
    base: str
    port: int
    sessions: list[str]
    predictions: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (session, arrived on the LSL clock, window end, service latency_ms.total)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)  # (session, stream, state)
    churn_connects: int = 0
    churn_errors: list[str] = field(default_factory=list)
    follower_errors: list[str] = field(default_factory=list)


async def _follow(soak: _Soak, sid: str, clock: Callable[[], float]) -> None:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{soak.port}/ws/sessions/{sid}"
    while True:  # reconnect if the connection breaks: the soak goes on
        try:
            async with connect(url, max_queue=None) as ws:
                async for raw in ws:
                    arrived = clock()
                    m = json.loads(raw)
                    if m.get("type") == "prediction":
                        total = float(m["latency_ms"]["total"])
                        soak.predictions.append((sid, arrived, float(m["window"]["end"]), total))
                    elif m.get("type") == "status":
                        soak.statuses.append((sid, str(m["stream"]["type"]), str(m["state"])))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            soak.follower_errors.append(f"{sid}: {type(e).__name__}: {e}")
            await asyncio.sleep(1.0)


async def _churn(soak: _Soak, rng: random.Random) -> None:
    from websockets.asyncio.client import connect

    while True:
        sid = rng.choice(soak.sessions)
        try:
            async with connect(f"ws://127.0.0.1:{soak.port}/ws/sessions/{sid}") as ws:
                soak.churn_connects += 1
                if rng.random() < 0.75:  # read a while; else leave without reading
                    deadline = time.monotonic() + rng.uniform(0.2, 3.0)
                    with contextlib.suppress(TimeoutError):
                        while (left := deadline - time.monotonic()) > 0:
                            await asyncio.wait_for(ws.recv(), left)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            soak.churn_errors.append(f"{sid}: {type(e).__name__}: {e}")
        await asyncio.sleep(rng.uniform(0.0, 0.5))


async def _run(
    minutes: float,
    data: Path,
    workdir: Path,
    *,
    sessions: int,
    faults: str,
    interval_s: float,
    churn_clients: int,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from affectstream.bench import pusher
    from affectstream.streaming.lsl.config import use_machine_scope
    from affectstream.streaming.lsl.inlet import local_clock

    env = dict(os.environ)
    use_machine_scope(env)
    use_machine_scope()
    port = free_port()
    service = start_service(port, env, workdir / "service.log")
    state = ServiceProcess(f"http://127.0.0.1:{port}")
    names = [f"soak{os.getpid()}-{i:02d}" for i in range(sessions)]
    soak = _Soak(state.base, port, names)
    push_log = workdir / "push.npz"
    proc: subprocess.Popen[str] | None = None
    tasks: list[asyncio.Task[None]] = []
    samples: list[dict[str, Any]] = []
    alive = True
    death: str | None = None
    counters: list[dict[str, Any]] = []
    models: list[str] = []
    try:
        models = await replay_models_when_ready(state, service, workdir / "service.log")
        proc = await asyncio.to_thread(
            pusher.start, data, names, env=env, log=push_log, faults=faults, faults_seed=seed
        )
        for sid in names:
            body = {"session": sid, "match": {"source_id_prefix": f"{sid}-"}, "models": models}
            await asyncio.to_thread(state.http, "POST", "/sessions", body)
            tasks.append(asyncio.create_task(_follow(soak, sid, local_clock)))
        log(f"soak: {sessions} sessions with faults {faults}; models {models}")
        warm_deadline = time.monotonic() + 60
        while {p[0] for p in soak.predictions} != set(names):
            if time.monotonic() > warm_deadline:
                raise RuntimeError("no prediction from every session within 60 s of warm-up")
            await asyncio.sleep(0.25)
        rng = random.Random(seed)
        tasks += [asyncio.create_task(_churn(soak, rng)) for _ in range(churn_clients)]
        log(f"soak: warmed up; sampling every {interval_s:g} s for {minutes:g} min")
        started_wall = time.monotonic()
        end = started_wall + minutes * 60
        t_prev = local_clock()
        cpu_prev = cpu_seconds(service.pid)
        while True:
            now_wall = time.monotonic()
            if service.poll() is not None:
                alive, death = False, f"service exited with {service.returncode}"
                break
            row: dict[str, Any] = {"t_s": round(now_wall - started_wall, 1)}
            row.update(process_sample(service.pid))
            t_now = local_clock()
            cpu_now = cpu_seconds(service.pid)
            row["cpu_cores"] = round((cpu_now - cpu_prev) / max(1e-3, t_now - t_prev), 3)
            got = [p for p in soak.predictions if t_prev <= p[1] < t_now]
            row["predictions"] = len(got)
            row["latency_ms"] = percentiles([p[3] for p in got])
            row["t_a"], row["t_b"] = t_prev, t_now
            row["churn_connects"] = soak.churn_connects
            try:
                health = await asyncio.to_thread(state.http, "GET", "/health")
                row["health"] = health.get("status")
            except OSError as e:
                row["health"] = f"{type(e).__name__}: {e}"
            samples.append(row)
            if row["health"] != "ok":
                alive, death = False, f"/health at {row['t_s']} s: {row['health']}"
            t_prev, cpu_prev = t_now, cpu_now
            if now_wall >= end:
                break
            log(
                f"soak {row['t_s']:6.1f} s: RSS {row['rss_mib']} MiB, {row['threads']} threads, "
                f"{row['fds']} fds, {row['predictions']} predictions, "
                f"latency p99 {row['latency_ms']['p99']} ms"
            )
            await asyncio.sleep(max(0.0, min(interval_s, end - time.monotonic())))
        with contextlib.suppress(OSError):
            counters = (await asyncio.to_thread(state.http, "GET", "/sessions"))["sessions"]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_service(service)
        if proc is not None:
            pusher.stop(proc)
    push_logs: dict[str, np.ndarray] = {}
    if push_log.exists():
        with np.load(push_log) as z:
            push_logs = {k: z[k] for k in z.files}
    e2e_all: list[float] = []
    for row in samples:  # end-to-end latency per interval, now that the push logs are in
        t_a, t_b = row.pop("t_a"), row.pop("t_b")
        e2e: list[float] = []
        for sid, arrived, window_end, _ in soak.predictions:
            if t_a <= arrived < t_b:
                pushed = push_time(push_logs, sid, window_end)
                if pushed is not None:
                    e2e.append((arrived - pushed) * 1e3)
        row["e2e_ms"] = percentiles(e2e)
        e2e_all += e2e
    service_log = (workdir / "service.log").read_text(errors="replace").splitlines()
    return _summary(
        samples, soak, counters, alive, death, models, faults, interval_s, service_log, e2e_all
    )


def _summary(
    samples: list[dict[str, Any]],
    soak: _Soak,
    counters: list[dict[str, Any]],
    alive: bool,
    death: str | None,
    models: list[str],
    faults: str,
    interval_s: float,
    service_log: list[str],
    e2e_all: list[float],
) -> dict[str, Any]:
    ours = [s for s in counters if s["session"] in soak.sessions]
    per_session = {
        s["session"]: {
            "streams": {
                str(st["type"]): {
                    k: st.get(k)
                    for k in ("state", "samples", "gaps", "nonfinite", "backwards", "reconnects")
                }
                for st in s["streams"]
            },
            "models": {
                m["model"]: {
                    "predictions": m["predictions"],
                    "coalesced": m["coalesced"],
                    "skipped_windows": m["skipped_windows"],
                }
                for m in s["models"]
            },
        }
        for s in ours
    }
    first, last = (samples[0], samples[-1]) if samples else ({}, {})
    growth = {
        k: (None if k not in first else round(float(last[k]) - float(first[k]), 1))
        for k in ("rss_mib", "threads", "fds")
    }
    states: dict[str, int] = {}
    for _, _, st in soak.statuses:
        states[st] = states.get(st, 0) + 1
    return {
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "sessions": len(soak.sessions),
        "models": models,
        "faults": faults,
        "interval_s": interval_s,
        "minutes": round(float(last.get("t_s", 0.0)) / 60, 2),
        "service_alive": alive,
        "service_death": death,
        "samples": samples,
        "start": {k: first.get(k) for k in ("rss_mib", "threads", "fds")},
        "end": {k: last.get(k) for k in ("rss_mib", "threads", "fds")},
        "growth": growth,
        "predictions": len(soak.predictions),
        "latency_ms": percentiles([p[3] for p in soak.predictions]),
        "e2e_ms": percentiles(e2e_all),
        "status_messages": states,
        "churn_connects": soak.churn_connects,
        "churn_errors": soak.churn_errors[:20],
        "n_churn_errors": len(soak.churn_errors),
        "follower_errors": soak.follower_errors[:20],
        "session_counters": per_session,
        "service_log_tail": service_log[-20:],
    }


def run_soak(
    minutes: float,
    data: Path,
    *,
    sessions: int = 2,
    faults: str = DEFAULT_FAULTS,
    interval_s: float = 5.0,
    churn_clients: int = 4,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Run the soak for ``minutes`` (after warm-up) with every session a looping replay of
    ``data`` (a DEAP-format subject) with ``faults``; returns the ``soak`` document section."""
    with tempfile.TemporaryDirectory(prefix="affectstream-soak-") as tmp:
        return asyncio.run(
            _run(
                minutes,
                data,
                Path(tmp),
                sessions=sessions,
                faults=faults,
                interval_s=interval_s,
                churn_clients=churn_clients,
                seed=seed,
                log=log,
            )
        )
