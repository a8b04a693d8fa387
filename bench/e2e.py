"""End-to-end latency and capacity of the real service, with real LSL streams and WebSocket clients.

Sessions are of one kind per sweep (:data:`KIND_MODELS`):

- ``lab``: full DEAP-like sessions (32 EEG + GSR + PPG + RESP + 5 more channels at 128 Hz in five
  streams, markers), served by every loaded model DEAP replays can feed;
- ``wearable``: a wristband per person (EDA 4 Hz + BVP 64 Hz, one channel each, undescribed),
  served by the wearable models ``rtcan1d`` and ``rtcan1d-eda-bvp``.

Three kinds of processes share the machine, as in a real deployment:

- the service: ``python -m affectstream.service serve`` (uvicorn, the default models of
  ``models/zoo``), alone in its process so its CPU time and memory can be read from ``/proc``;
- pushers (:mod:`affectstream.bench.pusher`): lab sessions, each a
  :class:`~affectstream.streaming.replay.deap.DeapReplay` of the DEAP-format subject passed in
  (``affectstream bench`` defaults to a synthetic one), or wearable sessions (synthetic EDA and
  BVP), logging when each push round left their outlets;
- this process: registers each session over REST (``POST /sessions`` with the session's
  ``source_id`` prefix and the kind's models) and reads its WebSocket, stamping each prediction
  with the LSL clock on arrival.

Sessions are added level by level (e.g. 1, then up to 8, 16, 32 …; earlier sessions keep
running). At each level, once every session has received a prediction from every model, the
service is measured for ``seconds``: each prediction's **end-to-end latency** is its arrival time
minus the moment the push round that completed the window left the pusher (the first round after
which every stream of the session holds data up to ``window.end``: the newest sample's timestamp
plus one sample interval reaches it, the service's watermark) — both on the LSL clock, which is
the same monotonic clock in every process of one machine. Per level: latency percentiles, the
service's own ``latency_ms`` stages, windows coalesced (from ``GET /sessions``),
WebSocket messages dropped, predictions received vs expected (4 windows per second per model and
session), CPU (service, pushers, this process, whole machine), the service process' CPU by
thread role in ms per session-second (``service_threads_cpu_ms_per_session_second``: inference,
scheduler, acquisition, discovery with liblsl's receiving threads, event loop, other — from
``/proc``, by the names the threads give themselves at the OS level, :data:`THREAD_ROLES`) and
the service's memory.

A level **holds** when p99 ≤ ``budget_ms``, no window was coalesced or skipped, no message was
dropped and at least 95 % of the expected predictions arrived. ``capacity_sessions`` is the largest
level such that it and every smaller level held (a lower bound when the largest level held). The
service is started with ``max_sessions`` at least the largest level (its default, 32, would refuse
the sessions beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectstream.bench.machine import cpu_seconds, thread_cpu, tree_cpu_seconds

__all__ = [
    "BUDGET_MS",
    "KIND_MODELS",
    "ServiceProcess",
    "follow",
    "free_port",
    "kind_models",
    "percentiles",
    "push_time",
    "replay_models_when_ready",
    "run_e2e",
    "start_service",
]

BUDGET_MS = 250.0
HOP_S = 0.25  # the shipped models' hop: 4 windows per second per model
KIND_MODELS: dict[str, tuple[str, ...] | None] = {
    "lab": None,  # every loaded model a DEAP replay can feed
    "wearable": ("rtcan1d", "rtcan1d-eda-bvp"),
}
"""Session kind → the models its sessions ask for (``None``: every model the service loaded that
needs no stimulus)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_now(
    service: subprocess.Popen[bytes], pushers: list[tuple[subprocess.Popen[str], Path]]
) -> dict[str, float]:
    """CPU seconds so far: the service, all pushers, this process."""
    return {
        "service": tree_cpu_seconds(service.pid),  # with its workers, when it has any
        "pushers": sum(cpu_seconds(p.pid) for p, _ in pushers),
        "bench": time.process_time(),
    }


THREAD_ROLES = ("inference", "scheduler", "acquire", "discover", "event loop", "other")
"""How :func:`_threads_cpu` groups the service's threads, by the names they give themselves at
the OS level (:func:`affectstream.streaming.threadname.name_os_thread`). A native thread takes the
name of the thread that started it: ``discover`` also holds liblsl's receiving threads of the
inlets the sessions' discovery opened; ``scheduler`` also holds the inference of a tick with one
model due (run on the scheduler's own thread); the main thread runs the event loop (HTTP,
WebSocket sends)."""


