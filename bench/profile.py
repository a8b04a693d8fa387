"""Where the service's CPU goes, by stage (``affectstream bench``, section ``profile``).

For each session kind (lab, wearable; :mod:`affectstream.bench.e2e`), a real ``serve`` process
serves ``sessions`` live sessions of that kind (published by the benchmark's pusher, read over
WebSocket as in the e2e section). Once every model of every session has predicted (warm-up: the
wearable models' windows are 20 s long) and after a short settle, **py-spy** (a sampling profiler
that reads the interpreter's memory from outside, so it sees every Python thread: the LSL
acquisition threads, the scheduler, the event loop) records the service for ``seconds``:
``py-spy record --pid PID --duration SECONDS --rate RATE --format raw --threads
--full-filenames --nonblocking``. It is attached to the running service rather than started as
its parent: its raw output carries no timestamps, so a profile started with the process would
mix start-up (imports, model loading, numba) and the sessions' warm-up into the steady state;
pausing it (SIGSTOP) until the steady state makes it catch up afterwards in a burst of samples
(tried: 3 s paused gave 3 s of extra samples taken at once). py-spy counts only samples of
threads that are running (idle threads, e.g. waiting on a lock, a queue, ``select``, are left
out), which is what makes its samples a CPU measure.

Every sample is put in exactly one stage by :func:`classify` (the rule is there, in order),
except samples caught in a wait (:data:`WAITS`), counted apart.
A stage's cost is reported in **milliseconds of CPU per session-second**: its share of the staged
samples × the CPU time ``/proc`` counted for the threads py-spy sampled over the recording /
sessions / duration (``cpu_ms_per_session_second``). The raw estimate, samples × the sampling
period (the recording's duration / the sampling rounds py-spy reports) / sessions / duration, is
kept beside it (``samples_x_period_ms_per_session_second``): on an idle machine both agree, on a
loaded one the raw estimate overstates (py-spy sees a thread that waits for a core as running,
and falls behind its rate). Samples in numba's compiler (the compiled cvxEDA being built, once)
are counted apart (``jit_compile_samples``) and their share taken out of the CPU. The ``inference``
stage is split per model by each model's share of the service's
own inference time over the same span (the ``latency_ms.inference`` of its batched runs, from
the predictions received; with one session each prediction is one run).

Checks beside the stages, from ``/proc`` over the same span: the CPU of the whole service
process, of the threads py-spy sampled (their sampled CPU should be close to it; a thread that
is runnable but waiting for a core counts as running for py-spy, so on a loaded machine the
samples can exceed it), and of the threads py-spy cannot see — native threads with no Python
frame: liblsl's I/O threads, ONNX Runtime's intra-op pool — by thread name. The machine's load
during the recording is kept (load average, the CPU all processes used, and what processes other
than the service, the pushers, this process and py-spy used): figures from a loaded machine are
said to be so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "STAGES",
    "Sample",
    "classify",
    "parse_raw",
    "run_profile",
    "stage_table",
]

STAGES: dict[str, str] = {
    "acquisition": "acquisition (LSL pulls, dejitter, ring buffers, health)",
    "windowing": "windowing (due windows, extraction, feeding)",
    "preprocess_filters": "preprocessing: filters",
    "preprocess_eeg": "preprocessing: EEG DE features and grid (montage)",
    "preprocess_eda": "preprocessing: EDA online cvxEDA",
    "preprocess_resample": "preprocessing: resampling",
    "preprocess_other": "preprocessing: other (pipeline, peripheral, normalisation)",
    "inference": "inference (ONNX Runtime, batched per model)",
    "messages": "message building (prediction, quality, ground truth, hub)",
    "json": "JSON encoding",
    "websocket": "WebSocket sends (and reads)",
    "other": "other (event loop, scheduler loop, HTTP, threads)",
}
"""Stage key → what it holds, in the order of the pipeline (the JSON and the table use it)."""

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>.*))?$")
_SUMMARY = re.compile(r"Samples: (?P<samples>\d+) Errors: (?P<errors>\d+)")


@dataclass(frozen=True)
class Sample:
    """One collapsed stack of py-spy's raw output: its thread, its frames (outermost first, each
    ``(function, file)``) and how many samples had it."""

    tid: int | None
    thread: str
    frames: tuple[tuple[str, str], ...]
    count: int


def parse_raw(text: str) -> list[Sample]:
    """py-spy's ``--format raw --threads`` output: ``thread (TID): NAME;func (file:line);… N``."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        parts = m["stack"].split(";")
        tid, thread = None, ""
        t = _THREAD.match(parts[0])
        if t:
            tid, thread = int(t["tid"]), t["name"] or ""
            parts = parts[1:]
        frames = []
        for p in parts:
            f = _FRAME.match(p)
            frames.append((f["func"], f["file"]) if f else (p, ""))
        out.append(Sample(tid, thread, tuple(frames), int(m["count"])))
    return out


