"""REST and WebSocket error paths of the service (real app with its lifespan, test client)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from affectstream.service.app import create_app
from affectstream.service.settings import Settings

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import write_tiny_model

TOKEN = "t" * 24


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    write_tiny_model(tmp_path / "zoo" / "tiny")
    return tmp_path / "zoo"


@pytest.fixture
def client(zoo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_dir=zoo, token=TOKEN))) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


BODY = {"session": "p01", "match": {"source_id_prefix": "p01-"}, "models": ["tiny"]}


def test_health_ready_models(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    models = client.get("/models").json()["models"]
    assert models[0]["name"] == "tiny" and models[0]["provider"] == "CPUExecutionProvider"
    assert "affectstream_sessions 0" in client.get("/metrics").text


def test_token_required_everywhere(zoo: Path) -> None:
    with TestClient(create_app(Settings(model_dir=zoo, token=TOKEN))) as c:
        for path in ("/health", "/models", "/sessions", "/metrics"):
            assert c.get(path).status_code == 401, path
        # the dashboard page holds no data: served to anyone, it asks for the token itself
        assert c.get("/").status_code == 200
        assert (
            c.get("/health", headers={"Authorization": "Bearer wrong-token-000000"}).status_code
            == 401
        )
        assert c.get("/health", params={"token": TOKEN}).status_code == 200
        assert c.post("/sessions", json=BODY).status_code == 401
        with (
            c.websocket_connect("/ws/sessions/p01") as ws,
            pytest.raises(WebSocketDisconnect) as info,
        ):
            ws.receive_json()
        assert info.value.code == 4401


def test_session_lifecycle_and_conflicts(client: TestClient) -> None:
    r = client.post("/sessions", json=BODY)
    assert r.status_code == 201, r.text
    assert r.json()["session"] == "p01" and r.json()["models"][0]["model"] == "tiny@3"
    assert client.post("/sessions", json=BODY).status_code == 409
    assert [s["session"] for s in client.get("/sessions").json()["sessions"]] == ["p01"]
    assert client.get("/sessions/p01").json()["match"] == {"source_id_prefix": "p01-"}
    assert client.delete("/sessions/p01").status_code == 204
    assert client.get("/sessions/p01").status_code == 404
    assert client.delete("/sessions/p01").status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"match": {"source_id_prefix": "x"}}, "session"),
        ({**BODY, "session": "bad id!"}, "session id"),
        ({**BODY, "match": {}}, "match needs one of"),
        ({**BODY, "match": {"colour": "red"}}, "colour"),
        ({**BODY, "models": ["nope"]}, "unknown model(s) ['nope']"),
        ({**BODY, "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_422_with_a_message(client: TestClient, body: dict, fragment: str) -> None:  # type: ignore[type-arg]
    r = client.post("/sessions", json=body)
    assert r.status_code == 422
    assert fragment in json.dumps(r.json())


def test_not_json_is_422(client: TestClient) -> None:
    r = client.post("/sessions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_unknown_session_websocket_closes_4404(client: TestClient) -> None:
    with (
        client.websocket_connect(f"/ws/sessions/nobody?token={TOKEN}") as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_json()
    assert info.value.code == 4404 and "no session 'nobody'" in info.value.reason


def _next_answer(ws: Any) -> dict[str, Any]:
    """The next message that is not a state change the session announces on its own (models and
    streams report their state as it changes, interleaved with the answers)."""
    while True:
        message: dict[str, Any] = ws.receive_json()
        if message["type"] not in ("model_status", "session_status", "status"):
            return message


def test_malformed_client_message_gets_an_error_and_the_socket_stays(client: TestClient) -> None:
    assert client.post("/sessions", json=BODY).status_code == 201
    with client.websocket_connect(f"/ws/sessions/p01?token={TOKEN}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["models"] == ["tiny@3"]
        ws.send_text("{this is not json")
        assert _next_answer(ws)["type"] == "error"
        ws.send_text(json.dumps({"type": "ping"}))
        assert _next_answer(ws)["type"] == "pong"
        client.delete("/sessions/p01")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4410


def test_corrupt_model_is_refused_and_reported(zoo: Path) -> None:
    bad = zoo / "broken"
    write_tiny_model(bad)
    (bad / "model.onnx").write_bytes(b"garbage")
    with TestClient(create_app(Settings(model_dir=zoo))) as c:
        body = c.get("/models").json()
        assert [m["name"] for m in body["models"]] == ["tiny"]
        assert "differs from the contract" in body["refused"]["broken"]


def test_explicitly_requested_corrupt_model_stops_start_up(zoo: Path) -> None:
    from affectstream.models.runner import ModelLoadError

    bad = zoo / "broken"
    write_tiny_model(bad)
    (bad / "model.json").write_text("{}")
    with (
        pytest.raises(ModelLoadError, match="contract_version"),
        TestClient(create_app(Settings(model_dir=zoo, models=("broken",)))),
    ):
        pass
