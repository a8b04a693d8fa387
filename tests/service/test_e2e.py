"""End to end: real LSL replay → real uvicorn service → real `websockets` client."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_service import replay_log, run_replay, run_service, wait_until, write_gsr_model

from affectstream.service.settings import Settings

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl]

TOKEN = "e2e-test-token-0123456789"


async def _collect(url: str, n_predictions: int, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while sum(m["type"] == "prediction" for m in out) < n_predictions:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
    return out


@pytest.mark.serial  # the hop rate holds only when the machine is not saturated
@pytest.mark.timeout(120)
def test_predictions_arrive_at_the_hop_rate_with_the_schema(
    synthetic_dir: Path, session_name: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_gsr_model(tmp_path / "zoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "zoo", auto_attach=True, token=TOKEN)
    with (
        # hold the replay's clock until the service listens, so the first trial marker (ground
        # truth for the online score) is not published before anyone can receive it
        run_replay(
            synthetic_dir / "s01.dat",
            session_name,
            cli_env,
            "--wait-for-consumers",
            "15",
            log_dir=tmp_path,
        ),
        run_service(settings) as live,
    ):
        try:
            wait_until(lambda: session_name in live.state.sessions, 20, what="auto-attach")
        except TimeoutError:
            pytest.fail(replay_log(session_name, tmp_path))
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}?token={TOKEN}"
        messages = asyncio.run(_collect(url, 24, timeout=40))
        detail = live.get_json(f"/sessions/{session_name}", token=TOKEN)
    assert messages[0]["type"] == "hello"
    preds = [m for m in messages if m["type"] == "prediction"]
    assert len(preds) >= 24, detail
    keys = {
        "type",
        "schema",
        "session",
        "seq",
        "model",
        "window",
        "valence",
        "arousal",
        "quality",
        "latency_ms",
        "emitted_at",
    }
    for m in preds:
        assert keys <= set(m), m
        assert m["schema"] == 1 and m["session"] == session_name and m["model"] == "gsr-tiny@1"
        assert 0.0 <= m["valence"] <= 1.0 and 0.0 <= m["arousal"] <= 1.0
        assert set(m["latency_ms"]) == {"ingest", "preprocess", "inference", "total"}
        assert m["latency_ms"]["total"] >= m["latency_ms"]["inference"] >= 0
        assert m["window"]["end"] - m["window"]["start"] == pytest.approx(2.0)
        assert m["quality"]["GSR"]["state"] in ("ok", "recovered")
    seqs = [m["seq"] for m in preds]
    assert all(b > a for a, b in itertools.pairwise(seqs))
    ends = [m["window"]["end"] for m in preds]
    # one window every hop (0.25 s) on the LSL clock, none skipped
    assert [round(b - a, 6) for a, b in itertools.pairwise(ends)] == [0.25] * (len(ends) - 1)
    assert detail["models"][0]["coalesced"] == 0
    assert detail["models"][0]["online_score"]["windows"] > 0  # scored against the markers
    # the session's inputs go through its shared states (one model: one state, nothing read)
    shared = detail["shared_inputs"]
    assert shared["states"] == 1 and shared["computed"] >= len(preds) and shared["reused"] == 0
    assert shared["missed"] == 0 and shared["private"] == 0


@pytest.mark.serial  # as above: the hop rate holds only when the machine is not saturated
@pytest.mark.timeout(120)
def test_the_streams_wake_the_scheduler_between_its_ticks(
    synthetic_dir: Path, session_name: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """#16: with a one-second tick every window is still served on its own, soon after its last
    sample: the session's streams wake the scheduler when they reach a window's end. Without the
    wake, each tick would find four windows due and serve only the newest (coalesced)."""
    write_gsr_model(tmp_path / "zoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "zoo", auto_attach=True, token=TOKEN, tick_s=1.0)
    with (
        run_replay(synthetic_dir / "s01.dat", session_name, cli_env, log_dir=tmp_path),
        run_service(settings) as live,
    ):
        try:
            wait_until(lambda: session_name in live.state.sessions, 20, what="auto-attach")
        except TimeoutError:
            pytest.fail(replay_log(session_name, tmp_path))
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}?token={TOKEN}"
        messages = asyncio.run(_collect(url, 20, timeout=40))
        detail = live.get_json(f"/sessions/{session_name}", token=TOKEN)
        assert live.state.scheduler is not None
        wakes = live.state.scheduler.wakes_total
    preds = [m for m in messages if m["type"] == "prediction"][1:]  # the first: a tick's
    assert len(preds) >= 16, detail
    ends = [m["window"]["end"] for m in preds]
    assert [round(b - a, 6) for a, b in itertools.pairwise(ends)] == [0.25] * (len(ends) - 1)
    assert detail["models"][0]["coalesced"] == 0 and wakes >= len(preds)
    # found due well within the tick: the median ingest stage (last sample → found due)
    ingest = sorted(m["latency_ms"]["ingest"] for m in preds)
    assert ingest[len(ingest) // 2] < 150, ingest


@pytest.mark.timeout(120)
def test_a_stream_that_goes_away_gives_a_status_message_not_a_crash(
    synthetic_dir: Path, session_name: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_gsr_model(tmp_path / "zoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "zoo", token=TOKEN)
    with run_service(settings) as live:
        import urllib.request

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
            async with websockets.connect(url) as ws:
                with run_replay(synthetic_dir / "s01.dat", session_name, cli_env, log_dir=tmp_path):
                    while sum(m["type"] == "prediction" for m in seen) < 4:
                        seen.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
                # the replay process has been stopped: its streams vanish
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    seen.append(m)
                    if m["type"] == "status" and m["state"] in ("stale", "lost"):
                        break
                await ws.send(json.dumps({"type": "ping"}))
                while (m := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "pong":
                    seen.append(m)
            return seen

        seen = asyncio.run(scenario())
        assert live.get_json("/health", token=TOKEN) == {"status": "ok"}  # still serving
    gone = [m for m in seen if m["type"] == "status" and m["state"] in ("stale", "lost")]
    assert gone, [m["type"] for m in seen]
    assert gone[0]["stream"]["type"] in ("EEG", "GSR", "PPG", "RESP", "AUX", "Markers")
    assert gone[0]["session"] == session_name and gone[0]["schema"] == 1