def _pkg(file: str, *parts: str) -> bool:
    """``file`` lies in the project's ``folder/…`` (e.g. ``streaming/ingest/``) or a library."""
    return any(p in file for p in parts)


_PREPROCESS = (
    (("/streaming/preprocess/cvxeda/", "/streaming/preprocess/eda.py"), "preprocess_eda"),
    (("/streaming/preprocess/eeg.py", "/streaming/preprocess/montage.py"), "preprocess_eeg"),
    (("/streaming/preprocess/resample.py",), "preprocess_resample"),
    (("/streaming/preprocess/filters.py",), "preprocess_filters"),
    (("/streaming/ingest/windows.py",), "windowing"),
)


def classify(frames: Sequence[tuple[str, str]]) -> str:
    """The stage of one sample's stack (frames outermost first, ``(function, file)`` with full
    file names). The first rule that matches decides:

    1. ``json``: a frame of the standard library's JSON encoder (``json/encoder.py``, ``dumps`` in
       ``json/__init__.py``) or of ``orjson`` — encoding a message, wherever it is called from
       (Starlette's ``send_json``, the hub);
    2. ``websocket``: a frame of ``service/api/ws.py``, ``starlette/websockets.py``, uvicorn's
       WebSocket protocols or the ``websockets`` library (sending, and reading the clients'
       frames);
    3. ``inference``: ``models/runner.py`` or ``onnxruntime`` (the batched run and its input
       assembly);
    4. ``messages``: ``service/messages.py``, ``service/hub.py``, pydantic, or anything under the
       scheduler's ``_emit`` (quality, ground truth, the prediction's model);
    5. preprocessing and windowing: the **innermost** frame of ``streaming/preprocess/…`` or
       ``streaming/ingest/windows.py`` decides — ``cvxeda/`` and ``eda.py`` → EDA, ``eeg.py`` and
       ``montage.py`` → EEG, ``resample.py`` → resampling, ``filters.py`` → filters,
       ``windows.py`` and ``WindowFeeder`` (``pipeline.py``) → windowing, any other
       ``streaming/preprocess/`` frame (the pipeline's states, ``peripheral.py``, ``spec.py``) →
       other preprocessing; so a ring-buffer read done by the windower is windowing, and a filter
       run inside the EDA feature is filters;
    6. ``acquisition``: ``streaming/ingest/`` (acquisition threads, dejitter, ring buffers, health,
       channel plans, the session's stream resolution), ``streaming/lsl/`` or ``pylsl``;
    7. ``other``: the rest (the event loop's own work, the scheduler's loop and session
       bookkeeping, HTTP requests, thread start-up, garbage collection).
    """
    files = [f for _, f in frames]
    funcs = [fn for fn, _ in frames]
    for fn, f in frames:
        if f.endswith("/json/encoder.py") or "orjson" in f or "orjson" in fn:
            return "json"
        if fn == "dumps" and f.endswith("/json/__init__.py"):
            return "json"
    websocket = (
        "/service/api/ws.py",
        "/starlette/websockets.py",
        "/uvicorn/protocols/websockets/",
        "/site-packages/websockets/",
    )
    if any(_pkg(f, *websocket) for f in files):
        return "websocket"
    if any(_pkg(f, "/models/runner.py", "/onnxruntime/") for f in files):
        return "inference"
    if any(_pkg(f, "/service/messages.py", "/service/hub.py", "/pydantic") for f in files) or any(
        fn.endswith("_emit") and f.endswith("/service/scheduler.py")
        for fn, f in zip(funcs, files, strict=True)
    ):
        return "messages"
    for fn, f in reversed(frames):
        if "/streaming/preprocess/" in f or "/streaming/ingest/windows.py" in f:
            if f.endswith("/streaming/preprocess/pipeline.py") and fn.startswith("WindowFeeder."):
                return "windowing"
            for parts, stage in _PREPROCESS:
                if _pkg(f, *parts):
                    return stage
            return "preprocess_other"
    if any(_pkg(f, "/streaming/ingest/", "/streaming/lsl/", "/pylsl/") for f in files):
        return "acquisition"
    return "other"


