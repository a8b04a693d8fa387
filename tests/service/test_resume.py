"""Resume on the service side (docs/protocol.md, "Resume"): the hub's per-session buffer of the
last ``resume_buffer`` predictions, the replay plan a ``?since=``/``?epoch=`` gives, the hello's
``epoch``/``last_seq``/``resume`` and the 1008 close for malformed parameters.

The live behaviour (a real service, real LSL producers, a reconnecting client) is in
tests/client/test_client_live.py."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from affectstream.service.api.ws import MAX_SINCE, plan_resume, resume_params
from affectstream.service.app import create_app
from affectstream.service.hub import Hub, Kept
from affectstream.service.messages import SessionEnded, SessionOpened, parse_server_message
from affectstream.service.settings import Settings, SettingsError

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import write_tiny_model

TOKEN = "resume-test-token-0123456"


def _prediction(seq: int) -> dict[str, Any]:
    return {"type": "prediction", "schema": 1, "session": "p01", "seq": seq}


async def _hub_after(messages: list[dict[str, Any]], resume_buffer: int) -> Hub:
    """A hub on this loop that has processed ``messages`` for session p01, in order."""
    hub = Hub(queue_size=4, loop=asyncio.get_running_loop(), resume_buffer=resume_buffer)
    for m in messages:
        hub.publish("p01", m)
    await asyncio.sleep(0)  # the loop runs the call_soon_threadsafe callbacks
    return hub


def _seqs(kept: Kept | list[tuple[int, str]]) -> list[int]:
    items = kept.messages if isinstance(kept, Kept) else kept
    seqs = [seq for seq, _ in items]
    assert seqs == [json.loads(text)["seq"] for _, text in items]  # each kept as published
    return seqs


def test_the_hub_keeps_the_last_predictions_of_the_current_incarnation_only() -> None:
    opened_a = SessionOpened(session="p01", epoch="aaaa").dump()
    opened_b = SessionOpened(session="p01", epoch="bbbb").dump()

    async def scenario() -> None:
        status = {"type": "status", "schema": 1, "session": "p01"}
        hub = await _hub_after([opened_a, *map(_prediction, range(1, 11)), status], 4)
        kept = hub.kept("p01", "aaaa")
        assert _seqs(kept) == [7, 8, 9, 10] and kept.first_seq == 7 and kept.last_seq == 10
        assert _seqs(hub.kept("p01", "other")) == []  # another incarnation: nothing of this one
        assert hub.published_total == 11  # opened/ended are the hub's own, never published

        # the id's next incarnation starts afresh; the old one's late "ended" leaves it alone
        hub.publish("p01", opened_b)
        hub.publish("p01", _prediction(1))
        hub.publish("p01", SessionEnded(session="p01", epoch="aaaa").dump())
        await asyncio.sleep(0)
        assert _seqs(hub.kept("p01", "aaaa")) == []
        assert _seqs(hub.kept("p01", "bbbb")) == [1]
        hub.publish("p01", SessionEnded(session="p01", epoch="bbbb").dump())
        await asyncio.sleep(0)
        assert _seqs(hub.kept("p01", "bbbb")) == []

        # resume_buffer 0: nothing kept, but the latest seq is known (the gap's end)
        hub0 = await _hub_after([opened_a, *map(_prediction, range(1, 6))], 0)
        kept0 = hub0.kept("p01", "aaaa")
        assert _seqs(kept0) == [] and kept0.last_seq == 5 and kept0.first_seq == 6

    asyncio.run(scenario())


def test_the_replay_plan_follows_the_protocol() -> None:
    async def kept_7_to_10() -> Kept:
        opened = SessionOpened(session="p01", epoch="aaaa").dump()
        hub = await _hub_after([opened, *map(_prediction, range(1, 11))], 4)
        return hub.kept("p01", "aaaa")

    kept = asyncio.run(kept_7_to_10())

    def plan(since: int | None, epoch: str | None, last_seq: int = 10) -> Any:
        return plan_resume("p01", since, epoch, "aaaa", last_seq, kept, 4)

    none = plan(None, "aaaa")
    assert none.resume is None and none.gap is None and none.replay == []

    inside = plan(8, "aaaa")  # all still kept: no gap
    assert _seqs(inside.replay) == [9, 10] and inside.gap is None
    assert inside.resume.model_dump() == {"since": 8, "replayed": 2, "missed": 0, "reset": False}
    assert _seqs(plan(8, None).replay) == [9, 10]  # no epoch, since ≤ last_seq: the same

    older = plan(3, "aaaa")  # 4, 5, 6 are gone
    assert _seqs(older.replay) == [7, 8, 9, 10]
    assert older.gap.dump() == {
        "type": "gap",
        "schema": 1,
        "session": "p01",
        "from": 4,
        "to": 6,
        "missed": 3,
        "reason": "older than the resume buffer (resume_buffer=4)",
    }
    assert older.resume.missed == 3 and older.resume.replayed == 4

    up_to_date = plan(10, "aaaa")
    assert up_to_date.replay == [] and up_to_date.gap is None

    for reset in (plan(3, "bbbb"), plan(12, None), plan(12, "aaaa")):  # another incarnation
        assert reset.resume.reset is True
        assert _seqs(reset.replay) == [7, 8, 9, 10]
        assert (reset.gap.from_seq, reset.gap.to, reset.resume.missed) == (1, 6, 6)

    # in flight: seq 11 assigned (last_seq) but not yet through the hub, nothing lost
    in_flight = plan(10, "aaaa", last_seq=11)
    assert in_flight.replay == [] and in_flight.gap is None and not in_flight.resume.reset


@pytest.mark.parametrize(
    ("since", "epoch", "why"),
    [
        ("-1", None, "since: must be a non-negative integer"),
        ("1.5", None, "since: must be a non-negative integer"),
        ("", None, "since: must be a non-negative integer"),
        ("١٢", None, "since: must be a non-negative integer"),  # Arabic-Indic digits: not ASCII
        (str(MAX_SINCE + 1), None, "since: must be a non-negative integer"),
        ("3", "x" * 65, "epoch: 1-64 letters"),
        ("3", "ab cd", "epoch: 1-64 letters"),
        ("3", "ab/cd", "epoch: 1-64 letters"),
    ],
)
def test_malformed_resume_parameters_are_refused(since: str, epoch: str | None, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        resume_params(since, epoch)


def test_well_formed_resume_parameters_pass() -> None:
    assert resume_params(None, None) == (None, None)
    assert resume_params("0", "") == (0, None)  # an empty epoch counts as none
    assert resume_params(str(MAX_SINCE), "a" * 64) == (MAX_SINCE, "a" * 64)
    assert resume_params("17", "0f_A-9") == (17, "0f_A-9")


def test_the_resume_buffer_setting_is_bounded() -> None:
    assert Settings().resume_buffer == 1024
    assert Settings(resume_buffer=0).resume_buffer == 0
    for bad in (-1, 16385):
        with pytest.raises((SettingsError, ValueError), match="resume_buffer: must be within"):
            Settings(resume_buffer=bad)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    write_tiny_model(tmp_path / "zoo" / "tiny")
    with TestClient(create_app(Settings(model_dir=tmp_path / "zoo", token=TOKEN))) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        body = {"session": "p01", "match": {"source_id_prefix": "p01-"}, "models": ["tiny"]}
        assert c.post("/sessions", json=body).status_code == 201
        yield c


def test_the_hello_names_the_incarnation_and_a_new_one_has_another_epoch(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws/sessions/p01") as ws:
        first = ws.receive_json()
    parse_server_message(first)
    assert len(first["epoch"]) == 12 and int(first["epoch"], 16) >= 0
    assert first["last_seq"] == 0 and first["resume"] is None

    with client.websocket_connect(f"/ws/sessions/p01?since=0&epoch={first['epoch']}") as ws:
        again = ws.receive_json()
    assert again["epoch"] == first["epoch"]
    assert again["resume"] == {"since": 0, "replayed": 0, "missed": 0, "reset": False}

    assert client.delete("/sessions/p01").status_code in (200, 204)
    body = {"session": "p01", "match": {"source_id_prefix": "p01-"}, "models": ["tiny"]}
    assert client.post("/sessions", json=body).status_code == 201
    with client.websocket_connect(f"/ws/sessions/p01?since=5&epoch={first['epoch']}") as ws:
        other = ws.receive_json()
    assert other["epoch"] != first["epoch"] and other["last_seq"] == 0
    assert other["resume"] == {"since": 5, "replayed": 0, "missed": 0, "reset": True}


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("since=abc", "since: must be a non-negative integer"),
        ("since=-3", "since: must be a non-negative integer"),
        ("since=1&epoch=" + "e" * 65, "epoch: 1-64 letters"),
        ("since=1&epoch=%3Cscript%3E", "epoch: 1-64 letters"),
    ],
)
def test_bad_since_or_epoch_closes_the_socket_with_1008(
    client: TestClient, query: str, why: str
) -> None:
    with (
        client.websocket_connect(f"/ws/sessions/p01?{query}") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
    assert closed.value.reason.startswith(why)
