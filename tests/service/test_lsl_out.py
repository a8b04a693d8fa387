"""Predictions as LSL streams (issue #18: ``serve --lsl-out``, ``"lsl_out"`` in ``POST /sessions``):
a device-like GSR producer (tests/service/producers.py) → real uvicorn service → an independent
``pylsl`` inlet, checked against a real ``websockets`` client of the same session: the same values,
stamped with the window's end, a description naming session and model, and the stream gone with
the session."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylsl
import pytest
import websockets
from live_service import LiveService, run_service, wait_until, write_gsr_model
from producers import Device, skin_conductance
from pylsl.util import LostError

import affectstream.service.sessions as sessions_module
from affectstream.models.runner import ModelRunner
from affectstream.service.sessions import LSL_OUT_TYPE, PredictionOutlets, session_phase
from affectstream.service.settings import Settings
from affectstream.streaming.lsl.outlet import OutletSpec

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl]

MODEL = "gsr-tiny@1"


def _gsr(session: str) -> Device:
    return Device(session, [skin_conductance("gsr", "GSR", 16.0, label="GSR", unit="µS")])


def _request(live: LiveService, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        live.url + path, data, {"Content-Type": "application/json"}, method=method
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return r.status, json.loads(raw) if raw else None


def _create(live: LiveService, session: str, prefix: str, **extra: Any) -> dict[str, Any]:
    body = {"session": session, "match": {"source_id_prefix": prefix + "-"}, **extra}
    status, answer = _request(live, "POST", "/sessions", body)
    assert status == 201, answer
    assert isinstance(answer, dict)
    return answer


async def _predictions(url: str, n: int, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
            if message["type"] == "prediction":
                out.append(message)
    return out


def _pull_until(
    inlet: Any, done: Callable[[list[tuple[list[float], float]]], bool], timeout: float
) -> list[tuple[list[float], float]]:
    got: list[tuple[list[float], float]] = []
    deadline = time.monotonic() + timeout
    while not done(got) and time.monotonic() < deadline:
        samples, stamps = inlet.pull_chunk(timeout=0.2)
        got += list(zip(samples, stamps, strict=True))
    return got


def _desc(info: Any) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    desc = info.desc()
    top = {
        key: desc.child_value(key)
        for key in ("session", "model", "model_name", "model_version", "schema", "hop_s")
    }
    channels = []
    ch = desc.child("channels").child("channel")
    while not ch.empty():
        channels.append((ch.child_value("label"), ch.child_value("type"), ch.child_value("unit")))
        ch = ch.next_sibling()
    return top, channels


@pytest.mark.timeout(90)
def test_an_independent_inlet_receives_the_predictions_at_the_window_ends(
    tmp_path: Path, session_name: str
) -> None:
    model = write_gsr_model(tmp_path / "models" / "gsr-tiny")
    settings = Settings(model_dir=model.parent, models=(model.name,))
    source_id = f"affectstream/{session_name}/{MODEL}"
    with _gsr(session_name) as device, run_service(settings) as live:
        created = _create(live, session_name, session_name, lsl_out=True)
        assert created["lsl_out"] is True
        outlet = created["models"][0]["lsl_outlet"]
        assert outlet == {
            "name": f"affectstream-{session_name}-{MODEL}",
            "type": LSL_OUT_TYPE,
            "source_id": source_id,
            "open": False,  # opened at the model's first prediction
            "samples": 0,
        }

        # the outlet appears with the first prediction (2 s of GSR, then the hop)
        found = pylsl.resolve_byprop("source_id", source_id, 1, 20.0)
        assert len(found) == 1, f"no stream {source_id}; device error {device.error}"
        inlet = pylsl.StreamInlet(
            found[0], max_buflen=60, recover=False, processing_flags=pylsl.proc_clocksync
        )
        inlet.open_stream(5.0)
        info = inlet.info(5.0)
        assert (info.name(), info.type(), info.source_id()) == (
            outlet["name"],
            "Affect",
            source_id,
        )
        assert info.nominal_srate() == 0.0  # irregular: coalesced or withheld windows leave gaps
        assert info.channel_format() == pylsl.cf_float32 and info.channel_count() == 4
        top, channels = _desc(info)
        assert top == {
            "session": session_name,
            "model": MODEL,
            "model_name": "gsr-tiny",
            "model_version": "1",
            "schema": "1",
            "hop_s": "0.25",
        }
        assert channels == [
            ("valence", "Valence", "probability"),
            ("arousal", "Arousal", "probability"),
            ("streams_ok", "Quality", "boolean"),
            ("coverage", "Quality", "fraction"),
        ]

        # the same session over WebSocket, from now on
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}"
        predictions = asyncio.run(_predictions(url, 10, timeout=20))
        assert len(predictions) == 10
        last_end = predictions[-1]["window"]["end"]
        pulled = _pull_until(inlet, lambda got: any(t >= last_end - 0.001 for _, t in got), 10)
        assert pulled, "the inlet received nothing"

        phase = session_phase(session_name)  # the session's windows end on its own grid
        for p in predictions:
            end = p["window"]["end"]
            offset = (end / 0.25 - phase) % 1.0
            assert min(offset, 1.0 - offset) < 1e-6, f"{end} is not on the grid of phase {phase}"
            near = [(x, t) for x, t in pulled if abs(t - end) <= 0.001]  # clock-corrected stamps
            assert len(near) == 1, f"window ending {end}: LSL samples {near} (pulled {len(pulled)})"
            values, _ = near[0]
            assert values[0] == pytest.approx(p["valence"], abs=1e-6)  # float32 on the wire
            assert values[1] == pytest.approx(p["arousal"], abs=1e-6)
            assert 0.0 <= values[0] <= 1.0 and 0.0 <= values[1] <= 1.0
            ok = all(q["state"] == "ok" for q in p["quality"].values())
            assert values[2] == (1.0 if ok else 0.0)
            assert values[3] == 1.0  # a full montage: no coverage in the message
        # one sample per prediction: the stamps increase
        stamps = [t for _, t in pulled]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

        row = live.get_json(f"/sessions/{session_name}")["models"][0]["lsl_outlet"]
        assert row["open"] is True and row["samples"] >= len(pulled)

        # the session's end is the stream's end
        status, _ = _request(live, "DELETE", f"/sessions/{session_name}")
        assert status == 204
        lost = False
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            try:
                inlet.pull_chunk(timeout=0.2)
            except LostError:
                lost = True
        assert lost, "the inlet did not see the outlet go"
        assert pylsl.resolve_byprop("source_id", source_id, 0, 1.5) == []
        inlet.close_stream()


@pytest.mark.timeout(90)
def test_the_setting_and_the_session_body_decide_which_sessions_publish(
    tmp_path: Path, session_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lsl_out`` on for the service: a session that says ``"lsl_out": false`` opens no outlet,
    one that says nothing opens one; with the setting off (the default) nothing is opened."""
    opened: list[str] = []
    real_open = sessions_module.open_outlet

    def recording_open(spec: OutletSpec) -> Any:
        opened.append(spec.source_id)
        return real_open(spec)

    monkeypatch.setattr(sessions_module, "open_outlet", recording_open)
    model = write_gsr_model(tmp_path / "models" / "gsr-tiny")
    on, off, default = (f"{session_name}-{k}" for k in ("on", "off", "default"))

    def predicted(live: LiveService, *sessions: str) -> Callable[[], bool]:
        def check() -> bool:
            rows = [live.get_json(f"/sessions/{s}")["models"][0] for s in sessions]
            return all(r["predictions"] >= 3 for r in rows)

        return check

    with _gsr(session_name):
        settings = Settings(model_dir=model.parent, models=(model.name,), lsl_out=True)
        with run_service(settings) as live:
            assert _create(live, off, session_name, lsl_out=False)["lsl_out"] is False
            assert _create(live, on, session_name)["lsl_out"] is True
            wait_until(predicted(live, on, off), 20, what="predictions in both sessions")
            assert opened == [f"affectstream/{on}/{MODEL}"]
            described = live.get_json(f"/sessions/{off}")
            assert "lsl_outlet" not in described["models"][0]
            assert live.state.sessions[off].lsl_out is None
            assert pylsl.resolve_byprop("source_id", f"affectstream/{off}/{MODEL}", 0, 1.0) == []

        opened.clear()
        with run_service(Settings(model_dir=model.parent, models=(model.name,))) as live:
            assert _create(live, default, session_name)["lsl_out"] is False
            wait_until(predicted(live, default), 20, what="predictions")
            assert live.state.sessions[default].lsl_out is None
        assert opened == []


def test_a_closed_session_opens_no_outlet_and_pushes_nothing(
    tmp_path: Path, session_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler may still hold a window of a session being deleted: a push after
    :meth:`PredictionOutlets.close` neither opens nor pushes."""
    opened: list[OutletSpec] = []
    monkeypatch.setattr(sessions_module, "open_outlet", lambda spec: opened.append(spec))
    runner = ModelRunner(write_gsr_model(tmp_path / "gsr-tiny"), providers=["CPUExecutionProvider"])
    outlets = PredictionOutlets(session_name, [runner])
    outlets.close()
    outlets.push(MODEL, 12.5, (0.4, 0.6), {"GSR": {"state": "ok"}}, None)
    assert opened == []
    assert outlets.describe(MODEL)["open"] is False
    assert outlets.describe(MODEL)["samples"] == 0
