"""Issue #15, hardening: bounds, secrets out of the logs, browser safety, every bad input a 4xx
or a documented close code. Each test names the finding it covers.

Fast tests use the in-process test client; the ones marked ``lsl`` run a real uvicorn server
(``live_service.run_service``) with LSL outlets published from this process
(:class:`GsrOutlet`, also used by ``test_fuzz.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from fastapi.testclient import TestClient
from live_service import LiveService, run_service, wait_until, write_gsr_model
from starlette.websockets import WebSocketDisconnect

from affectstream.service.app import create_app
from affectstream.service.settings import Settings

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from tiny_models import write_tiny_model

TOKEN = "hardening-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(session: str = "p01", models: list[str] | None = None) -> dict[str, Any]:
    return {
        "session": session,
        "match": {"source_id_prefix": f"{session}-"},
        "models": ["tiny"] if models is None else models,
    }


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    write_tiny_model(tmp_path / "zoo" / "tiny")
    return tmp_path / "zoo"


def make_client(zoo: Path, **settings: Any) -> TestClient:
    settings.setdefault("token", TOKEN)
    return TestClient(create_app(Settings(model_dir=zoo, **settings)))


# -- LSL outlets and a prediction watch for the live tests --------------------------------------


class GsrOutlet:
    """An outlet ``source_id`` of type GSR (16 Hz, µS), fed ~4.5 µS in real time from a thread;
    ``labels=None`` describes no channels."""

    def __init__(
        self, source_id: str, n_channels: int = 1, labels: tuple[str, ...] | None = ("GSR",)
    ) -> None:
        self.source_id, self.n_channels, self.labels = source_id, n_channels, labels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outlet: Any = None

    def __enter__(self) -> GsrOutlet:
        import pylsl

        info = pylsl.StreamInfo(
            self.source_id, "GSR", self.n_channels, 16.0, "float32", self.source_id
        )
        if self.labels is not None:
            channels = info.desc().append_child("channels")
            for label in self.labels:
                ch = channels.append_child("channel")
                ch.append_child_value("label", label)
                ch.append_child_value("unit", "microsiemens")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import pylsl

        next_k = math.ceil(pylsl.local_clock() * 16.0)
        while not self._stop.wait(0.03):
            due = math.floor(pylsl.local_clock() * 16.0)
            if due < next_k:
                continue
            t = np.arange(next_k, due + 1, dtype=np.float64) / 16.0
            values = 4.5 + 0.3 * np.sin(2 * np.pi * t / 7.0)
            chunk = np.repeat(values[:, None], self.n_channels, axis=1).astype(np.float32)
            self.outlet.push_chunk(chunk, t.tolist())
            next_k = due + 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.outlet = None  # the outlet goes away with its last reference


def post(live: LiveService, path: str, payload: Any, token: str = TOKEN) -> tuple[int, Any]:
    """POST JSON (or raw bytes) → (status, parsed body or text)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        live.url + path,
        data,
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


class PredictionWatch:
    """A WebSocket client of one session in a thread: the arrival time and ``latency_ms.total``
    of every prediction, and whether the connection ended."""

    def __init__(self, port: int, session: str, token: str = TOKEN) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/sessions/{session}?token={token}"
        self.seen: list[tuple[float, float]] = []
        self.ended: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        try:
            async with websockets.connect(self.url, open_timeout=10) as ws:
                while not self._stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    m = json.loads(raw)
                    if m["type"] == "prediction":
                        self.seen.append((time.monotonic(), m["latency_ms"]["total"]))
        except BaseException as e:
            self.ended = e

    def __enter__(self) -> PredictionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def since(self, t0: float) -> list[float]:
        return [total for t, total in list(self.seen) if t >= t0]

    def wait_for(self, n: int, timeout: float) -> None:
        wait_until(lambda: len(self.seen) >= n, timeout, what=f"{n} predictions")

    def check_served(self, t0: float, seconds: float, p95_ms: float = 250.0) -> None:
        """Since ``t0`` (``seconds`` ago at most): predictions at ≥ 70 % of the hop rate (4/s),
        p95 of ``latency_ms.total`` under ``p95_ms``, connection still open."""
        totals = self.since(t0)
        assert self.ended is None, f"the live session's WebSocket ended: {self.ended!r}"
        assert len(totals) >= 0.7 * 4 * seconds, f"{len(totals)} predictions in {seconds:.1f} s"
        p95 = float(np.percentile(totals, 95))
        assert p95 < p95_ms, f"latency p95 {p95:.0f} ms ({sorted(totals)[-5:]})"