def _threads_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid → (role, CPU seconds so far) for every thread of ``pid`` (:data:`THREAD_ROLES`)."""
    out = {}
    for tid, (name, cpu) in thread_cpu(pid).items():
        role = (
            "event loop"
            if tid == pid
            else next((r for r in THREAD_ROLES[:4] if name.startswith(r)), "other")
        )
        out[tid] = ("other" if name.startswith("acquire-") else role, cpu)  # the watchdog
    return out


def _threads_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds by role between two :func:`_threads_cpu` readings: each thread alive at the
    second one, from the first reading (or from its start, if it started in between)."""
    out = dict.fromkeys(THREAD_ROLES, 0.0)
    for tid, (role, cpu) in after.items():
        out[role] += cpu - (before[tid][1] if tid in before else 0.0)
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return float(sum(v) - idle), float(sum(v))


def _memory_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_mib" if key == "VmRSS" else "peak_rss_mib"] = round(
                int(value.split()[0]) / 1024, 1
            )
    return out


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [50, 95, 99])
    return {
        "n": int(a.size),
        "p50": round(float(q[0]), 2),
        "p95": round(float(q[1]), 2),
        "p99": round(float(q[2]), 2),
        "max": round(float(a.max()), 2),
    }


@dataclass
class _Received:
    session: str
    model: str
    window_end: float
    arrived: float
    stages: dict[str, float]


@dataclass
class ServiceProcess:
    base: str
    messages: list[_Received] = field(default_factory=list)
    first_seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (session, model)
    errors: list[str] = field(default_factory=list)
    dropped: list[tuple[str, float, int]] = field(default_factory=list)  # (session, at, total)

    def dropped_between(self, t_a: float, t_b: float) -> int:
        """Messages the service dropped for our subscribers in [t_a, t_b) (running totals)."""
        before: dict[str, int] = {}
        until: dict[str, int] = {}
        for session, at, total in self.dropped:
            if at < t_a:
                before[session] = max(before.get(session, 0), total)
            if at < t_b:
                until[session] = max(until.get(session, 0), total)
        return sum(v - before.get(k, 0) for k, v in until.items())

    def http(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=90) as r:  # an overloaded service is slow
            raw = r.read()
        return json.loads(raw) if raw else None


async def replay_models_when_ready(
    state: ServiceProcess, service: subprocess.Popen[bytes], log_path: Path
) -> list[str]:
    """Wait (at most 60 s) until the service answers ``/ready``; the models DEAP replays can feed
    (models that need a stimulus, fusion models, are left out). ``RuntimeError`` naming the log
    if the service exits or stays unready."""
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(OSError):
            if await asyncio.to_thread(state.http, "GET", "/ready"):
                break
        if service.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"service did not become ready; see {log_path}")
        await asyncio.sleep(0.2)
    loaded = (await asyncio.to_thread(state.http, "GET", "/models"))["models"]
    return [m["name"] for m in loaded if m["inputs"] and "stimulus_input" not in m]


def kind_models(kind: str, replayable: list[str]) -> list[str]:
    """The models sessions of ``kind`` ask for, given the service's ``replayable`` ones (from
    :func:`replay_models_when_ready`); ``RuntimeError`` if the service lacks one of them."""
    wanted = KIND_MODELS[kind]
    if wanted is None:
        return replayable
    missing = [m for m in wanted if m not in replayable]
    if missing:
        raise RuntimeError(f"the {kind} sessions need models the service did not load: {missing}")
    return list(wanted)


async def follow(
    state: ServiceProcess, ws_url: str, session: str, clock: Callable[[], float]
) -> None:
    from websockets.asyncio.client import connect

    try:
        async with connect(ws_url, max_queue=None) as ws:
            async for raw in ws:
                arrived = clock()
                m = json.loads(raw)
                if "dropped" in m:  # the subscriber's running total, on whatever message is next
                    state.dropped.append((session, arrived, int(m["dropped"])))
                if m.get("type") != "prediction":
                    continue
                state.first_seen.setdefault((session, m["model"]), arrived)
                state.messages.append(
                    _Received(
                        session,
                        m["model"],
                        float(m["window"]["end"]),
                        arrived,
                        m["latency_ms"],
                    )
                )
    except Exception as e:  # the service going away at the end is expected; anything else is kept
        state.errors.append(f"{session}: websocket: {type(e).__name__}: {e}")


def service_env(env: dict[str, str], sessions: int) -> None:
    """Let the service (and its workers) hold ``sessions`` sessions (``max_sessions``, default
    32)."""
    env["AFFECTSTREAM_MAX_SESSIONS"] = str(max(32, sessions))


