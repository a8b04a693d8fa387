"""What a session request may say about the sensors (channel labels, units) and what the service
says back about its models (needs, states), without LSL: the real app with its lifespan."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from affectstream.service.app import create_app
from affectstream.service.messages import parse_server_message
from affectstream.service.settings import Settings

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import write_tiny_model

MATCH = {"source_id_prefix": "nowhere-"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    write_tiny_model(tmp_path / "zoo" / "tiny")
    with TestClient(create_app(Settings(model_dir=tmp_path / "zoo"))) as c:
        yield c


def _post(client: TestClient, **extra: Any) -> Any:
    return client.post("/sessions", json={"session": "s1", "match": MATCH, **extra})


def test_models_say_which_stream_types_they_need(client: TestClient) -> None:
    (model,) = client.get("/models").json()["models"]
    assert model["needs"] == ["GSR"]


def test_eeg_labels_are_checked_and_refused_naming_them(client: TestClient) -> None:
    r = _post(client, channels={"EEG": ["Fp1", "Xy9", "Cz", "cz", "T3", "T7"]})
    assert r.status_code == 422
    text = r.text
    assert "'Xy9'" in text  # the unknown label
    assert "Cz" in text and "'cz'" in text  # a duplicate in another case
    assert "T7" in text and "'T3'" in text  # the old name of the same electrode
    assert client.get("/sessions").json()["sessions"] == []  # nothing half-created


def test_units_other_than_skin_conductance_units_are_refused(client: TestClient) -> None:
    r = _post(client, units={"GSR": "furlongs"})
    assert r.status_code == 422 and "furlongs" in r.text


def test_accepted_labels_and_units_are_kept_in_canonical_form(client: TestClient) -> None:
    r = _post(client, channels={"eeg": ["fp1", "AF3", "t3"]}, units={"EDA": "kOhm"})
    assert r.status_code == 201, r.text
    overrides = r.json()["overrides"]
    assert overrides["channels"] == {"EEG": ["Fp1", "AF3", "T7"]}
    assert overrides["units"] == {"GSR": "kOhm"}


def test_a_session_without_its_streams_says_what_is_missing(client: TestClient) -> None:
    assert _post(client).status_code == 201
    described = client.get("/sessions/s1").json()
    assert described["served"] is False
    assert "tiny@3 waiting for a GSR stream" in described["unserved"]
    (model,) = described["models"]
    assert (model["status"], model["reason"]) == ("waiting", "waiting for a GSR stream")
    with client.websocket_connect("/ws/sessions/s1") as ws:
        hello = ws.receive_json()
    parse_server_message(hello)  # valid against the published schema
    assert hello["session_state"] == "unserved"
    assert "waiting for a GSR stream" in hello["reason"]
    assert hello["model_status"] == [
        {
            "model": "tiny@3",
            "state": "waiting",
            "reason": "waiting for a GSR stream",
            "coverage": None,
        }
    ]
