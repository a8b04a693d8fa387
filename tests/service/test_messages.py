"""The typed messages (service/messages.py): their wire form is the one clients of schema 1 know,
docs/messages.schema.json is their current JSON Schema, and what a running service sends follows
it (test client for hello/pong/error, real LSL replay + uvicorn + websockets for the rest)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import websockets
from fastapi.testclient import TestClient
from live_service import replay_log, run_replay, run_service, write_gsr_model
from pydantic import ValidationError

from affectstream.service.app import create_app
from affectstream.service.messages import (
    Closed,
    ErrorMessage,
    Gap,
    GroundTruth,
    Hello,
    LatencyMs,
    ModelStatus,
    Pong,
    Prediction,
    StimulusUsed,
    StreamRef,
    StreamStatus,
    Window,
    message_json_schema,
    message_json_schema_text,
    parse_server_message,
    prediction_message,
)
from affectstream.service.scheduler import Scheduler
from affectstream.service.sessions import Due, ModelSlot
from affectstream.service.settings import Settings
from affectstream.streaming.ingest.health import StreamState

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import write_tiny_model

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "messages.schema.json"
TOKEN = "messages-test-token-0123"
AT = "2026-01-01T00:00:00.000+00:00"


def _check(message: dict[str, Any]) -> None:
    """``message`` (as received) validates and is exactly what its model dumps again."""
    parsed = parse_server_message(message)
    assert parsed.model_dump(by_alias=True) == message


# -- the wire form -------------------------------------------------------------------------------


def test_messages_dump_to_the_schema_1_wire_form_key_for_key() -> None:
    # the dicts the service built by hand before the messages were typed, keys in their order
    latency = {"ingest": 1.5, "preprocess": 0.5, "inference": 0.25, "total": 2.5}
    prediction = Prediction(
        session="p01",
        seq=7,
        model="m@1",
        window=Window(start=10.0, end=12.0),
        valence=0.25,
        arousal=0.75,
        quality={"GSR": {"state": "ok", "nonfinite": 0}},
        latency_ms=LatencyMs(**latency),
        emitted_at=AT,
    )
    assert list(prediction.dump().items()) == [
        ("type", "prediction"),
        ("schema", 1),
        ("session", "p01"),
        ("seq", 7),
        ("model", "m@1"),
        ("window", {"start": 10.0, "end": 12.0}),
        ("valence", 0.25),
        ("arousal", 0.75),
        ("quality", {"GSR": {"state": "ok", "nonfinite": 0}}),
        ("latency_ms", latency),
        ("emitted_at", AT),
    ]
    full = prediction.model_copy(
        update={
            "ground_truth": GroundTruth(valence=6.5, arousal=3.0),
            "stimulus": StimulusUsed(id=None, source="rest"),
        }
    ).dump()
    assert list(full)[-2:] == ["ground_truth", "stimulus"]
    assert full["ground_truth"] == {"valence": 6.5, "arousal": 3.0}
    assert full["stimulus"] == {"id": None, "source": "rest"}  # a null id stays

    status = StreamStatus(
        session="p01",
        stream=StreamRef(type="GSR", source_id="p01-GSR"),
        state=StreamState.STALE,
        reason="",
        emitted_at=AT,
    ).dump()
    assert list(status.items()) == [
        ("type", "status"),
        ("schema", 1),
        ("session", "p01"),
        ("stream", {"type": "GSR", "source_id": "p01-GSR"}),
        ("state", "stale"),
        ("reason", ""),
        ("emitted_at", AT),
    ]
    assert type(status["state"]) is str
    model_status = ModelStatus(
        session="p01", model="m@1", state="running", reason="", emitted_at=AT
    ).dump()
    keys = ["type", "schema", "session", "model", "state", "reason", "emitted_at"]
    assert list(model_status) == keys
    hello = Hello(session="p01", models=["m@1"], streams=[], epoch="0a1b", last_seq=0, resume=None)
    assert list(hello.dump().items()) == [
        ("type", "hello"),
        ("schema", 1),
        ("session", "p01"),
        ("models", ["m@1"]),
        ("streams", []),
        # added after schema 1 was first published (additive: clients of schema 1 ignore them)
        ("model_status", []),
        ("session_state", "served"),
        ("reason", ""),
        ("epoch", "0a1b"),
        ("last_seq", 0),
        ("resume", None),  # present (null) without ?since=
    ]
    gap = Gap(session="p01", from_seq=3, to=5, missed=3, reason="older").dump()
    assert gap == {
        "type": "gap",
        "schema": 1,
        "session": "p01",
        "from": 3,
        "to": 5,
        "missed": 3,
        "reason": "older",
    }
    _check(gap)
    assert Pong(session="p01").dump() == {"type": "pong", "schema": 1, "session": "p01"}
    assert ErrorMessage(session="p01", error="x").dump() == {
        "type": "error",
        "schema": 1,
        "session": "p01",
        "error": "x",
    }
    assert Closed(session="p01").dump() == {"type": "closed", "schema": 1, "session": "p01"}
    # a message with the hub's drop count added still validates
    _check({**prediction.dump(), "dropped": 3})
    _check({**status, "dropped": 1})


def test_a_prediction_outside_0_1_or_with_an_unknown_field_is_refused() -> None:
    good = Prediction(
        session="p01",
        seq=1,
        model="m@1",
        window=Window(start=0.0, end=2.0),
        valence=0.5,
        arousal=0.5,
        quality={},
        latency_ms=LatencyMs(ingest=0, preprocess=0, inference=0, total=0),
        emitted_at=AT,
    ).dump()
    for bad, why in (
        ({**good, "valence": 1.5}, "less than or equal to 1"),
        ({**good, "colour": "red"}, "Extra inputs"),
        ({**good, "schema": 2}, "Input should be 1"),
    ):
        with pytest.raises(ValidationError, match=why):
            parse_server_message(bad)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_server_message({"type": "closed", "schema": 1, "session": "p01"})  # never sent


# -- the schema document ---------------------------------------------------------------------------


def test_the_schema_file_is_the_current_schema() -> None:
    regenerate = (
        "regenerate it: python -c 'from affectstream.service.messages import "
        'message_json_schema_text as t; open("docs/messages.schema.json", "w").write(t())\''
    )
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert json.loads(text) == message_json_schema(), regenerate
    assert text == message_json_schema_text(), regenerate
    schema = json.loads(text)
    assert set(schema["discriminator"]["mapping"]) == {
        "hello",
        "gap",
        "prediction",
        "status",
        "model_status",
        "session_status",
        "pong",
        "error",
    }
    assert {"epoch", "last_seq", "resume"} <= set(schema["$defs"]["Hello"]["required"])
    for name in (
        "Hello",
        "Gap",
        "Prediction",
        "StreamStatus",
        "ModelStatus",
        "SessionStatus",
        "Pong",
        "ErrorMessage",
    ):
        assert schema["$defs"][name]["required"][:3] == ["type", "schema", "session"], name


@pytest.fixture
def client(tmp_path: Path) -> Any:
    write_tiny_model(tmp_path / "zoo" / "tiny")
    with TestClient(create_app(Settings(model_dir=tmp_path / "zoo", token=TOKEN))) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def test_the_service_serves_the_schema_and_its_answers_follow_it(client: TestClient) -> None:
    r = client.get("/schema/messages.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert client.get("/schema/messages.json", headers={"Authorization": ""}).status_code == 401

    body = {"session": "p01", "match": {"source_id_prefix": "p01-"}, "models": ["tiny"]}
    assert client.post("/sessions", json=body).status_code == 201
    with client.websocket_connect(f"/ws/sessions/p01?token={TOKEN}") as ws:
        hello = ws.receive_json()
        ws.send_text("{this is not json")
        error = ws.receive_json()
        ws.send_text(json.dumps({"type": "ping"}))
        pong = ws.receive_json()
    assert [hello["type"], error["type"], pong["type"]] == ["hello", "error", "pong"]
    for m in (hello, error, pong):
        _check(m)


# -- a running service ---------------------------------------------------------------------------


@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_messages_of_a_running_service_follow_the_schema(
    synthetic_dir: Path, session_name: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_gsr_model(tmp_path / "zoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "zoo", token=TOKEN)
    with run_service(settings) as live:
        match = {"source_id_prefix": session_name + "-"}
        body = json.dumps({"session": session_name, "match": match, "models": ["gsr"]})
        req = urllib.request.Request(
            f"{live.url}/sessions?token={TOKEN}",
            body.encode(),
            {"Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(req, timeout=10).status == 201
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}?token={TOKEN}"

        async def scenario() -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []

            async def until(done: Any, timeout: float) -> None:
                deadline = time.monotonic() + timeout
                while not done() and time.monotonic() < deadline:
                    seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))

            def count(kind: str) -> int:
                return sum(m["type"] == kind for m in seen)

            async with websockets.connect(url) as ws:
                replay = run_replay(
                    synthetic_dir / "s01.dat",
                    session_name,
                    cli_env,
                    "--wait-for-consumers",
                    "15",
                    log_dir=tmp_path,
                )
                with replay:
                    await until(
                        lambda: sum("ground_truth" in m for m in seen) >= 4 and count("status"), 40
                    )
                    await ws.send("[1, 2]")
                    await ws.send(json.dumps({"type": "ping"}))
                    await until(lambda: count("pong") and count("error"), 10)
                # the replay has stopped: its streams go stale or lost
                await until(lambda: any(m.get("state") in ("stale", "lost") for m in seen), 15)
            return seen

        seen = asyncio.run(scenario())
    kinds = {m["type"] for m in seen}
    assert {"hello", "prediction", "status", "pong", "error"} <= kinds, (
        kinds,
        replay_log(session_name, tmp_path),
    )
    assert any("ground_truth" in m for m in seen)
    for m in seen:
        _check(m)


def test_a_model_output_that_is_no_probability_is_counted_not_published() -> None:
    published: list[dict[str, Any]] = []
    scheduler = Scheduler(list, lambda _sid, message: published.append(message))
    session: Any = SimpleNamespace(
        id="p01", quality=lambda _t: {}, next_seq=lambda: 1, truth_at=lambda _t: None
    )
    slot = ModelSlot(runner=SimpleNamespace(name="m@1"))  # type: ignore[arg-type]
    due = Due(session, slot, 0.0, 2.0, {}, detected=1.95, preprocess_s=0.001, last_sample=1.9)
    scheduler._emit(due, slot, (float("nan"), 0.5), 1.0)
    assert published == [] and scheduler.errors_total == 1 and slot.predictions == 0
    scheduler._emit(due, slot, (0.25, 0.5), 1.0)
    assert [m["valence"] for m in published] == [0.25] and slot.last == published[0]
    _check(published[0])


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"ground_truth": (7.5, 2)},
        {"stimulus": StimulusUsed(id="song-3", source="markers")},
        {"stimulus": StimulusUsed(id=None, source="rest"), "coverage": {"EEG": 0.75}},
        {"fallbacks": {"eda": "flat segment"}, "ground_truth": (1.0, 9.0)},
        {
            "ground_truth": (5.0, 5.0),
            "stimulus": StimulusUsed(id="x", source="rest"),
            "coverage": {"EEG": 0.5, "GSR": 1.0},
            "fallbacks": {"eda": "solver failed"},
        },
    ],
)
def test_the_fast_prediction_builder_gives_what_the_model_gives(extra: dict[str, Any]) -> None:
    """#16: the scheduler builds predictions without pydantic; same dict, same key order, same
    JSON text, valid against the published schema."""
    quality = {"GSR": {"state": "ok", "nonfinite": 0, "unit": "µS"}, "PPG": {"state": "stale"}}
    latency = {"ingest": 12.5, "preprocess": 0.4, "inference": 2, "total": 16.25}
    common = {"session": "p01", "seq": 7, "model": "m@1", "valence": 0.25, "arousal": 1}
    fast = prediction_message(
        **common,
        window_start=10.0,
        window_end=30,
        quality=quality,
        latency_ms=latency,
        emitted_at="2026-12-07T04:00:00.000+00:00",
        **extra,
    )
    truth = extra.get("ground_truth")
    model = Prediction(
        **common,
        window=Window(start=10.0, end=30),
        quality=quality,
        latency_ms=LatencyMs(**latency),
        emitted_at="2026-12-07T04:00:00.000+00:00",
        ground_truth=None if truth is None else GroundTruth(valence=truth[0], arousal=truth[1]),
        stimulus=extra.get("stimulus"),
        coverage=extra.get("coverage"),
        fallbacks=extra.get("fallbacks"),
    ).dump()
    assert fast == model and list(fast) == list(model)
    assert json.dumps(fast) == json.dumps(model)
    _check(fast)


@pytest.mark.parametrize(
    ("valence", "arousal", "latency", "error"),
    [
        (float("nan"), 0.5, None, "valence: nan is not a probability"),
        (0.5, 1.5, None, "arousal: 1.5 is not a probability"),
        (-0.01, 0.5, None, "valence: -0.01 is not a probability"),
        (0.5, 0.5, {"ingest": 1.0}, "latency_ms: stages ['ingest']"),
    ],
)
def test_the_fast_prediction_builder_refuses_what_the_model_refuses(
    valence: float, arousal: float, latency: dict[str, float] | None, error: str
) -> None:
    latency = latency or {"ingest": 1.0, "preprocess": 1.0, "inference": 1.0, "total": 3.0}
    args: dict[str, Any] = {
        "session": "p01",
        "seq": 1,
        "model": "m@1",
        "quality": {},
        "emitted_at": "now",
    }
    with pytest.raises(ValueError, match=re.escape(error)):
        prediction_message(
            **args,
            window_start=0.0,
            window_end=1.0,
            valence=valence,
            arousal=arousal,
            latency_ms=latency,
        )
    with pytest.raises(ValidationError):
        Prediction(
            **args,
            window=Window(start=0.0, end=1.0),
            valence=valence,
            arousal=arousal,
            latency_ms=LatencyMs(**latency),  # type: ignore[arg-type]
        )
