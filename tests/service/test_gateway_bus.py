"""Scale-out end to end, every part real: a ``redis-server`` on a free port, two gateways
(``affectstream serve --bus``) and three workers (``affectstream worker``) as processes, twelve
sessions fed by twelve ``affectstream replay`` processes (a synthetic DEAP-format subject, all six
streams each, looping), WebSocket clients on both gateways. One worker is SIGKILLed;
every session's predictions must resume within 5 s on both gateways, with strictly increasing
``seq`` and the takeover announced; the sessions spread over the workers; a session deleted on
one gateway closes its clients on the other (4410)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_service import free_port, stop_process, wait_until, write_gsr_model
from producers import Device, skin_conductance
from redis_server import RedisServer

from affectstream.service.bus import Bus

pytestmark = [pytest.mark.lsl, pytest.mark.slow, pytest.mark.serial]  # takeover within 5 s

TOKEN = "gateway-test-token-0123456789"
N_SESSIONS = 12


@pytest.fixture
def redis_srv(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def _http(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Follower:
    """One WebSocket client of one session on one gateway: every message with its arrival time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.close_code: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        async with websockets.connect(
            self.url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ws:
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed as e:
                    self.close_code = e.rcvd.code if e.rcvd else None
                    return
                self.messages.append((time.monotonic(), json.loads(raw)))

    def seqs(self) -> list[int]:
        return [m["seq"] for _, m in self.messages if m["type"] == "prediction"]


def test_two_gateways_three_workers_twelve_sessions_survive_a_killed_worker(
    tmp_path: Path,
    redis_srv: RedisServer,
    session_name: str,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    write_gsr_model(tmp_path / "models" / "gsr-tiny")
    env = {**cli_env, "AFFECTSTREAM_MODEL_DIR": str(tmp_path / "models")}
    bus = Bus.connect(redis_srv.url)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}

    def start(name: str, *args: str, log_level: bool = True) -> None:
        logs[name] = tmp_path / f"{name}.log"
        procs[name] = subprocess.Popen(
            cli(*args, *(("--log-level", "warning") if log_level else ())),
            env=env,
            stdout=logs[name].open("wb"),
            stderr=subprocess.STDOUT,
        )

    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        start(f"gw{i}", "serve", "--bus", redis_srv.url, "--port", str(port), "--token", TOKEN)
    for w in ("w0", "w1", "w2"):
        start(w, "worker", "--bus", redis_srv.url, "--worker-id", w, "--lease-ms", "1500")
        # renew every 1 s (default): a takeover after 1.5 s of silence, at the next step
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    ids = [f"{session_name}-{k:02d}" for k in range(N_SESSIONS)]
    data = tmp_path / "deap"
    made = subprocess.run(
        cli("synth", "--out", str(data), "--subjects", "1", "--trials", "2", "--seed", "3"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    for sid in ids:  # every stream of a DEAP subject (EEG 32, GSR, PPG, RESP, AUX, markers)
        replay = ("replay", str(data / "s01.dat"), "--loop", "--quiet", "--session", sid)
        start(f"replay-{sid}", *replay, log_level=False)
    try:

        def gateways_ready() -> bool:
            try:
                return all(_http(b, "GET", "/ready")[0] == 200 for b in bases)
            except OSError:
                return False

        wait_until(gateways_ready, 60, what="gateways ready")
        wait_until(lambda: len(bus.workers()) == 3, 60, what="three workers")
        for k, sid in enumerate(ids):  # half created on each gateway
            status, body = _http(
                bases[k % 2],
                "POST",
                "/sessions",
                {"session": sid, "match": {"source_id_prefix": f"{sid}-"}},
            )
            assert status == 201, body
        again = {"session": ids[0], "match": {"source_id_prefix": f"{ids[0]}-"}}
        assert _http(bases[1], "POST", "/sessions", again)[0] == 409  # registered on the other
        wait_until(
            lambda: all(h is not None for h in bus.leases(ids).values()), 15, what="all leased"
        )
        held = defaultdict(list)
        for sid, w in bus.leases(ids).items():
            held[w].append(sid)
        assert sorted(len(v) for v in held.values()) == [4, 4, 4], dict(held)  # spread evenly

        wait_until(  # heartbeats carry the load of the step before: one more step
            lambda: sorted(v["sessions"] for v in bus.workers().values()) == [4, 4, 4],
            5,
            what="heartbeats with the load",
        )
        health = _http(bases[0], "GET", "/health")[1]
        assert health["bus"]["connected"] and health["bus"]["leased"] == N_SESSIONS
        assert set(health["bus"]["workers"]) == {"w0", "w1", "w2"}
        req = urllib.request.Request(bases[1] + "/metrics")
        req.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(req, timeout=10) as r:
            metrics = r.read().decode()
        assert "affectstream_bus_connected 1.0" in metrics
        assert f"affectstream_bus_leased_sessions {float(N_SESSIONS)}" in metrics
        for w in ("w0", "w1", "w2"):
            assert f'affectstream_worker_sessions{{worker="{w}"}} 4.0' in metrics

        async def follow_all() -> tuple[dict[tuple[int, str], Follower], float, str]:
            followers = {
                (g, sid): Follower(f"ws://127.0.0.1:{ports[g]}/ws/sessions/{sid}")
                for g in (0, 1)
                for sid in ids
            }
            stop = asyncio.Event()
            tasks = [asyncio.create_task(f.run(stop)) for f in followers.values()]

            def every_one_has(n: int) -> bool:
                return all(len(f.seqs()) >= n for f in followers.values())

            deadline = time.monotonic() + 40
            while not every_one_has(3) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert every_one_has(3), {k: len(f.seqs()) for k, f in followers.items()}
            victim = "w1"
            os.kill(procs[victim].pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.sleep(9)
            stop.set()
            await asyncio.gather(*tasks)
            return followers, killed_at, victim

        followers, killed_at, victim = asyncio.run(follow_all())
        moved = set(held[victim])
        gaps = []
        for (g, sid), f in followers.items():
            seqs = f.seqs()
            assert seqs == sorted(set(seqs)), f"gateway {g}, {sid}: seq not strictly increasing"
            after = [t for t, m in f.messages if m["type"] == "prediction" and t > killed_at]
            assert after, f"gateway {g}, {sid}: no prediction after the kill"
            gaps.append(after[0] - killed_at)
            if sid in moved:
                said = [
                    m["reason"]
                    for _, m in f.messages
                    if m["type"] == "session_status" and "taken over" in m.get("reason", "")
                ]
                assert said, f"gateway {g}, {sid}: takeover not announced"
        worst = max(gaps)
        print(f"predictions resumed on both gateways within {worst:.2f} s of the SIGKILL")
        assert worst <= 5.0, f"a session resumed {worst:.1f} s after the kill"
        assert all(bus.holder(sid) not in (None, victim) for sid in ids)

        # a client of gateway 0 reconnects to gateway 1 and resumes from its last seq there
        sid = ids[1]
        seen = followers[(0, sid)]
        hello0 = next(m for _, m in seen.messages if m["type"] == "hello")
        since = seen.seqs()[-6]

        async def resume_elsewhere() -> tuple[dict[str, Any], list[int]]:
            url = (
                f"ws://127.0.0.1:{ports[1]}/ws/sessions/{sid}?since={since}&epoch={hello0['epoch']}"
            )
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {TOKEN}"}
            ) as ws:
                hello = json.loads(await ws.recv())
                got: list[int] = []
                while len(got) < 8:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if m["type"] == "prediction":
                        got.append(m["seq"])
                return hello, got

        hello1, resumed = asyncio.run(resume_elsewhere())
        assert hello1["epoch"] == hello0["epoch"]
        assert hello1["resume"]["reset"] is False and hello1["resume"]["missed"] == 0
        assert hello1["resume"]["replayed"] >= 5
        assert resumed == list(range(since + 1, since + 9)), resumed  # each once, in order

        # deleted on one gateway: its clients on the other are closed with 4410
        async def delete_seen_elsewhere() -> int | None:
            f = Follower(f"ws://127.0.0.1:{ports[1]}/ws/sessions/{ids[0]}")
            stop = asyncio.Event()
            task = asyncio.create_task(f.run(stop))
            await asyncio.sleep(1.0)
            status, _ = await asyncio.to_thread(_http, bases[0], "DELETE", f"/sessions/{ids[0]}")
            assert status == 204
            await asyncio.wait_for(task, 10)
            return f.close_code

        assert asyncio.run(delete_seen_elsewhere()) == 4410
        assert _http(bases[1], "GET", f"/sessions/{ids[0]}")[0] == 404
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop_process(proc, grace_s=10)
        bus.close()
    for name in procs:
        text = logs[name].read_text(errors="replace")
        if name != "w1":
            assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


def test_a_restarted_redis_is_survived_and_the_state_rebuilt(
    tmp_path: Path,
    redis_srv: RedisServer,
    session_name: str,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    """Redis restarts empty (no persistence) under a gateway, a worker and a client of the
    Python kit: nothing crashes, the gateway puts the session back, the worker claims it again,
    the client is told to reconnect (1012), sees the new epoch (a reset) and gets predictions."""
    from affectstream.client import SessionClient

    write_gsr_model(tmp_path / "models" / "gsr-tiny")
    env = {**cli_env, "AFFECTSTREAM_MODEL_DIR": str(tmp_path / "models")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = {n: tmp_path / f"{n}.log" for n in ("gw", "w")}
    procs = {
        "gw": subprocess.Popen(
            cli("serve", "--bus", redis_srv.url, "--port", str(port), "--token", TOKEN),
            env=env,
            stdout=logs["gw"].open("wb"),
            stderr=subprocess.STDOUT,
        ),
        "w": subprocess.Popen(
            cli("worker", "--bus", redis_srv.url, "--lease-ms", "1500", "--renew-s", "0.5"),
            env=env,
            stdout=logs["w"].open("wb"),
            stderr=subprocess.STDOUT,
        ),
    }
    device = Device(session_name, [skin_conductance("gsr", "GSR", 32.0, label="GSR")]).start()
    try:

        def ready() -> bool:
            try:
                return _http(base, "GET", "/ready")[0] == 200
            except OSError:
                return False

        wait_until(ready, 60, what="gateway ready")
        body = {"session": session_name, "match": {"source_id_prefix": f"{session_name}-"}}
        assert _http(base, "POST", "/sessions", body)[0] == 201

        async def ride_through_restart() -> tuple[int, list[int], list[str]]:
            before: list[int] = []
            after: list[int] = []
            epochs: list[str] = []
            async with SessionClient(
                base, session_name, token=TOKEN, wait_for_session=True
            ) as client:
                restarted = False
                async for m in client.messages(kinds={"hello", "prediction"}):
                    if m["type"] == "hello":
                        epochs.append(m["epoch"])
                        continue
                    (after if restarted else before).append(m["seq"])
                    if len(before) == 4 and not restarted:
                        await asyncio.to_thread(redis_srv.stop)
                        await asyncio.sleep(1.0)
                        await asyncio.to_thread(redis_srv.start)
                        restarted = True
                    if len(after) >= 4:
                        return client.resets, before, epochs
            raise AssertionError("the client stopped")

        resets, before, epochs = asyncio.run(asyncio.wait_for(ride_through_restart(), 60))
        assert before == sorted(set(before))
        assert resets >= 1 and len(set(epochs)) >= 2, (resets, epochs)
        health = _http(base, "GET", "/health")[1]
        assert health["status"] == "ok" and health["bus"]["redis_restarts_seen"] >= 1
        assert health["bus"]["sessions"] == 1 and health["bus"]["leased"] == 1
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop_process(proc, grace_s=10)
        device.stop()
    for name, proc in procs.items():
        text = logs[name].read_text(errors="replace")
        # a SIGTERM ends both cleanly (uvicorn re-raises the signal after its shutdown)
        assert proc.returncode in (0, -signal.SIGTERM), f"{name}:\n{text[-3000:]}"
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
