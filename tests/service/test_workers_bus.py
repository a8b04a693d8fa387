"""Workers on a real Redis: two ``affectstream worker`` processes, a real LSL skin conductance
producer, a session put into the registry. The holder publishes predictions into the session's
stream; SIGKILLed, its lease lapses and the other worker takes the session over within 5 s, with
``seq`` continuing strictly increasing and the takeover announced."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from live_service import free_port, stop_process, wait_until, write_gsr_model
from producers import Device, skin_conductance
from redis_server import RedisServer

from affectstream.service.bus import Bus

pytestmark = [pytest.mark.lsl, pytest.mark.slow]


@pytest.fixture
def redis_srv(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def _worker(
    cli: Callable[..., list[str]],
    env: dict[str, str],
    url: str,
    wid: str,
    model_dir: Path,
    log: Path,
    log_level: str = "warning",
) -> subprocess.Popen[bytes]:
    env = {**env, "AFFECTSTREAM_MODEL_DIR": str(model_dir)}
    return subprocess.Popen(
        cli(
            "worker",
            "--bus",
            url,
            "--worker-id",
            wid,
            "--lease-ms",
            "1500",
            "--renew-s",
            "0.3",
            "--log-level",
            log_level,
        ),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_a_killed_worker_s_session_is_taken_over_with_seq_continuing(
    tmp_path: Path,
    redis_srv: RedisServer,
    session_name: str,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    write_gsr_model(tmp_path / "models" / "gsr-tiny")
    bus = Bus.connect(redis_srv.url)
    device = Device(session_name, [skin_conductance("gsr", "GSR", 64.0, label="GSR")]).start()
    logs = {w: tmp_path / f"{w}.log" for w in ("wa", "wb")}
    workers = {
        w: _worker(cli, cli_env, redis_srv.url, w, tmp_path / "models", logs[w]) for w in logs
    }
    try:
        wait_until(lambda: len(bus.workers()) == 2, 60, what="both workers up")
        bus.put_session(session_name, {"match": {"source_id_prefix": f"{session_name}-"}})
        wait_until(lambda: bus.holder(session_name) is not None, 10, what="a worker claims it")
        holder = bus.holder(session_name)
        assert holder in workers
        wait_until(lambda: bus.last_seq(session_name) >= 4, 30, what="predictions on the bus")

        os.kill(workers[holder].pid, signal.SIGKILL)
        killed_at, seq_at_kill = time.monotonic(), bus.last_seq(session_name)
        other = next(w for w in workers if w != holder)
        wait_until(lambda: bus.holder(session_name) == other, 10, what="takeover")
        wait_until(lambda: bus.last_seq(session_name) > seq_at_kill + 1, 15, what="resumed")
        resumed_s = time.monotonic() - killed_at
        print(f"predictions resumed {resumed_s:.2f} s after the SIGKILL")
        assert resumed_s <= 5.0, f"predictions resumed {resumed_s:.1f} s after the kill"

        entries = bus.after(session_name, 0)
        seqs = [e.seq for e in entries if e.sub == 0]
        assert seqs == sorted(set(seqs)) and seqs[0] == 1, "strictly increasing, no duplicate"
        assert seqs == list(range(1, seqs[-1] + 1)), "the counter never skips"
        statuses = [e.message for e in entries if e.message.get("type") == "session_status"]
        assert any(f"served by worker {holder}" in s["reason"] for s in statuses)
        takeover = [s for s in statuses if f"served by worker {other}" in s["reason"]]
        # the announcement names the last seq before the takeover (the holder may have
        # published once more between our reading and its death)
        assert takeover, statuses
        last_before = int(takeover[0]["reason"].split("taken over after seq ")[1].split(":")[0])
        assert seq_at_kill <= last_before < seqs[-1]
        predictions = [e.message for e in entries if e.sub == 0]
        assert {p["model"] for p in predictions} == {"gsr-tiny@1"}
        assert all(0.0 <= p["valence"] <= 1.0 for p in predictions)
        assert bus.workers()[other]["takeovers"] == 1

        # a deleted session is closed by its worker and its lease given back
        assert bus.delete_session(session_name)
        wait_until(lambda: bus.holder(session_name) is None, 5, what="the lease is released")
        wait_until(lambda: bus.workers()[other]["sessions"] == 0, 5, what="the worker closed it")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                stop_process(proc)
        device.stop()
        bus.close()
    for w, proc in workers.items():
        if w != holder:
            assert proc.returncode == 0, logs[w].read_text()[-3000:]
            assert "Traceback" not in logs[w].read_text()


def test_a_stimulus_put_on_a_gateway_reaches_the_worker_of_the_session(
    tmp_path: Path,
    redis_srv: RedisServer,
    session_name: str,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    """A fusion model behind a gateway: ``PUT /sessions/{id}/stimulus`` on the gateway (checked
    there: an unknown id is a 422) is stored in Redis and applied by the worker holding the
    session; its predictions then carry that stimulus (source ``rest``) and the valence the
    model computes from its features; another PUT switches it, DELETE clears it."""
    import json
    import urllib.error
    import urllib.request

    import numpy as np
    from test_fusion_e2e import expected_valence, write_fusion_model

    rng = np.random.default_rng(5)
    ids = ["song-a", "song-b"]
    table = rng.normal(size=(2, 6))
    w = write_fusion_model(tmp_path / "models" / "fusion", ids, table)
    want = {i: expected_valence(table[k], table, w) for k, i in enumerate(ids)}
    assert abs(want["song-a"] - want["song-b"]) > 1e-3
    bus = Bus.connect(redis_srv.url)
    env = {**cli_env, "AFFECTSTREAM_MODEL_DIR": str(tmp_path / "models")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = {name: tmp_path / f"{name}.log" for name in ("gw", "wa")}
    procs = {
        "gw": subprocess.Popen(
            cli("serve", "--bus", redis_srv.url, "--port", str(port), "--log-level", "warning"),
            env=env,
            stdout=logs["gw"].open("wb"),
            stderr=subprocess.STDOUT,
        ),
        "wa": _worker(cli, cli_env, redis_srv.url, "wa", tmp_path / "models", logs["wa"]),
    }

    def call(method: str, path: str, body: object = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ready() -> bool:
        try:
            return call("GET", "/ready")[0] == 200
        except OSError:
            return False

    def predictions(after: int = 0) -> list[dict[str, object]]:
        return [e.message for e in bus.after(session_name, after) if e.sub == 0]

    device = Device(session_name, [skin_conductance("gsr", "GSR", 50.0, label="GSR")]).start()
    try:
        wait_until(ready, 60, what="the gateway ready")
        wait_until(lambda: len(bus.workers()) == 1, 60, what="the worker up")
        status, body = call(
            "POST",
            "/sessions",
            {"session": session_name, "match": {"source_id_prefix": f"{session_name}-"}},
        )
        assert status == 201, body
        status, body = call("PUT", f"/sessions/{session_name}/stimulus", {"id": "no-such-song"})
        assert status == 422 and "no-such-song" in str(body), body
        status, body = call("PUT", f"/sessions/{session_name}/stimulus", {"id": "song-a"})
        assert status == 200, body
        wait_until(lambda: len(predictions()) >= 3, 40, what="fusion predictions with song-a")
        first = predictions()
        for p in first:
            assert p["stimulus"] == {"id": "song-a", "source": "rest"}, p
            assert p["valence"] == pytest.approx(want["song-a"], abs=1e-4)
        seq_a = bus.last_seq(session_name)
        status, body = call("PUT", f"/sessions/{session_name}/stimulus", {"id": "song-b"})
        assert status == 200, body
        switched = lambda: any(  # noqa: E731
            p["stimulus"]["id"] == "song-b" for p in predictions(seq_a)
        )
        wait_until(switched, 20, what="predictions with song-b")
        for p in predictions(seq_a):
            assert p["valence"] == pytest.approx(want[p["stimulus"]["id"]], abs=1e-4)
        status, _ = call("DELETE", f"/sessions/{session_name}/stimulus")
        assert status == 204
        wait_until(lambda: bus.stimuli([session_name])[session_name] is None, 5, what="cleared")

        def refused() -> bool:
            state = bus.session_state(session_name) or {}
            models = (state.get("describe") or {}).get("models") or [{}]
            return int(models[0].get("refused_windows", 0)) > 0

        wait_until(refused, 20, what="windows refused once the stimulus is cleared")
    finally:
        device.stop()
        for proc in procs.values():
            if proc.poll() is None:
                stop_process(proc)
        bus.close()
    for log in logs.values():
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_a_worker_freezes_its_heap_once_its_models_are_loaded(
    tmp_path: Path,
    redis_srv: RedisServer,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    """(:mod:`affectstream.service.heap`) before it holds any session."""
    write_gsr_model(tmp_path / "models" / "gsr-tiny")
    log = tmp_path / "worker.log"
    proc = _worker(cli, cli_env, redis_srv.url, "wf", tmp_path / "models", log, "info")
    try:
        bus = Bus.connect(redis_srv.url)
        wait_until(lambda: len(bus.workers()) == 1, 60, what="the worker up")
        wait_until(
            lambda: "set aside from garbage collection" in log.read_text(errors="replace"),
            5,
            what="the heap frozen",
        )
    finally:
        stop_process(proc)