def _short(file: str, root: str) -> str:
    if file.startswith(root):
        return file[len(root) :].lstrip("/")
    m = re.search(r"(?:site-packages|python3\.\d+)/(.*)$", file)
    return m.group(1) if m else file


WAITS = (
    ("Condition.wait", "/threading.py"),
    ("Event.wait", "/threading.py"),
    ("Thread._wait_for_tstate_lock", "/threading.py"),
    ("EpollSelector.select", "/selectors.py"),
    ("PollSelector.select", "/selectors.py"),
    # an inference thread waiting on its queue for the next model run (the queue's get is C)
    ("_worker", "/concurrent/futures/thread.py"),
)
"""Leaf frames that wait (a lock, a condition, ``select``): a thread py-spy caught there was
waking up or about to sleep, not working; such samples are counted apart (``waiting``), not in a
stage."""


def compiling(frames: Sequence[tuple[str, str]]) -> bool:
    """A frame of numba's compiler or llvmlite: the compiled cvxEDA being built (once, in the
    background, possibly after warm-up on a loaded machine), not steady-state work."""
    return any("/numba/core/" in f or "/llvmlite/" in f for _, f in frames)


def waiting(frames: Sequence[tuple[str, str]]) -> bool:
    """The sample's innermost frame is one of :data:`WAITS`."""
    if not frames:
        return False
    fn, f = frames[-1]
    return any(fn == w and f.endswith(path) for w, path in WAITS)


def stage_summary(
    samples: Sequence[Sample], root: str
) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Samples per stage (plus ``waiting``, see :data:`WAITS`); per stage the top 5 innermost
    frames of the project's own code (where the project spends it: that frame and what it calls);
    overall the top 15 leaf frames (self time) of the staged samples."""
    per_stage: Counter[str] = Counter()
    own: dict[str, Counter[str]] = defaultdict(Counter)
    leaf: Counter[str] = Counter()
    for s in samples:
        if waiting(s.frames):
            per_stage["waiting"] += s.count
            continue
        if compiling(s.frames):
            per_stage["jit_compile"] += s.count
            continue
        stage = classify(s.frames)
        per_stage[stage] += s.count
        mine = [(fn, f) for fn, f in s.frames if f.startswith(root) and "/site-packages/" not in f]
        if mine:
            fn, f = mine[-1]
            own[stage][f"{fn} ({_short(f, root)})"] += s.count
        if s.frames:
            fn, f = s.frames[-1]
            leaf[f"{fn} ({_short(f, root)})"] += s.count
    total = sum(v for k, v in per_stage.items() if k in STAGES) or 1

    def rows(c: Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"frame": k, "samples": v, "share": round(v / total, 4)} for k, v in c.most_common(n)
        ]

    return (
        {k: per_stage.get(k, 0) for k in (*STAGES, "waiting", "jit_compile")},
        {k: rows(own[k], 5) for k in STAGES if own[k]},
        rows(leaf, 15),
    )


def _pyspy() -> str:
    """The py-spy beside this interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).with_name("py-spy")
    found = str(here) if here.is_file() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is missing: pip install py-spy (the dev extra)")
    return found


