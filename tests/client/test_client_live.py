"""The Python client (``affectstream.client``) against a real service: uvicorn serving the tiny
GSR model on a real LSL skin-conductance outlet (tests/service/producers.py), real WebSockets.

One service and one session serve most tests (a prediction every 0.25 s); a second service with
``resume_buffer=3`` shows a resume that comes too late, and a service run as a process is killed
and started again on its port while a client iterates. docs/protocol.md is what is checked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets

from affectstream.client import (
    Backoff,
    PolicyViolationError,
    SessionClient,
    UnauthorizedError,
)
from affectstream.service.messages import parse_server_message
from affectstream.service.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from live_service import restartable_port, run_service, stop_process, write_gsr_model
from producers import Device, skin_conductance

pytest.importorskip("onnx")
pytestmark = pytest.mark.lsl

TOKEN = "client-live-token-0123456789"
FAST = Backoff(initial=0.1, max_delay=0.5)
"""Backoff for the tests: a service that is back is found within half a second."""


@dataclass
class Live:
    url: str
    session: str
    zoo: Path


def _create_session(url: str, session: str) -> None:
    body = {"session": session, "match": {"source_id_prefix": session + "-"}, "models": ["gsr"]}
    req = urllib.request.Request(
        url + "/sessions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def _gsr_device(prefix: str) -> Device:
    """One outlet ``<prefix>-GSR`` (so auto-attach groups it as session ``<prefix>``)."""
    return Device(prefix, [skin_conductance("GSR", "GSR", 16.0, label="GSR", unit="µS")])


@pytest.fixture(scope="module")
def device_prefix() -> str:
    return f"client-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("client-zoo")
    write_gsr_model(folder / "gsr")
    return folder


@pytest.fixture(scope="module")
def device(device_prefix: str) -> Iterator[Device]:
    with _gsr_device(device_prefix) as d:
        yield d


@pytest.fixture(scope="module")
def live(device: Device, zoo: Path) -> Iterator[Live]:
    settings = Settings(model_dir=zoo, models=("gsr",), token=TOKEN)
    with run_service(settings) as service:
        _create_session(service.url, device.prefix)
        yield Live(service.url, device.prefix, zoo)


async def _take(client: SessionClient, n: int, *, kinds: Any = ("prediction",)) -> list[Any]:
    """The next ``n`` messages of ``kinds`` (``None``: any) from ``client``."""
    out: list[Any] = []
    async for m in client.messages(kinds=kinds):
        out.append(m)
        if len(out) >= n:
            break
    return out


def _consecutive(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_predictions_arrive_in_strictly_increasing_seq(live: Live) -> None:
    async def scenario() -> tuple[list[Any], SessionClient]:
        async with asyncio.timeout(30):
            async with SessionClient(live.url, live.session, token=TOKEN) as client:
                first = await _take(client, 1, kinds=None)
                predictions = await _take(client, 6)
        return first + predictions, client

    messages, client = asyncio.run(scenario())
    hello, predictions = messages[0], messages[1:]
    assert hello["type"] == "hello" and hello["resume"] is None
    for m in messages:
        parse_server_message(m)  # what the client yields is what the service published
    seqs = [p["seq"] for p in predictions]
    assert all(a < b for a, b in itertools.pairwise(seqs)), seqs
    assert client.last_seq == seqs[-1] and client.epoch == hello["epoch"]
    assert client.missed == seqs[-1] - seqs[0] + 1 - len(seqs) == 0  # none lost on a live feed


def test_a_client_that_comes_back_gets_every_prediction_in_between_exactly_once(
    live: Live,
) -> None:
    async def scenario() -> dict[str, Any]:
        async with asyncio.timeout(40):
            client = SessionClient(live.url, live.session, token=TOKEN, backoff=FAST)
            await client.connect()
            before = [p["seq"] for p in await _take(client, 3)]
            await client.close()
            held, epoch = client.last_seq, client.epoch
            await asyncio.sleep(1.5)  # about 6 predictions are published meanwhile
            await client.connect()  # resumes with ?since=<held>&epoch=<epoch>
            hello = (await _take(client, 1, kinds=None))[0]
            after = [p["seq"] for p in await _take(client, hello["resume"]["replayed"] + 3)]
            await client.close()

            # the service itself, seen by a plain WebSocket: the replay and the live feed meet
            # with nothing twice and nothing missing (the client above would hide duplicates)
            assert held is not None and epoch is not None
            raw: list[dict[str, Any]] = []
            query = f"since={held}&epoch={epoch}&token={TOKEN}"
            ws_url = live.url.replace("http", "ws", 1) + f"/ws/sessions/{live.session}?{query}"
            async with websockets.connect(ws_url) as ws:
                raw_hello = json.loads(await ws.recv())
                while len(raw) < raw_hello["resume"]["replayed"] + 3:
                    m = json.loads(await ws.recv())
                    if m["type"] == "prediction":
                        raw.append(m)
        return {
            "before": before,
            "held": held,
            "hello": hello,
            "after": after,
            "missed": client.missed,
            "epoch": epoch,
            "raw": [m["seq"] for m in raw],
            "raw_hello": raw_hello,
        }

    seen = asyncio.run(scenario())
    hello, after, held = seen["hello"], seen["after"], seen["held"]
    assert seen["before"][-1] == held
    assert hello["epoch"] == seen["epoch"]
    assert hello["resume"]["since"] == held and hello["resume"]["reset"] is False
    assert hello["resume"]["missed"] == 0
    assert hello["resume"]["replayed"] >= 4, hello["resume"]  # 1.5 s away at 4 per second
    assert after[0] == held + 1 and _consecutive(after), (held, after)
    assert seen["missed"] == 0
    raw = seen["raw"]
    assert raw[0] == held + 1 and _consecutive(raw), (held, raw)
    assert len(raw) > seen["raw_hello"]["resume"]["replayed"]  # past the replay, into live


def test_a_resume_older_than_the_buffer_gets_a_gap_and_counts_what_was_lost(
    device: Device, zoo: Path
) -> None:
    settings = Settings(model_dir=zoo, models=("gsr",), token=TOKEN, resume_buffer=3)
    with run_service(settings) as service:
        _create_session(service.url, device.prefix)

        async def scenario() -> tuple[int, list[Any], SessionClient]:
            async with asyncio.timeout(40):
                first = SessionClient(service.url, device.prefix, token=TOKEN)
                async with first:
                    await _take(first, 2)
                assert first.last_seq is not None and first.epoch is not None
                await asyncio.sleep(2.5)  # about 10 predictions: 3 are kept
                # a later run, from the position the first one saved
                later = SessionClient(
                    service.url, device.prefix, token=TOKEN, since=first.last_seq,
                    epoch=first.epoch,
                )  # fmt: skip
                async with later:
                    messages = await _take(later, 6, kinds=("hello", "gap", "prediction"))
            return first.last_seq, messages, later

        held, messages, later = asyncio.run(scenario())
    hello, gap, *predictions = messages
    assert hello["type"] == "hello" and gap["type"] == "gap", messages[:2]
    seqs = [p["seq"] for p in predictions]
    lost = seqs[0] - (held + 1)  # what was published while away and no longer kept
    assert lost >= 3, (held, seqs)
    assert (gap["from"], gap["to"], gap["missed"]) == (held + 1, seqs[0] - 1, lost)
    assert gap["reason"] == "older than the resume buffer (resume_buffer=3)"
    assert hello["resume"] == {"since": held, "replayed": 3, "missed": lost, "reset": False}
    assert _consecutive(seqs)
    assert later.missed == lost


def test_malformed_since_or_epoch_is_closed_with_1008(live: Live) -> None:
    async def scenario() -> tuple[Any, float]:
        base = live.url.replace("http", "ws", 1) + f"/ws/sessions/{live.session}?token={TOKEN}"
        async with websockets.connect(base + "&since=abc") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "since: must be a non-negative integer" in closed.value.rcvd.reason

        client = SessionClient(
            live.url, live.session, token=TOKEN, since=1, epoch="not an epoch!", backoff=FAST
        )
        started = time.monotonic()
        with pytest.raises(PolicyViolationError) as refused:
            await client.connect()
        return refused.value, time.monotonic() - started

    error, took = asyncio.run(scenario())
    assert error.code == 1008 and "epoch" in error.reason
    assert took < 1.0  # raised at the first close, not retried


def test_a_wrong_token_raises_unauthorized_without_retrying(live: Live) -> None:
    async def scenario() -> tuple[UnauthorizedError, float]:
        slow = Backoff(initial=2.0, max_delay=2.0)  # a retry would take at least 1 s
        client = SessionClient(live.url, live.session, token="wrong-" + TOKEN, backoff=slow)
        started = time.monotonic()
        with pytest.raises(UnauthorizedError) as refused:
            async with client:
                pass
        return refused.value, time.monotonic() - started

    error, took = asyncio.run(scenario())
    assert error.code == 4401 and error.reason == "missing or wrong token"
    assert took < 1.0


# -- a service restart -------------------------------------------------------------------------


@contextlib.contextmanager
def _service_process(
    port: int, zoo: Path, pattern: str, env: dict[str, str], log: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``affectstream serve`` on ``port`` as a process (auto-attaching ``pattern``); the list
    holds the running process, which the test may replace. Stopped on exit."""
    command = [
        sys.executable, "-m", "affectstream.service", "serve", "--port", str(port),
        "--model-dir", str(zoo), "--model", "gsr", "--auto-attach", pattern, "--token", TOKEN,
        "--log-level", "warning",
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    procs.append(start())
    try:
        yield procs
    finally:
        for p in procs:
            stop_process(p)


@pytest.mark.slow
def test_the_client_rides_out_a_service_restart(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The service process is killed (no close frame: 1006) and started again on its port; the
    client retries with backoff (refused connections, then 4404 until auto-attach re-creates
    the session), sees the new epoch as a reset and goes on."""
    zoo = tmp_path / "zoo"
    write_gsr_model(zoo / "gsr")
    prefix = f"restart-{uuid.uuid4().hex[:10]}"
    port = restartable_port()  # the service is killed and started again on it
    log = tmp_path / "serve.log"
    with (
        _gsr_device(prefix),
        _service_process(port, zoo, prefix, cli_env, log) as procs,
    ):

        async def scenario() -> tuple[list[Any], SessionClient]:
            seen: list[Any] = []
            client = SessionClient(
                f"http://127.0.0.1:{port}", prefix, token=TOKEN, backoff=FAST,
                wait_for_session=True, open_timeout=5,
            )  # fmt: skip
            async with asyncio.timeout(60), client:
                async for m in client.messages(kinds=("hello", "gap", "prediction")):
                    seen.append(m)
                    predictions = [x for x in seen if x["type"] == "prediction"]
                    if len(predictions) == 3 and len(procs) == 1:  # once (a hello follows)
                        procs[0].kill()  # SIGKILL: no close frame, no shutdown
                        procs[0].wait(10)
                        procs.append(
                            subprocess.Popen(
                                procs[0].args,
                                env=cli_env,
                                stdout=log.open("ab"),
                                stderr=subprocess.STDOUT,
                            )
                        )
                    if client.resets and len(predictions) >= 7:
                        break
            return seen, client

        try:
            seen, client = asyncio.run(scenario())
        except TimeoutError:
            pytest.fail(log.read_text(errors="replace")[-3000:])
        assert procs[-1].poll() is None, "the restarted service runs"
    hellos = [m for m in seen if m["type"] == "hello"]
    assert len(hellos) == 2, [h.get("resume") for h in hellos]
    first, second = hellos
    assert second["epoch"] != first["epoch"]
    assert second["resume"]["reset"] is True and client.resets == 1 and client.reconnects == 1
    i = seen.index(second)
    old = [m["seq"] for m in seen[:i] if m["type"] == "prediction"]
    new = [m["seq"] for m in seen[i:] if m["type"] == "prediction"]
    assert len(old) == 3 and _consecutive(old)
    # the new incarnation from its first seq (all kept: no gap), each once
    assert new[0] == 1 and _consecutive(new), new
    assert client.epoch == second["epoch"] and client.last_seq == new[-1]
    assert client.missed == 0
