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
from live_service import stop_process, wait_until, write_gsr_model
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
            "warning",
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