def _pyspy_version(exe: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    return "unknown"


def _inference_split(messages: Sequence[Any], t_a: float, t_b: float) -> dict[str, float]:
    """Each model's share of the service's inference time over [t_a, t_b): its batched runs'
    ``latency_ms.inference``, one per (model, window end, run time)."""
    runs: dict[str, set[tuple[float, float]]] = defaultdict(set)
    for m in messages:
        if t_a <= m.arrived < t_b and "inference" in m.stages:
            runs[m.model].add((round(m.window_end, 3), float(m.stages["inference"])))
    ms = {model: sum(v for _, v in r) for model, r in runs.items()}
    total = sum(ms.values())
    return {k: v / total for k, v in sorted(ms.items())} if total > 0 else {}


async def _profile_kind(
    kind: str,
    sessions: int,
    seconds: float,
    rate: int,
    data: Path | None,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from affectstream.bench import pusher
    from affectstream.bench.e2e import (
        ServiceProcess,
        _machine_busy,
        _warmed_up,
        follow,
        free_port,
        kind_models,
        replay_models_when_ready,
        service_env,
        start_service,
        stop_service,
    )
    from affectstream.bench.machine import cpu_seconds, thread_cpu, tree_cpu_seconds
    from affectstream.streaming.lsl.config import use_machine_scope
    from affectstream.streaming.lsl.inlet import local_clock

    exe = _pyspy()
    env = dict(os.environ)
    use_machine_scope(env)
    use_machine_scope()
    service_env(env, sessions)
    port = free_port()
    service_log = workdir / f"service-{kind}.log"
    service = start_service(port, env, service_log)
    state = ServiceProcess(f"http://127.0.0.1:{port}")
    tasks: list[asyncio.Task[None]] = []
    proc: subprocess.Popen[str] | None = None
    names = [f"prof{os.getpid()}{kind[0]}-{i:03d}" for i in range(sessions)]
    raw_path = workdir / f"pyspy-{kind}.txt"
    try:
        models = kind_models(kind, await replay_models_when_ready(state, service, service_log))
        proc = await asyncio.to_thread(pusher.start, data, names, env=env, kind=kind)
        for sid in names:
            body = {"session": sid, "match": {"source_id_prefix": f"{sid}-"}, "models": models}
            await asyncio.to_thread(state.http, "POST", "/sessions", body)
            url = f"ws://127.0.0.1:{port}/ws/sessions/{sid}"
            tasks.append(asyncio.create_task(follow(state, url, sid, local_clock)))
        log(f"profile {kind}: {sessions} session(s), models {models}; warming up")
        deadline = time.monotonic() + 90 + sessions
        while not _warmed_up(state, names, len(models)) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        warm = _warmed_up(state, names, len(models))
        await asyncio.sleep(2.0)
        load_start = os.getloadavg()[0]
        threads0 = thread_cpu(service.pid)
        cpu0, push0, bench0 = (
            tree_cpu_seconds(service.pid),
            cpu_seconds(proc.pid),
            time.process_time(),
        )
        busy0, total0 = _machine_busy()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t_a, w_a = local_clock(), time.monotonic()
        argv = [
            exe, "record", "--pid", str(service.pid), "--duration", f"{seconds:g}",
            "--rate", str(rate), "--format", "raw", "--threads", "--full-filenames",
            "--nonblocking", "-o", str(raw_path),
        ]  # fmt: skip
        spy = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=seconds + 60
        )
        t_b, w_b = local_clock(), time.monotonic()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, total1 = _machine_busy()
        cpu1, push1, bench1 = (
            tree_cpu_seconds(service.pid),
            cpu_seconds(proc.pid),
            time.process_time(),
        )
        threads1 = thread_cpu(service.pid)
        load_end = os.getloadavg()[0]
        if spy.returncode != 0 or not raw_path.is_file():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()[-500:]}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_service(service)
        if proc is not None:
            pusher.stop(proc)
    span = w_b - w_a
    summary = _SUMMARY.search(spy.stderr + spy.stdout)
    rounds = int(summary["samples"]) if summary else 0
    errors = int(summary["errors"]) if summary else None
    period_s = span / rounds if rounds else 1.0 / rate
    samples = parse_raw(raw_path.read_text())
    root = str(Path(__file__).resolve().parents[1])
    per_stage, own, leaf = stage_summary(samples, root)
    waits, jit = per_stage.pop("waiting"), per_stage.pop("jit_compile")
    denominator = sessions * span  # session-seconds

    def ms(n_samples: float) -> float:
        return round(n_samples * period_s * 1000 / denominator, 3)

    split = _inference_split(state.messages, t_a, t_b)
    sampled_tids = {s.tid for s in samples if s.tid is not None}
    cpu_by_tid = {
        tid: (name, c1 - threads0.get(tid, (name, 0.0))[1]) for tid, (name, c1) in threads1.items()
    }
    native: defaultdict[str, float] = defaultdict(float)
    for tid, (name, c) in cpu_by_tid.items():
        if tid not in sampled_tids:
            native[name] += c
    by_thread: Counter[str] = Counter()
    for s in samples:
        by_thread[s.thread or "?"] += s.count
    python_proc = sum(c for tid, (_, c) in cpu_by_tid.items() if tid in sampled_tids)
    staged = max(1, sum(per_stage.values()))
    # each stage's share of the staged samples × the CPU /proc counted for the threads py-spy
    # sampled (less the share of samples spent compiling): samples × period alone overstates CPU
    # on a loaded machine, where a thread waiting for a core looks running
    cpu = {
        k: round(v / staged * python_proc * (staged / (staged + jit)) * 1000 / denominator, 3)
        for k, v in per_stage.items()
    }
    spy_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    service_cores = (cpu1 - cpu0) / span
    pushers_cores = (push1 - push0) / span
    bench_cores = (bench1 - bench0) / span
    busy_cores = (busy1 - busy0) / max(1.0, total1 - total0) * (os.cpu_count() or 1)
    received = [m for m in state.messages if t_a <= m.arrived < t_b]
    return {
        "kind": kind,
        "sessions": sessions,
        "models": models,
        "warmup_complete": warm,
        "seconds": round(span, 2),
        "rate_hz": rate,
        "sampling_rounds": rounds,
        "sampling_period_ms": round(period_s * 1000, 3),
        "pyspy_errors": errors,
        "active_samples": sum(per_stage.values()),
        "stage_samples": per_stage,
        "cpu_ms_per_session_second": cpu,
        "inference_by_model_cpu_ms_per_session_second": {
            k: round(cpu["inference"] * share, 3) for k, share in split.items()
        },
        "waiting_samples": waits,
        "jit_compile_samples": jit,
        "sampled_cpu_ms_per_session_second": ms(sum(per_stage.values())),
        "samples_x_period_ms_per_session_second": {k: ms(v) for k, v in per_stage.items()},
        "proc_cpu_ms_per_session_second": {
            "service": round((cpu1 - cpu0) * 1000 / denominator, 3),
            "python_threads": round(python_proc * 1000 / denominator, 3),
            "native_threads": round(sum(native.values()) * 1000 / denominator, 3),
        },
        "native_threads_cpu_ms_per_session_second": {
            k: round(v * 1000 / denominator, 3)
            for k, v in sorted(native.items(), key=lambda kv: -kv[1])
            if v > 0
        },
        "samples_by_thread": dict(by_thread.most_common(12)),
        "top_own_frames_by_stage": own,
        "top_leaf_frames": leaf,
        "predictions_received": len(received),
        "machine_load": {
            "load_average_1min_start": round(load_start, 2),
            "load_average_1min_end": round(load_end, 2),
            "machine_cpu_busy_cores": round(busy_cores, 3),
            "service_cores": round(service_cores, 3),
            "pushers_cores": round(pushers_cores, 3),
            "bench_cores": round(bench_cores, 3),
            "pyspy_cores": round(spy_cpu / span, 3),
            "other_processes_cores": round(
                max(0.0, busy_cores - service_cores - pushers_cores - bench_cores - spy_cpu / span),
                3,
            ),
        },
        "client_errors": state.errors[:10],
    }


