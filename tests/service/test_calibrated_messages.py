"""Messages carry calibrated probabilities (issue #19): one GSR device → a real uvicorn service
serving the same ONNX graph twice, once with a calibration in its contract and once without →
a real ``websockets`` client. For every window both models scored, the calibrated model's values
are the raw model's passed through its temperatures, ``sigmoid(logit(p) / T)``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_service import gsr_contract, run_service, write_gsr_onnx
from producers import Device, skin_conductance

from affectstream.models.contract import Calibration, file_sha256
from affectstream.service.settings import Settings

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl]

T_VALENCE, T_AROUSAL = 3.0, 0.5


def _model(folder: Path, name: str, calibration: Calibration | None) -> None:
    folder.mkdir(parents=True)
    write_gsr_onnx(folder / "model.onnx")
    contract = gsr_contract(name, "1", file_sha256(folder / "model.onnx"))
    (folder / "model.json").write_text(
        dataclasses.replace(contract, calibration=calibration).to_json()
    )


def _calibrated(p: float, t: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return 1.0 / (1.0 + math.exp(-math.log(p / (1 - p)) / t))


async def _predictions(url: str, n: int, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message["type"] == "prediction":
                out.append(message)
    return out


@pytest.mark.timeout(90)
def test_messages_carry_the_contracts_calibration(tmp_path: Path, session_name: str) -> None:
    models = tmp_path / "models"
    _model(models / "raw", "gsr-raw", None)
    _model(models / "cal", "gsr-cal", Calibration(temperature=(T_VALENCE, T_AROUSAL)))
    settings = Settings(model_dir=models, models=("raw", "cal"))
    device = Device(session_name, [skin_conductance("gsr", "GSR", 16.0, label="GSR", unit="µS")])
    with device, run_service(settings) as live:
        body = {"session": session_name, "match": {"source_id_prefix": session_name + "-"}}
        req = urllib.request.Request(
            live.url + "/sessions",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201
        described = {f"{m['name']}@{m['version']}": m for m in live.get_json("/models")["models"]}
        assert described["gsr-cal@1"]["calibration"]["temperature"] == {
            "valence": T_VALENCE,
            "arousal": T_AROUSAL,
        }
        assert "calibration" not in described["gsr-raw@1"]
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}"
        messages = asyncio.run(_predictions(url, 24, timeout=30))
    by_window: dict[float, dict[str, dict[str, Any]]] = {}
    for m in messages:
        by_window.setdefault(round(m["window"]["end"], 6), {})[m["model"]] = m
    pairs = [w for w in by_window.values() if {"gsr-raw@1", "gsr-cal@1"} <= set(w)]
    assert len(pairs) >= 5, f"{len(messages)} messages, {len(pairs)} windows scored by both"
    moved = 0
    for w in pairs:
        raw, cal = w["gsr-raw@1"], w["gsr-cal@1"]
        for dim, t in (("valence", T_VALENCE), ("arousal", T_AROUSAL)):
            assert cal[dim] == pytest.approx(_calibrated(raw[dim], t), abs=2e-6), (dim, raw, cal)
            assert (cal[dim] > 0.5) == (raw[dim] > 0.5) or raw[dim] == 0.5
            moved += abs(cal[dim] - raw[dim]) > 1e-3
    assert moved > 0  # the temperatures did change the served values
