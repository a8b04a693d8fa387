"""The JavaScript client (clients/js/affectstream.js) against a real service, with Node's own test
runner: a device-like GSR producer on LSL → a real uvicorn service with a token → ``node --test
clients/js/test/`` (real WebSockets, Node's built-in client).

The service's URL, session and token reach the Node tests in ``AFFECTSTREAM_URL``,
``AFFECTSTREAM_SESSION``, ``AFFECTSTREAM_TOKEN``. For the restart test, the Node side writes
``restart`` into the folder ``AFFECTSTREAM_CONTROL``; this harness then stops the service, starts
a new one on the same port, creates the session again (a new incarnation: new epoch, seq from 1)
and writes ``restarted``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from live_service import LiveService, restartable_port, run_service, wait_until, write_gsr_model
from producers import Device, skin_conductance

from affectstream.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
JS = REPO / "clients" / "js"
TOKEN = "js-client-test-token-7d1e"
NODE = shutil.which("node")


def test_client_js_is_served_to_anyone_and_allowed_by_the_dashboard_policy(
    tmp_path: Path,
) -> None:
    """GET /client.js: the file of the installed package, as JavaScript, without the token (like
    the page that imports it); the dashboard's CSP allows exactly that URL besides its own
    inline script."""
    from fastapi.testclient import TestClient

    from affectstream.service.app import create_app

    app = create_app(Settings(model_dir=tmp_path, token=TOKEN))
    host = {"Host": "localhost:8123"}
    with TestClient(app) as c:
        r = c.get("/client.js", headers=host)
        page = c.get("/", headers=host)
        assert c.get("/sessions", headers=host).status_code == 401  # the data stays guarded
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == (JS / "affectstream.js").read_bytes()
    assert b"export class AffectStreamClient" in r.content
    policy = dict(
        d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";")
    )
    sources = policy["script-src"].split()
    assert "localhost:8123/client.js" in sources and "'self'" not in sources, sources
    assert [s for s in sources if not s.startswith("'sha256-")] == ["localhost:8123/client.js"]
    assert 'import("/client.js")' in page.text


def _node_args() -> list[str]:
    """``node`` with what it needs for a global WebSocket (built in from Node 22; Node 20 and
    21 have it behind ``--experimental-websocket``); skips when neither works."""
    assert NODE is not None
    probe = "process.stdout.write(typeof WebSocket)"
    for extra in ([], ["--experimental-websocket"]):
        done = subprocess.run(
            [NODE, *extra, "-e", probe], capture_output=True, text=True, timeout=30
        )
        if done.returncode == 0 and done.stdout == "function":
            return [NODE, *extra]
    pytest.skip(f"this node ({NODE}) has no WebSocket, not even with --experimental-websocket")


def _create_session(live: LiveService, session: str) -> None:
    body = {"session": session, "match": {"source_id_prefix": session + "-"}}
    req = urllib.request.Request(
        live.url + "/sessions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def _predictions(live: LiveService, session: str) -> int:
    described = live.get_json(f"/sessions/{session}", token=TOKEN)
    return sum(int(m.get("predictions", 0)) for m in described["models"])


@pytest.mark.lsl
@pytest.mark.slow
@pytest.mark.skipif(NODE is None, reason="node is not installed (Node 18+ runs these tests)")
@pytest.mark.timeout(150)
@pytest.mark.serial  # restarts its service on the same port; timing of the Node tests
def test_node_tests_pass_against_the_service(tmp_path: Path, session_name: str) -> None:
    pytest.importorskip("onnx")  # the tiny model is built with onnx (the `train` extra)
    node = _node_args()
    model = write_gsr_model(tmp_path / "models" / "gsr-tiny")
    settings = Settings(model_dir=model.parent, models=(model.name,), token=TOKEN)
    control = tmp_path / "control"
    control.mkdir()
    output = tmp_path / "node-test.tap"
    producer = Device(session_name, [skin_conductance("gsr", "GSR", 16.0, label="GSR", unit="µS")])

    def start(port: int, stack: ExitStack) -> LiveService:
        live = stack.enter_context(run_service(settings, port=port))
        _create_session(live, session_name)
        wait_until(lambda: _predictions(live, session_name) > 0, 20, what="a first prediction")
        return live

    with producer, ExitStack() as outer:
        service = ExitStack()
        outer.callback(lambda: service.close())  # whichever incarnation runs at the end
        live = start(restartable_port(), service)  # restarted on the same port below
        env = {
            **os.environ,
            "AFFECTSTREAM_URL": live.url,
            "AFFECTSTREAM_SESSION": session_name,
            "AFFECTSTREAM_TOKEN": TOKEN,
            "AFFECTSTREAM_CONTROL": str(control),
        }
        cmd = [*node, "--test", "--test-reporter=tap", str(JS / "test")]
        restarts = 0
        with output.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=JS, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 120
                while proc.poll() is None:
                    if (control / "restart").exists() and restarts == 0:
                        service.close()  # the old incarnation goes: its sockets close
                        service = ExitStack()
                        live = start(live.port, service)
                        (control / "restarted").write_text("1\n")
                        restarts += 1
                    if time.monotonic() > deadline:
                        raise TimeoutError("node --test did not finish within 120 s")
                    time.sleep(0.05)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)

    tap = output.read_text(errors="replace")
    counts = {
        k: int(v) for k, v in re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", tap, re.M)
    }
    assert proc.returncode == 0 and counts.get("fail") == 0, tap[-6000:]
    # every test ran: none skipped (a skip would mean the service or the WebSocket was missing)
    assert counts.get("skipped") == 0 and counts.get("cancelled") == 0, tap[-6000:]
    written = sum(len(re.findall(r"^test\(", f.read_text(), re.M)) for f in JS.glob("test/*.mjs"))
    assert counts.get("pass") == written > 0, tap[-6000:]
    assert restarts == 1, "the restart test did not ask for a restart"
