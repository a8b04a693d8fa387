"""Issue #15, fuzzing in the suite: Schemathesis against the OpenAPI document of a real running
service, and a Hypothesis-driven WebSocket fuzzer sending random frames (text, JSON, binary,
huge, deeply nested, invalid UTF-8) to it.

Both run while a live session (the tiny GSR model on an outlet published here) is watched by a
WebSocket client, and both assert: no 5xx, no connection dropped without a close code, and the
live session still served at normal latency (p95 of ``latency_ms.total`` under 250 ms) during
and after. Bounded in time: a few dozen examples each, well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_service import LiveService
from test_hardening import TOKEN, PredictionWatch, live_gsr_service

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl, pytest.mark.slow]

FUZZ_SETTINGS = {"max_subscribers": 64, "max_sessions": 8}


@pytest.fixture
def watched(tmp_path: Path, session_name: str) -> Iterator[tuple[LiveService, PredictionWatch]]:
    with (
        live_gsr_service(tmp_path, session_name, **FUZZ_SETTINGS) as live,
        PredictionWatch(live.port, session_name) as watch,
    ):
        watch.wait_for(4, 20)
        yield live, watch


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


@pytest.mark.timeout(120)
def test_schemathesis_finds_no_server_error(
    watched: tuple[LiveService, PredictionWatch], tmp_path: Path
) -> None:
    live, watch = watched
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            _schemathesis(),
            "run",
            f"{live.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--max-time",
            "30",
            "--seed",
            "15",
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path / "schemathesis"),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its own state folder (.schemathesis/) goes there, not into the checkout
    )
    output = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, output
    assert "Fuzzing" in output and "passed" in output, output
    assert live.get_json("/health", token=TOKEN) == {"status": "ok"}
    time.sleep(2)
    watch.check_served(t0, time.monotonic() - t0)


# -- the WebSocket fuzzer --------------------------------------------------------------------------

Frame = tuple[str, Any]  # ("text", str) | ("bytes", bytes)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FRAMES: st.SearchStrategy[Frame] = st.one_of(
    st.text(max_size=200).map(lambda t: ("text", t)),
    _json_values.map(lambda v: ("text", json.dumps(v))),
    st.dictionaries(st.sampled_from(["type", "session", "x"]), _json_values, max_size=3).map(
        lambda d: ("text", json.dumps(d))
    ),
    st.just(("text", '{"type": "ping"}')),
    st.binary(max_size=300).map(lambda b: ("bytes", b)),
    st.integers(1, 3000).map(lambda n: ("text", "[" * n + "]" * n)),
    st.integers(1, 2000).map(lambda n: ("text", '{"a":' * n + "1" + "}" * n)),
    st.integers(4097, 200_000).map(lambda n: ("text", "x" * n)),  # over max_ws_message_bytes
    st.integers(4097, 200_000).map(lambda n: ("bytes", b"\0" * n)),
)
INVALID_UTF8 = st.sampled_from([b"\xff\xfe", b"\xc3\x28", b'{"type": "ping"\xed\xa0\x80}'])
"""Text frames that are not UTF-8: the protocol fails the connection (close 1007), so one comes
last in an example (sent after it, a frame would meet a closed socket before the close frame
is read)."""
CLOSE_CODES = {1007, 1008, 1009}
"""Documented closes a fuzzed client may get: invalid UTF-8 in a text frame (the protocol's),
the message rate, a message too big."""


async def _exchange(url: str, frames: list[Frame], invalid: bytes | None) -> str:
    """Connect, send ``frames``, then ``invalid`` as a text frame or else a ping; ``"pong"`` if
    answered, else the close code received. A connection that ends without a close frame fails
    the example."""
    closed: websockets.ConnectionClosed | None = None
    async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"
        try:
            for _kind, data in frames:
                await ws.send(data)
            if invalid is not None:
                await ws.send(invalid, text=True)  # bytes as a text frame: not UTF-8
            else:
                await ws.send('{"type": "ping"}')
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert m["type"] in ANSWERS, m
                if m["type"] == "pong" and invalid is None:
                    return "pong"
        except websockets.ConnectionClosed as e:
            closed = e
    assert closed is not None
    assert closed.rcvd is not None, f"dropped without a close frame after {frames!r:.300}"
    assert closed.rcvd.code in CLOSE_CODES, (closed.rcvd.code, closed.rcvd.reason)
    return str(closed.rcvd.code)


ANSWERS = ("pong", "error", "prediction", "status", "model_status", "session_status")


@pytest.mark.timeout(120)
def test_websocket_fuzzing_gets_answers_or_documented_closes(
    watched: tuple[LiveService, PredictionWatch], session_name: str
) -> None:
    live, watch = watched
    url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}?token={TOKEN}"
    outcomes: list[str] = []
    t0 = time.monotonic()

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(FRAMES, max_size=5), st.none() | INVALID_UTF8)
    def fuzz(frames: list[Frame], invalid: bytes | None) -> None:
        outcomes.append(asyncio.run(_exchange(url, frames, invalid)))

    fuzz()
    assert "pong" in outcomes and set(outcomes) - {"pong"}, outcomes  # both paths exercised
    assert live.get_json("/health", token=TOKEN) == {"status": "ok"}
    time.sleep(2)
    watch.check_served(t0, time.monotonic() - t0)