def _declare_body(port: int, size: int) -> bytes:
    """Send a POST's headers declaring a ``size``-byte body, none of it; the status line."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        return sock.recv(200)


@contextmanager
def live_gsr_service(tmp_path: Path, prefix: str, **settings: Any) -> Iterator[LiveService]:
    """A real service with the tiny GSR model and a session ``<prefix>`` on outlet
    ``<prefix>-GSR`` (published here)."""
    write_gsr_model(tmp_path / "gsrzoo" / "gsr")
    settings.setdefault("token", TOKEN)
    with (
        GsrOutlet(f"{prefix}-GSR"),
        run_service(Settings(model_dir=tmp_path / "gsrzoo", **settings)) as live,
    ):
        status, answer = post(live, "/sessions", body(prefix, ["gsr"]))
        assert status == 201, answer
        yield live


# == 1. bounds ===================================================================================


def test_sessions_are_capped_429(zoo: Path) -> None:
    """Finding: no session cap (1000 POSTed sessions → 1000 threads)."""
    with make_client(zoo, max_sessions=3) as c:
        c.headers.update(AUTH)
        for i in range(3):
            assert c.post("/sessions", json=body(f"s{i}")).status_code == 201
        r = c.post("/sessions", json=body("s3"))
        assert r.status_code == 429 and "max_sessions" in r.json()["detail"]
        assert c.delete("/sessions/s0").status_code == 204
        assert c.post("/sessions", json=body("s3")).status_code == 201


def test_models_per_session_bounded_and_duplicates_refused(zoo: Path) -> None:
    """Finding: the same model 16 times in one session accepted."""
    write_tiny_model(zoo / "tiny2")
    with make_client(zoo, max_models_per_session=1) as c:
        c.headers.update(AUTH)
        r = c.post("/sessions", json=body(models=["tiny", "tiny"]))
        assert r.status_code == 422 and "each model once" in r.text
        r = c.post("/sessions", json=body(models=["tiny", "tiny2"]))
        assert r.status_code == 422 and "max_models_per_session" in r.text
        r = c.post("/sessions", json=body(models=["tiny"] * 16))
        assert r.status_code == 422
    with make_client(zoo) as c:
        c.headers.update(AUTH)
        # one model by two of its names is still the model twice
        r = c.post("/sessions", json=body(models=["tiny", "tiny@3"]))
        assert r.status_code == 422 and "more than once" in r.text


def test_subscribers_per_session_capped_1013(zoo: Path) -> None:
    """Bound: WebSocket clients per session; the one past the bound is closed with 1013."""
    with make_client(zoo, max_subscribers=2) as c:
        c.headers.update(AUTH)
        assert c.post("/sessions", json=body()).status_code == 201
        url = f"/ws/sessions/p01?token={TOKEN}"
        with c.websocket_connect(url) as a, c.websocket_connect(url) as b:
            assert a.receive_json()["type"] == "hello" and b.receive_json()["type"] == "hello"
            with c.websocket_connect(url) as third, pytest.raises(WebSocketDisconnect) as info:
                third.receive_json()
            assert info.value.code == 1013 and "max_subscribers" in info.value.reason
        with c.websocket_connect(url) as again:  # the places are free again
            assert again.receive_json()["type"] == "hello"


def test_request_body_over_the_bound_is_413_before_parsing(zoo: Path) -> None:
    """Finding: bodies unbounded (10 MB accepted), also without Content-Length."""
    with make_client(zoo, max_body_bytes=4096) as c:
        c.headers.update(AUTH)
        big = json.dumps({**body(), "models": ["tiny"] * 2000}).encode()
        r = c.post("/sessions", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length
            for _ in range(100):
                yield b" " * 1000

        r = c.post("/sessions", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        # within the bound: parsed as before
        assert c.post("/sessions", json=body()).status_code == 201
        t0 = time.monotonic()
        r = c.post("/sessions", content=b"x" * 10_000_000)
        assert r.status_code == 413 and time.monotonic() - t0 < 5


def _drain(ws: Any, into: list[dict[str, Any]]) -> None:
    """Receive until the server closes (``WebSocketDisconnect``)."""
    while True:
        into.append(ws.receive_json())


async def _hello_then_close(ws: Any) -> None:
    """Close after the hello (or be closed); ends in ``ConnectionClosed``."""
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if m["type"] == "hello":
            await ws.close()


def test_websocket_message_too_big_closes_1009(zoo: Path) -> None:
    with make_client(zoo, max_ws_message_bytes=256) as c:
        c.headers.update(AUTH)
        assert c.post("/sessions", json=body()).status_code == 201
        with c.websocket_connect(f"/ws/sessions/p01?token={TOKEN}") as ws:
            assert ws.receive_json()["type"] == "hello"
            ws.send_text(json.dumps({"type": "ping", "pad": "x" * 300}))
            with pytest.raises(WebSocketDisconnect) as info:
                _drain(ws, [])
        assert info.value.code == 1009 and "max_ws_message_bytes" in info.value.reason


def test_websocket_message_rate_error_then_1008(zoo: Path) -> None:
    with make_client(zoo, max_ws_messages_per_s=3) as c:
        c.headers.update(AUTH)
        assert c.post("/sessions", json=body()).status_code == 201
        answers = []
        with c.websocket_connect(f"/ws/sessions/p01?token={TOKEN}") as ws:
            assert ws.receive_json()["type"] == "hello"
            for _ in range(10):
                ws.send_text('{"type": "ping"}')
            with pytest.raises(WebSocketDisconnect) as info:
                _drain(ws, answers)
        kinds = [m["type"] for m in answers if m["type"] in ("pong", "error")]
        assert kinds[:3] == ["pong"] * 3 and kinds[-1] == "error", kinds
        assert "max_ws_messages_per_s" in answers[-1]["error"]
        assert info.value.code == 1008


# == 2. secrets never in logs ====================================================================


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("websockets.client"):  # this test's own client
            self.lines.append(self.format(record))


@pytest.mark.timeout(60)
def test_token_is_never_written_to_the_server_logs(zoo: Path) -> None:
    """Finding: the token written to the access log (the dashboard sends ?token= every 3 s)."""
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error", "uvicorn", "")]
    levels = [lg.level for lg in loggers]
    wrong = "not-the-token-but-secret-too"
    with run_service(Settings(model_dir=zoo, token=TOKEN)) as live:
        for lg in loggers:
            lg.addHandler(handler)
            lg.setLevel(logging.DEBUG)
        try:
            assert live.get_json("/health", token=TOKEN) == {"status": "ok"}
            assert live.get_json(f"/sessions?x=1&token={TOKEN}&y=2")["sessions"] == []
            request = urllib.request.Request(live.url + "/health", headers=AUTH)
            assert urllib.request.urlopen(request, timeout=5).status == 200
            request = urllib.request.Request(
                live.url + "/health", headers={"X-Affectstream-Token": TOKEN}
            )
            assert urllib.request.urlopen(request, timeout=5).status == 200
            with pytest.raises(urllib.error.HTTPError):
                live.get_json("/health", token=wrong)
            assert post(live, "/sessions", body(), token=TOKEN)[0] == 201

            async def sockets() -> None:
                for token in (TOKEN, wrong):
                    url = f"ws://127.0.0.1:{live.port}/ws/sessions/p01?token={token}"
                    async with websockets.connect(url) as ws:
                        with pytest.raises(websockets.ConnectionClosed):
                            await _hello_then_close(ws)

            asyncio.run(sockets())
            time.sleep(0.3)
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(handler)
                lg.setLevel(level)
    text = "\n".join(handler.lines)
    assert "/health" in text and "WebSocket" in text, text  # the lines were captured
    assert TOKEN not in text and wrong not in text, text
    assert "token=[redacted]" in text


# == 3. browser safety ===========================================================================


def test_host_header_must_name_the_service(zoo: Path) -> None:
    """Finding: ``Host: rebind.evil.example`` is served (DNS rebinding)."""
    with make_client(zoo, token=None) as c:
        assert c.get("/health", headers={"Host": "rebind.evil.example"}).status_code == 400
        assert c.get("/", headers={"Host": "rebind.evil.example:8000"}).status_code == 400
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "127.0.0.1"):
            assert c.get("/health", headers={"Host": host}).status_code == 200, host
        with (
            c.websocket_connect("/ws/sessions/p01", headers={"Host": "rebind.evil.example"}) as ws,
            pytest.raises(WebSocketDisconnect) as info,
        ):
            ws.receive_json()
        assert info.value.code == 4403
    with make_client(zoo, allowed_hosts=("lab-pc",), token=None) as c:
        assert c.get("/health", headers={"Host": "lab-pc:8000"}).status_code == 200
        assert c.get("/health", headers={"Host": "localhost:8000"}).status_code == 400
    # bound off loopback (a token is required): any name, the token protects
    assert Settings(model_dir=zoo, host="0.0.0.0", token=TOKEN).host_names() is None


def test_websocket_origin_must_be_the_services_own(zoo: Path) -> None:
    """Finding: no Origin check on the WebSocket (cross-site WebSocket hijacking)."""
    with make_client(zoo, token=None, allowed_origins=("http://lab-pc:8000",)) as c:
        assert c.post("/sessions", json=body()).status_code == 201
        for origin in ("http://evil.example", "null", "http://testserver:1234"):
            with (
                c.websocket_connect("/ws/sessions/p01", headers={"Origin": origin}) as ws,
                pytest.raises(WebSocketDisconnect) as info,
            ):
                ws.receive_json()
            assert info.value.code == 4403 and "Origin" in info.value.reason, origin
        for origin in ("http://testserver", "http://lab-pc:8000", None):
            headers = {"Origin": origin} if origin else {}
            with c.websocket_connect("/ws/sessions/p01", headers=headers) as ws:
                assert ws.receive_json()["type"] == "hello", origin
        # a cross-site form post cannot create sessions either
        r = c.post("/sessions", json=body("p02"), headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


def test_api_documents_need_the_token_and_declare_bearer(zoo: Path) -> None:
    """Finding: /docs, /redoc, /openapi.json open when a token is set."""
    with make_client(zoo) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=AUTH).status_code == 200, path
        doc = c.get("/openapi.json", headers=AUTH).json()
        schemes = doc["components"]["securitySchemes"]
        assert [s["scheme"] for s in schemes.values()] == ["bearer"]
        assert {"/", "/health", "/sessions", "/sessions/{session_id}"} <= set(doc["paths"])
        assert doc["paths"]["/sessions"]["post"]["security"]
        # the page fetches the document with the token it was opened with
        assert f"/openapi.json?token={TOKEN}" in c.get(f"/docs?token={TOKEN}").text
    with make_client(zoo, token=None) as c:  # no token: open, as the rest of the API
        assert c.get("/openapi.json").status_code == 200


def test_dashboard_has_security_headers_with_its_script_hash(zoo: Path) -> None:
    with make_client(zoo) as c:
        r = c.get("/", headers={"Host": "localhost:8000"})
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    csp = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'"
    scripts = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    assert scripts and "unsafe-inline" not in csp["script-src"]
    for s in scripts:
        digest = base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]
    assert "ws://localhost:8000" in csp["connect-src"]


# == 4. bad input: a 4xx or a documented close code =============================================


def test_non_ascii_token_is_401_not_500(zoo: Path) -> None:
    """Finding: a non-ASCII token → 500 on every protected route (compare_digest on str)."""
    with make_client(zoo) as c:
        assert c.get("/health", params={"token": "tøken-é-0123456789"}).status_code == 401
        r = c.get("/health", headers={"X-Affectstream-Token": "tøken-é".encode("latin-1")})
        assert r.status_code == 401
        r = c.get("/health", headers={"Authorization": "Bearer é€".encode()})
        assert r.status_code == 401
        with (
            c.websocket_connect("/ws/sessions/p01?token=%C3%A9%E2%82%AC") as ws,
            pytest.raises(WebSocketDisconnect) as info,
        ):
            ws.receive_json()
        assert info.value.code == 4401


def _answers(ws: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        m = ws.receive_json()
        if m["type"] in ("pong", "error"):
            out.append(m)
    return out


def test_binary_and_deeply_nested_frames_get_an_error_and_the_socket_stays(zoo: Path) -> None:
    """Finding: a binary frame (KeyError) or deeply nested JSON (RecursionError) killed the
    reader and dropped the connection without a close frame."""
    with make_client(zoo, max_ws_message_bytes=200_000, max_ws_messages_per_s=100) as c:
        c.headers.update(AUTH)
        assert c.post("/sessions", json=body()).status_code == 201
        with c.websocket_connect(f"/ws/sessions/p01?token={TOKEN}") as ws:
            assert ws.receive_json()["type"] == "hello"
            ws.send_bytes(b"\x00\xff binary")
            ws.send_text("[" * 100_000 + "]" * 100_000)
            ws.send_text('{"type": "ping"}')
            kinds = [(m["type"], m.get("error", "")) for m in _answers(ws, 3)]
            assert kinds[0][0] == "error" and "binary" in kinds[0][1]
            assert kinds[1][0] == "error" and kinds[2][0] == "pong"


@pytest.mark.parametrize("session_id", ["x" * 128, "y" * 3000, "é" * 60, "a" * 64 + "\n"])
def test_unknown_session_close_reason_fits_123_bytes(zoo: Path, session_id: str) -> None:
    """Finding: an unknown session id over ~110 bytes gave a ProtocolError instead of 4404."""
    from urllib.parse import quote

    with (
        make_client(zoo) as c,
        c.websocket_connect(f"/ws/sessions/{quote(session_id)}?token={TOKEN}") as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_json()
    assert info.value.code == 4404
    assert len(info.value.reason.encode()) <= 123
    assert info.value.reason == "no such session"


def test_short_unknown_session_is_still_named(zoo: Path) -> None:
    with (
        make_client(zoo) as c,
        c.websocket_connect(f"/ws/sessions/nobody?token={TOKEN}") as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_json()
    assert (info.value.code, info.value.reason) == (4404, "no session 'nobody'")


@pytest.mark.parametrize("session_id", ["id\n", "id\r\n", "\nid", "x" * 129])
def test_session_ids_are_matched_whole(zoo: Path, session_id: str) -> None:
    """Finding: ``"id\n"`` accepted as a session id (regex ``$``)."""
    with make_client(zoo) as c:
        c.headers.update(AUTH)
        r = c.post("/sessions", json=body() | {"session": session_id})
        assert r.status_code == 422, r.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_stimulus_features_are_422(zoo: Path, literal: str) -> None:
    """Finding: non-finite stimulus features → 500 instead of 422 (the 422 echoed the NaN and
    could not be encoded)."""
    with make_client(zoo) as c:
        c.headers.update(AUTH)
        assert c.post("/sessions", json=body()).status_code == 201
        raw = f'{{"features": [1.0, {literal}, 2.0]}}'.encode()
        headers = {"Content-Type": "application/json"}
        r = c.put("/sessions/p01/stimulus", content=raw, headers=headers)
        assert r.status_code == 422, r.text
        assert "finite" in r.text
        raw = json.dumps(body("p02") | {"stimulus": {"features": [1.0]}})[:-1]
        r = c.post("/sessions", content=(raw[:-1] + f", {literal}]}}}}").encode(), headers=headers)
        assert r.status_code == 422, r.text


def test_damaged_model_named_on_the_command_line_is_one_line_and_exit_2(
    zoo: Path, cli_env: dict[str, str]
) -> None:
    """Finding: ``--model`` naming a damaged model exited with a traceback."""
    broken = zoo / "broken"
    write_tiny_model(broken)
    (broken / "model.onnx").write_bytes(b"garbage")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "affectstream.service",
            "serve",
            "--model-dir",
            str(zoo),
            "--model",
            "broken",
            "--port",
            "0",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("affectstream serve:")]
    assert len(lines) == 1 and "broken" in lines[0], proc.stderr


def test_auto_attach_flag_takes_an_optional_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import affectstream.service.settings as settings_module
    from affectstream.service.cli import build_parser
    from affectstream.service.commands import serve

    real = settings_module.load_settings

    def settings_of(*argv: str) -> Settings:
        captured: list[Settings] = []

        def load(overrides: dict[str, Any]) -> Settings:
            captured.append(real(overrides, environ={}, dotenv=None))
            raise SystemExit(0)  # stop before the server starts

        monkeypatch.setattr(settings_module, "load_settings", load)
        args = build_parser("serve").parse_args([*argv, "--model-dir", str(tmp_path)])
        with pytest.raises(SystemExit):
            serve.run(args)
        return captured[0]

    plain = settings_of("--auto-attach")
    assert plain.auto_attach and plain.auto_attach_pattern == "*"
    lab = settings_of("--auto-attach", "lab-*")
    assert lab.auto_attach and lab.auto_attach_pattern == "lab-*"
    assert not settings_of().auto_attach


# == live: auto-attach, the cap under load, channel counts ======================================


@pytest.mark.lsl
@pytest.mark.timeout(90)
def test_auto_attach_takes_the_pattern_removes_lost_groups_and_deletes_stick(
    zoo: Path, session_name: str
) -> None:
    """Findings: auto-attach creates sessions for any publisher (60 ``floodNNN-GSR`` outlets →
    61 sessions), never removes them, and re-creates a deleted one within 0.55 s."""
    keep, flood = f"{session_name}lab", f"{session_name}flood"
    settings = Settings(
        model_dir=zoo,
        token=TOKEN,
        auto_attach=True,
        auto_attach_pattern=f"{session_name}lab*",
        auto_attach_grace_s=1.0,
        max_sessions=3,
    )
    with run_service(settings) as live:
        state = live.state
        with GsrOutlet(f"{flood}1-GSR"), GsrOutlet(f"{flood}2-GSR"), GsrOutlet(f"{keep}0-GSR"):
            wait_until(lambda: f"{keep}0" in state.sessions, 15, what="auto-attach")
            time.sleep(2.5)
            assert sorted(state.sessions) == [f"{keep}0"]  # the flood does not match
            outlets = [GsrOutlet(f"{keep}{i}-GSR").__enter__() for i in range(1, 5)]
            try:
                wait_until(lambda: len(state.sessions) == 3, 15, what="three sessions")
                time.sleep(2.5)
                assert len(state.sessions) == 3  # max_sessions
            finally:
                for o in outlets:
                    o.__exit__()
            # the lost groups go after the grace period (and the resolver's 3 s)
            wait_until(lambda: set(state.sessions) == {f"{keep}0"}, 15, what="lost groups removed")
            # a client's delete sticks while the same outlet is there …
            live_id = f"{keep}0"
            request = urllib.request.Request(
                f"{live.url}/sessions/{live_id}", headers=AUTH, method="DELETE"
            )
            assert urllib.request.urlopen(request, timeout=5).status == 204
            time.sleep(3.0)
            assert live_id not in state.sessions
        # … and ends when the outlet comes back (another uid)
        with GsrOutlet(f"{keep}0-GSR"):
            wait_until(lambda: live_id in state.sessions, 15, what="re-attached")


@pytest.mark.lsl
@pytest.mark.serial  # measures latency
@pytest.mark.timeout(120)
def test_past_the_bounds_the_live_session_keeps_its_latency(
    tmp_path: Path, session_name: str
) -> None:
    """Findings: 1000 POSTed sessions took a live session from 80 to 3 predictions / 10 s;
    10 MB bodies accepted and a huge ``models`` list stalled the event loop for seconds."""
    threads_before = threading.active_count()
    with (
        live_gsr_service(tmp_path, session_name, max_sessions=4) as live,
        PredictionWatch(live.port, session_name) as watch,
    ):
        watch.wait_for(4, 20)
        t0 = time.monotonic()
        statuses = [post(live, "/sessions", body(f"{session_name}x{i}", []))[0] for i in range(40)]
        assert statuses[:3] == [201] * 3 and set(statuses[3:]) == {429}, statuses
        big = b'{"session": "b", "match": {"source_id_prefix": "b-"}, "models": ['
        big += b'"a",' * 250_000 + b'"a"]}'
        for _ in range(3):
            status, answer = post(live, "/sessions", big)
            assert status in (413, 422), answer
        for _ in range(3):  # 10 MB declared: refused at the headers, nothing read
            assert _declare_body(live.port, 10_000_000).startswith(b"HTTP/1.1 413")
        time.sleep(4)
        watch.check_served(t0, time.monotonic() - t0)
        # the cap bounds the threads: a session's discovery and acquisition, not one per POST
        assert threading.active_count() - threads_before < 40


@pytest.mark.lsl
@pytest.mark.timeout(60)
def test_a_gsr_stream_with_three_unlabelled_channels_is_refused_for_a_one_channel_model(
    tmp_path: Path, session_name: str
) -> None:
    """Finding: a stream with the wrong channel count was served (3-channel GSR fed to a
    1-channel model). Now refused with the reason, as the README says; served when a label
    names the model's channel."""
    write_gsr_model(tmp_path / "gsrzoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "gsrzoo", token=TOKEN)
    with (
        GsrOutlet(f"{session_name}a-GSR", n_channels=3, labels=None),
        GsrOutlet(f"{session_name}b-GSR", n_channels=3, labels=("GSR", "X", "Y")),
        run_service(settings) as live,
    ):
        for suffix in ("a", "b"):
            assert post(live, "/sessions", body(session_name + suffix, ["gsr"]))[0] == 201

        def model_of(suffix: str) -> dict[str, Any]:
            detail = live.get_json(f"/sessions/{session_name}{suffix}", token=TOKEN)
            row: dict[str, Any] = detail["models"][0]
            return row

        wait_until(lambda: model_of("a")["status"] == "refused", 20, what="refused")
        assert "no channel 'GSR'" in model_of("a")["reason"]
        wait_until(lambda: model_of("b")["predictions"] > 0, 20, what="served")
        assert model_of("a")["predictions"] == 0


def test_every_close_code_and_status_of_the_bounds_is_distinct() -> None:
    from affectstream.service.api import deps, guard, ws

    codes = [
        deps.WS_UNAUTHORIZED,
        deps.WS_UNKNOWN_SESSION,
        deps.WS_SESSION_CLOSED,
        guard.WS_FORBIDDEN,
        ws.WS_POLICY,
        ws.WS_MESSAGE_TOO_BIG,
        ws.WS_TRY_AGAIN,
    ]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("compression", [False, True])
def test_websocket_compression_is_what_the_setting_says(zoo: Path, compression: bool) -> None:
    """A client that offers permessage-deflate (websockets does by default, as browsers do)
    gets it with ``ws_compression`` (the default); off, the server's encoded message bytes go
    out uncompressed. Messages arrive either way."""
    settings = Settings(model_dir=zoo, token=TOKEN, ws_compression=compression)
    assert Settings(model_dir=zoo).ws_compression is True  # the default

    async def hello(port: int) -> tuple[str | None, dict[str, Any]]:
        url = f"ws://127.0.0.1:{port}/ws/sessions/p01?token={TOKEN}"
        async with websockets.connect(url, open_timeout=10) as ws:
            assert ws.request is not None and ws.response is not None
            assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return ws.response.headers.get("Sec-WebSocket-Extensions"), first

    with run_service(settings) as live:
        status, answer = post(live, "/sessions", body())
        assert status == 201, answer
        extensions, first = asyncio.run(hello(live.port))
    assert first["type"] == "hello"
    if compression:
        assert extensions is not None and "permessage-deflate" in extensions
    else:
        assert extensions is None