def start_service(
    port: int, env: dict[str, str], log_path: Path, bus: str | None = None, workers: int = 0
) -> subprocess.Popen[bytes]:
    """``affectstream serve`` on ``port``; with ``bus``, a gateway with ``workers`` local
    workers (``serve --bus URL --workers N``). In a process group of its own, so that
    :func:`reap` can end whatever it leaves (a gateway killed before it stopped its workers
    left them running, and measuring, into the next level's figures)."""
    scale = ["--bus", bus, "--workers", str(workers)] if bus else []
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "affectstream.service",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *scale,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def reap(service: subprocess.Popen[bytes]) -> None:
    """Kill what is left of ``service``'s process group (its local workers) once it ended."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(service.pid, signal.SIGKILL)


def stop_service(service: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGINT (a clean shutdown: its inlets close, its workers stop), killed after ``grace_s``;
    then :func:`reap` whatever of its process group is left."""
    if service.poll() is None:
        service.send_signal(signal.SIGINT)
    try:
        service.wait(grace_s)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()
    reap(service)  # a worker the gateway did not stop in time


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` (from PATH) on a free loopback port, nothing on disk; its URL."""
    import shutil

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("--workers needs redis-server on PATH (Debian package redis-server)")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*argv, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _session_counters(state: ServiceProcess, ours: set[str]) -> dict[str, int] | None:
    """Sums over our sessions' models; ``None`` (error kept) if the service did not answer."""
    total = {"coalesced": 0, "predictions": 0, "skipped_windows": 0}
    try:
        rows = state.http("GET", "/sessions")["sessions"]
    except OSError as e:  # URLError and timeouts: an overloaded service; the level cannot hold
        state.errors.append(f"GET /sessions: {type(e).__name__}: {e}")
        return None
    for s in rows:
        if s["session"] not in ours:
            continue
        for m in s.get("models", []):  # a gateway's session no worker holds yet has none
            total["coalesced"] += int(m["coalesced"])
            total["predictions"] += int(m["predictions"])
            total["skipped_windows"] += sum(int(v) for v in m["skipped_windows"].values())
    return total


def _delta(a: dict[str, int] | None, b: dict[str, int] | None, key: str) -> int | None:
    return None if a is None or b is None else b[key] - a[key]


def _warmed_up(state: ServiceProcess, sessions: list[str], n_models: int) -> bool:
    """Every session has had a prediction from every model."""
    seen: dict[str, set[str]] = defaultdict(set)
    for sid, model in state.first_seen:
        seen[sid].add(model)
    return all(len(seen[sid]) >= n_models for sid in sessions)


def wearable_stream_read(listed: list[dict[str, Any]]) -> dict[str, int]:
    """For each model of ``GET /models`` that reads exactly one of a wearable session's streams
    (:data:`~affectstream.bench.pusher.WEARABLE_STREAMS`), that stream's index, by the model's
    name as the predictions carry it (``name@version``)."""
    from affectstream.bench.pusher import WEARABLE_STREAMS
    from affectstream.streaming.ingest.channels import canonical_type

    out = {}
    for m in listed:
        reads = {canonical_type(t) for t in (*m.get("needs", ()), *m.get("may_use", ()))}
        hit = [j for j, (t, _) in enumerate(WEARABLE_STREAMS) if canonical_type(t) in reads]
        if len(hit) == 1:
            out[f"{m['name']}@{m['version']}"] = hit[0]
    return out


def push_time(
    logs: dict[str, np.ndarray], session: str, window_end: float, stream: int | None = None
) -> float | None:
    """When the push round that completed the window left the pusher: the first round after which
    the session's streams hold data up to ``window_end`` (the logs' first column, see
    :mod:`affectstream.bench.pusher`); with ``stream``, the one stream of the session that the
    model reads (the wearable logs' column ``2 + stream``: a window of an EDA-only model is
    complete with its EDA sample, whatever the pulse stream has reached)."""
    log = logs.get(session)
    if log is None or not len(log):
        return None
    column = 0 if stream is None or log.shape[1] <= 2 + stream else 2 + stream
    j = int(np.searchsorted(log[:, column], window_end - 1e-6, side="left"))
    return float(log[j, 1]) if j < len(log) else None


async def _run(
    levels: Sequence[int],
    seconds: float,
    data: Path,
    workdir: Path,
    log: Callable[[str], None],
    budget_ms: float,
    workers: int = 0,
    kind: str = "lab",
) -> dict[str, Any]:
    from affectstream.bench import pusher
    from affectstream.streaming.lsl.config import use_machine_scope
    from affectstream.streaming.lsl.inlet import local_clock

    env = dict(os.environ)
    use_machine_scope(env)
    use_machine_scope()
    service_env(env, max(levels))
    port = free_port()
    redis_proc, bus = start_redis(workdir) if workers else (None, None)
    service = start_service(port, env, workdir / "service.log", bus, workers)
    state = ServiceProcess(f"http://127.0.0.1:{port}")
    pushers: list[tuple[subprocess.Popen[str], Path]] = []
    tasks: list[asyncio.Task[None]] = []
    rows: list[dict[str, Any]] = []
    prefix = f"bench{os.getpid()}{kind[0]}"
    sessions: list[str] = []
    precision: dict[str, str] = {}  # model → what the service serves it at (GET /models)
    one_stream: dict[str, int] = {}  # wearable model → the one stream it reads, if only one
    try:
        models = kind_models(
            kind, await replay_models_when_ready(state, service, workdir / "service.log")
        )
        log(f"service ready on port {port}; {kind} sessions with models {models}")
        listed = (await asyncio.to_thread(state.http, "GET", "/models"))["models"]
        precision.update({m["name"]: m["precision"] for m in listed if "precision" in m})
        if kind == "wearable":
            one_stream.update(wearable_stream_read(listed))
        for level in levels:
            new = [f"{prefix}-{i:03d}" for i in range(len(sessions), level)]
            if new:
                push_log = workdir / f"push-{level}.npz"
                proc = await asyncio.to_thread(
                    pusher.start, data, new, env=env, log=push_log, kind=kind
                )
                pushers.append((proc, push_log))
            for sid in new:
                body = {"session": sid, "match": {"source_id_prefix": f"{sid}-"}, "models": models}
                try:
                    await asyncio.to_thread(state.http, "POST", "/sessions", body)
                except OSError as e:
                    state.errors.append(f"POST /sessions {sid}: {type(e).__name__}: {e}")
                    continue
                ws_url = f"ws://127.0.0.1:{port}/ws/sessions/{sid}"
                tasks.append(asyncio.create_task(follow(state, ws_url, sid, local_clock)))
            sessions += new
            started = time.monotonic()
            warm_deadline = started + 45 + 0.5 * level
            while not _warmed_up(state, sessions, len(models)):
                if time.monotonic() > warm_deadline:
                    break
                await asyncio.sleep(0.25)
            warm = _warmed_up(state, sessions, len(models))
            await asyncio.sleep(1.0)
            ours = set(sessions)
            c0 = await asyncio.to_thread(_session_counters, state, ours)
            cpu0 = _cpu_now(service, pushers)
            threads0 = _threads_cpu(service.pid)
            busy0, total0 = _machine_busy()
            t_a, w_a = local_clock(), time.monotonic()
            await asyncio.sleep(seconds)
            t_b, w_b = local_clock(), time.monotonic()
            busy1, total1 = _machine_busy()
            cpu1 = _cpu_now(service, pushers)
            threads1 = _threads_cpu(service.pid)
            c1 = await asyncio.to_thread(_session_counters, state, ours)
            span = w_b - w_a
            rows.append(
                {
                    "sessions": level,
                    "t_a": t_a,
                    "t_b": t_b,
                    "seconds": round(span, 2),
                    "warmup_complete": warm,
                    "warmup_s": round(w_a - started, 1),
                    "cpu_cores": {k: round((cpu1[k] - cpu0[k]) / span, 3) for k in cpu0},
                    # the service process' own threads (a gateway's, with workers)
                    "service_threads_cpu_ms_per_session_second": {
                        k: round(v / span / level * 1000, 2)
                        for k, v in _threads_delta(threads0, threads1).items()
                    },
                    "machine_cpu_busy": round((busy1 - busy0) / max(1.0, total1 - total0), 3),
                    "memory": _memory_mib(service.pid),
                    "coalesced": _delta(c0, c1, "coalesced"),
                    "skipped_windows": _delta(c0, c1, "skipped_windows"),
                    "expected_predictions": round(level * len(models) * span / HOP_S),
                }
            )
            log(f"level {level}: measured {span:.1f} s (warm-up {'ok' if warm else 'INCOMPLETE'})")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_service(service)  # its inlets close before the replays' outlets go away
        for p, _ in pushers:  # all told to stop first, then waited for
            assert p.stdin is not None
            p.stdin.close()
        for p, _ in pushers:
            pusher.stop(p)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
    push_logs: dict[str, np.ndarray] = {}
    for _, path in pushers:
        with np.load(path) as z:
            push_logs.update({k: z[k] for k in z.files})
    doc = _summarise(rows, state, push_logs, models, budget_ms, one_stream)
    return {**doc, "model_precision": {m: precision.get(m) for m in models}}


def _summarise(
    rows: list[dict[str, Any]],
    state: ServiceProcess,
    logs: dict[str, np.ndarray],
    models: list[str],
    budget_ms: float,
    one_stream: dict[str, int] | None = None,
) -> dict[str, Any]:
    per_level: dict[str, Any] = {}
    latency: dict[str, Any] = {}
    for row in rows:
        got = [m for m in state.messages if row["t_a"] <= m.arrived < row["t_b"]]
        e2e, unmatched = [], 0
        stages: dict[str, list[float]] = defaultdict(list)
        by_model: dict[str, list[float]] = defaultdict(list)
        for m in got:
            pushed = push_time(logs, m.session, m.window_end, (one_stream or {}).get(m.model))
            if pushed is None:
                unmatched += 1
                continue
            ms = (m.arrived - pushed) * 1e3
            e2e.append(ms)
            by_model[m.model].append(ms)
            for k, v in m.stages.items():
                stages[k].append(float(v))
        dropped = state.dropped_between(row["t_a"], row["t_b"])
        pct = percentiles(e2e)
        holds = (
            pct["p99"] is not None
            and float(pct["p99"]) <= budget_ms
            and row["coalesced"] == 0
            and row["skipped_windows"] == 0
            and dropped == 0
            and len(got) >= 0.95 * row["expected_predictions"]
            and row["warmup_complete"]
        )
        key = str(row["sessions"])
        latency[key] = pct
        per_level[key] = {
            **{k: v for k, v in row.items() if k not in ("t_a", "t_b")},
            "received_predictions": len(got),
            "unmatched": unmatched,
            "dropped_messages": dropped,
            "e2e_ms_by_model": {k: percentiles(v) for k, v in sorted(by_model.items())},
            "service_latency_ms": {k: percentiles(v) for k, v in stages.items()},
            "holds": bool(holds),
        }
    capacity, cap_level = 0, None
    for row in rows:
        if not per_level[str(row["sessions"])]["holds"]:
            break
        capacity, cap_level = row["sessions"], per_level[str(row["sessions"])]
    held_all = bool(rows) and all(per_level[str(r["sessions"])]["holds"] for r in rows)
    first_fail = next(
        (r["sessions"] for r in rows if not per_level[str(r["sessions"])]["holds"]), None
    )
    return {
        "e2e_latency_ms": latency,
        "levels": per_level,
        "capacity_sessions": capacity,
        "capacity": {
            "budget_p99_ms": budget_ms,
            "rule": "p99 <= budget, no window coalesced or skipped, no message dropped, >= 95 % of "
            "expected predictions received, at this level and every smaller one",
            "levels_tried": [r["sessions"] for r in rows],
            "first_failing_level": first_fail,
            "is_lower_bound": held_all,
            "cpu_cores_at_capacity": cap_level["cpu_cores"] if cap_level else None,
            "memory_at_capacity": cap_level["memory"] if cap_level else None,
        },
        "models": models,
        "client_errors": state.errors[:20],
    }


def run_e2e(
    levels: Sequence[int],
    seconds: float,
    data: Path,
    log: Callable[[str], None] = lambda s: None,
    budget_ms: float = BUDGET_MS,
    workers: int = 0,
    kind: str = "lab",
) -> dict[str, Any]:
    """Run the sweep with sessions of ``kind``: lab sessions are looping replays of ``data`` (a
    DEAP-format subject file), wearable ones synthetic wristbands; returns ``e2e_latency_ms``,
        ``capacity_sessions`` and the per-level detail. ``workers`` > 0: the service is a gateway on
    a fresh ``redis-server`` with that many local workers (its CPU
    figure then includes theirs; the session counters come from the workers' snapshots, which
    they refresh every second)."""
    with tempfile.TemporaryDirectory(prefix="affectstream-bench-") as tmp:
        work = Path(tmp)
        out = asyncio.run(
            _run(sorted(set(levels)), seconds, data, work, log, budget_ms, workers, kind)
        )
        service_log = (work / "service.log").read_text(errors="replace").splitlines()
    out["kind"] = kind
    out["service_log_tail"] = service_log[-20:]
    out["method"] = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""
    return out