def run_profile(
    kinds: Sequence[str],
    seconds: float,
    data: Path | None,
    *,
    sessions: int = 1,
    rate: int = 100,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """The ``profile`` section: one profile per kind (each against its own ``serve`` process)."""
    by_kind: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="affectstream-profile-") as tmp:
        for kind in kinds:
            by_kind[kind] = asyncio.run(
                _profile_kind(kind, sessions, seconds, rate, data, Path(tmp), log)
            )
            row = by_kind[kind]
            log(
                f"profile {kind}: {row['active_samples']} active samples, "
                f"{row['sampled_cpu_ms_per_session_second']} ms sampled / "
                f"{row['proc_cpu_ms_per_session_second']['service']} ms /proc per session-second"
            )
    return {
        "profiler": f"{_pyspy_version(_pyspy())} (attached by pid, --nonblocking, raw, --threads)",
        "stages": STAGES,
        "classification": " ".join((classify.__doc__ or "").split()),
        "unit": "ms of CPU per session-second: the stage's share of the samples × the sampled "
        "threads' CPU from /proc / sessions / seconds",
        "by_kind": by_kind,
        "method": " ".join((__doc__ or "").split("\n\n", 1)[0].split()),
    }


def stage_table(profile: dict[str, Any]) -> list[str]:
    """The Markdown table of the stages (ms CPU per session-second) for every kind profiled."""
    kinds = list(profile["by_kind"])
    rows = [profile["by_kind"][k] for k in kinds]
    head = " | ".join(f"{k} ({r['sessions']} session{'s' if r['sessions'] != 1 else ''})"
                      for k, r in zip(kinds, rows, strict=True))  # fmt: skip
    lines = [f"| stage | {head} |", "|---|" + "---:|" * len(kinds)]
    for key, label in STAGES.items():
        cells = [f"{r['cpu_ms_per_session_second'][key]:.2f}" for r in rows]
        lines.append(f"| {label} | {' | '.join(cells)} |")
        if key == "inference":
            models = sorted(
                {m for r in rows for m in r["inference_by_model_cpu_ms_per_session_second"]}
            )
            for m in models:
                cells = [
                    f"{r['inference_by_model_cpu_ms_per_session_second'][m]:.2f}"
                    if m in r["inference_by_model_cpu_ms_per_session_second"]
                    else "–"
                    for r in rows
                ]
                lines.append(f"| &nbsp;&nbsp;of which {m} | {' | '.join(cells)} |")
    lines.append(
        "| **total of the stages** | "
        + " | ".join(f"**{sum(r['cpu_ms_per_session_second'].values()):.2f}**" for r in rows)
        + " |"
    )
    lines.append(
        "| raw samples × sampling period (overstates on a loaded machine) | "
        + " | ".join(f"{r['sampled_cpu_ms_per_session_second']:.2f}" for r in rows)
        + " |"
    )
    lines.append(
        "| the Python threads py-spy sampled, from /proc | "
        + " | ".join(f"{r['proc_cpu_ms_per_session_second']['python_threads']:.2f}" for r in rows)
        + " |"
    )
    lines.append(
        "| native threads py-spy cannot see (liblsl, ONNX Runtime pool), from /proc | "
        + " | ".join(f"{r['proc_cpu_ms_per_session_second']['native_threads']:.2f}" for r in rows)
        + " |"
    )
    lines.append(
        "| whole service process, from /proc | "
        + " | ".join(f"{r['proc_cpu_ms_per_session_second']['service']:.2f}" for r in rows)
        + " |"
    )
    return lines
