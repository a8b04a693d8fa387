"""The dashboard in a real headless Chromium, against the real service, replay and a tiny model.

Chromium is driven over the DevTools protocol with the ``websockets`` client (no Selenium or
Playwright): navigate, poll ``Runtime.evaluate`` on the page's element ids, take a screenshot.
Set ``SAVE_DASHBOARD_SCREENSHOT=1`` to also write the screenshot to ``docs/img/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_service import replay_log, run_replay, run_service, write_gsr_model

from affectstream.service.settings import Settings

pytest.importorskip("onnx")  # the tiny model is built with onnx (the `train` extra)

REPO = Path(__file__).resolve().parents[2]
TOKEN = "dashboard-test-token-5f2c"
MODELS = ("gsr-tiny@1", "gsr-tiny@2")  # same graph, different normalisation: different outputs


def _find_chromium() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.lsl,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium (/usr/bin/chromium or chromium on PATH): apt-get install chromium",
    ),
]


# -- Chromium over the DevTools protocol -----------------------------------------------------------


@contextlib.contextmanager
def chromium(profile: Path, timeout: float = 20.0) -> Iterator[str]:
    """Start headless Chromium; yield the DevTools WebSocket URL of its blank page.

    ``--remote-debugging-port=0`` lets Chromium pick a free port and write it to
    ``DevToolsActivePort`` in the profile folder: no race with another process for the port.
    """
    assert CHROMIUM is not None
    profile.mkdir(parents=True, exist_ok=True)
    active = profile / "DevToolsActivePort"
    active.unlink(missing_ok=True)  # a reused profile's old port must not be read
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    log = (profile / "chromium.log").open("wb")
    # own process group: Chromium's helper processes are ended with it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        port = None
        while port is None:
            if proc.poll() is not None:
                raise RuntimeError(f"Chromium exited ({proc.returncode}): {_tail(profile)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Chromium gave no DevTools port in {timeout} s")
            lines = active.read_text().splitlines() if active.exists() else []
            port = int(lines[0]) if lines and lines[0].isdigit() else None
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t["type"] == "page")
        yield str(page["webSocketDebuggerUrl"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def _tail(profile: Path) -> str:
    path = profile / "chromium.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Page:
    """Sequential DevTools calls on one page target (events are skipped)."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self._ws.recv(), 15))
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                shown = await self.evaluate(SNAPSHOT)
                raise TimeoutError(f"{what}: not within {timeout} s; page shows {shown}")
            await asyncio.sleep(0.2)

    async def open(self, url: str) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        result = await self.call("Page.navigate", url=url)
        assert not result.get("errorText"), result
        # Page.navigate returns before the new document replaces the old one
        loaded = f"location.href === {json.dumps(url)} && document.readyState !== 'loading'"
        await self.wait_for(loaded, 10, f"{url} loaded")

    async def screenshot(self, path: Path) -> None:
        """The whole page (the viewport is grown to the page's height first)."""
        size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=max(900, round(size["height"])),
            deviceScaleFactor=1,
            mobile=False,
        )
        await asyncio.sleep(0.3)  # let the canvases redraw at the new size
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


# What the page shows, by element id (see the ids listed at the top of dashboard.html).
SNAPSHOT = """(() => {
  const text = (id) => document.getElementById(id)?.textContent.trim() ?? null;
  const rows = [...document.querySelectorAll('#health tbody tr[data-stream]')];
  return {
    status: document.getElementById('status')?.dataset.state ?? null,
    statusText: text('status'), notice: text('notice'),
    session: document.getElementById('session')?.value ?? null,
    model: document.getElementById('model')?.value ?? null,
    count: text('count'), seq: text('seq'), missed: text('missed'), resumes: text('resumes'),
    valence: text('valence'), arousal: text('arousal'),
    latency: text('latency'), truth: text('truth'),
    synthetic: document.getElementById('synthetic')?.hidden === false ? text('synthetic') : null,
    models: [...document.querySelectorAll('#models tbody tr[data-model]')]
      .map((r) => r.dataset.model),
    health: Object.fromEntries(rows.map((r) => [r.dataset.stream, r.dataset.state])),
    body: document.body ? document.body.innerText.slice(0, 300) : null,
  };
})()"""


# The dashboard's client (window.affectstreamDashboard.client) and what the page shows of it.
CLIENT = """(() => {
  const c = window.affectstreamDashboard?.client;
  const shown = (id) => parseInt(document.getElementById(id).textContent, 10);
  return {
    loaded: performance.getEntriesByType('resource')
      .filter((e) => new URL(e.name).pathname === '/client.js').length,
    kind: c?.constructor?.name ?? null, state: c?.state ?? null, lastSeq: c?.lastSeq ?? null,
    missed: c?.missed ?? null, duplicates: c?.duplicates ?? null, resumes: c?.resumes ?? null,
    resume: c?.hello?.resume ?? null,
    count: shown('count'), seq: shown('seq'), shownMissed: shown('missed'),
  };
})()"""


# -- tests -----------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_dashboard_shows_live_predictions(
    tmp_path: Path, synthetic_dir: Path, session_name: str, cli_env: dict[str, str]
) -> None:
    zoo = tmp_path / "models"
    write_gsr_model(zoo / "one", version="1")
    write_gsr_model(zoo / "two", version="2", mean_us=4.0, std_us=0.7)
    settings = Settings(model_dir=zoo, models=("one", "two"), auto_attach=True, token=TOKEN)
    save = os.environ.get("SAVE_DASHBOARD_SCREENSHOT") == "1"
    # for the README image: ~20 s of data (4 predictions/s per model); for the test: 5 predictions
    wanted = 80 * len(MODELS) if save else 5
    url = f"/?token={TOKEN}&session={session_name}"
    shot = tmp_path / "dashboard.png"

    async def drive(page_ws: str, base: str) -> dict[str, Any]:
        async with websockets.connect(page_ws, max_size=None) as ws:
            page = Page(ws)
            await page.open(base + url)
            count = "parseInt(document.getElementById('count')?.textContent ?? '0', 10)"
            await page.wait_for(f"{count} >= {wanted}", 30 + wanted / 8, f"{wanted} predictions")
            if save:  # the marker stream's rating appears with the first prediction of a trial
                await page.wait_for(
                    "document.getElementById('truth').textContent !== '–'", 10, "ground truth"
                )
            shown: dict[str, Any] = await page.evaluate(SNAPSHOT)
            await page.screenshot(shot)
            shown["via_client"] = await through_the_client(page)
            return shown

    async def through_the_client(page: Page) -> dict[str, Any]:
        """The predictions came through the JavaScript client (loaded from /client.js under the
        page's CSP): cut its connection; the page resumes from its last seq, and what it then
        counts matches the seq it shows (nothing lost, nothing twice)."""
        before = await page.evaluate(CLIENT)
        await page.evaluate("window.affectstreamDashboard.client.reconnect()")
        await page.wait_for(
            f"document.getElementById('resumes').textContent === '1' && "
            f"parseInt(document.getElementById('seq').textContent, 10) >= {before['seq'] + 8}",
            15,
            "8 more predictions after the reconnection",
        )
        after: dict[str, Any] = await page.evaluate(CLIENT)
        return {"before": before, "after": after}

    # exit order: Chromium, then the service (its inlets), then the replay (its outlets)
    with (
        run_replay(
            synthetic_dir / "s01.dat",
            session_name,
            cli_env,
            "--wait-for-consumers",
            "10",
            log_dir=tmp_path,
        ),
        run_service(settings) as live,
        chromium(tmp_path / "chromium") as page_ws,
    ):
        try:
            shown = asyncio.run(drive(page_ws, live.url))
        except TimeoutError as e:
            sessions = live.get_json("/sessions", token=TOKEN)
            raise AssertionError(
                f"{e}\nGET /sessions: {sessions}\nreplay log: {replay_log(session_name, tmp_path)}"
            ) from None

    assert shown["status"] == "live", shown
    assert shown["session"] == session_name
    assert shown["model"] == MODELS[0]  # the numbers shown: the first model, by default
    assert shown["models"] == list(MODELS)  # both in the selector and the models table
    # the fixture models say they were trained on synthetic data; the page says so
    assert shown["synthetic"] is not None and "synthetic data" in shown["synthetic"], shown
    assert all(m in shown["synthetic"] for m in MODELS), shown["synthetic"]
    assert int(shown["count"]) >= wanted
    for key in ("valence", "arousal"):
        assert 0.0 <= float(shown[key]) <= 1.0, shown
    assert float(shown["latency"].removesuffix(" ms")) > 0, shown
    assert shown["health"].get("GSR") == "ok", shown["health"]
    assert {"EEG", "PPG", "RESP"} <= set(shown["health"]), shown["health"]
    assert shot.read_bytes().startswith(b"\x89PNG"), "the screenshot is not a PNG"
    before, after = shown["via_client"]["before"], shown["via_client"]["after"]
    assert before["loaded"] == 1 and before["kind"] == "AffectStreamClient", before
    assert before["state"] == "open" and before["resume"] is None, before  # a fresh connection
    assert before["lastSeq"] == before["seq"], before  # the page shows the client's seq
    assert after["resumes"] == 1 and after["resume"]["since"] >= before["seq"], after
    assert after["resume"]["reset"] is False and after["resume"]["missed"] == 0, after
    # every seq between the two snapshots was counted once: none lost or repeated
    assert after["count"] - before["count"] == after["seq"] - before["seq"], (before, after)
    assert after["missed"] == after["shownMissed"] == 0 and after["duplicates"] == 0, after
    if save:
        target = REPO / "docs" / "img" / "dashboard.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


@pytest.mark.timeout(60)
def test_wrong_or_missing_token_is_a_clear_message(tmp_path: Path) -> None:
    model = write_gsr_model(tmp_path / "models" / "one")
    settings = Settings(model_dir=model.parent, models=(model.name,), token=TOKEN)
    unauthorized = "document.getElementById('status')?.dataset.state === 'unauthorized'"

    async def visit(page_ws: str, url: str) -> dict[str, Any]:
        async with websockets.connect(page_ws, max_size=None) as ws:
            page = Page(ws)
            await page.open(url)
            await page.wait_for(unauthorized, 10, "the token message")
            shown: dict[str, Any] = await page.evaluate(SNAPSHOT)
            return shown

    with run_service(settings) as live, chromium(tmp_path / "chromium") as page_ws:
        # the page itself holds no data and is served without the token; everything it then
        # asks for (GET /sessions, the WebSocket) checks the token
        for query in ("?token=not-the-right-token", ""):
            try:
                urllib.request.urlopen(f"{live.url}/{query}", timeout=5).close()
            except urllib.error.HTTPError as e:
                why = "the page must be served without the token so that it can say what is wrong"
                pytest.fail(f"GET /{query} answered HTTP {e.code}: {why}")
        wrong = asyncio.run(visit(page_ws, f"{live.url}/?token=not-the-right-token"))
        missing = asyncio.run(visit(page_ws, f"{live.url}/"))

    assert wrong["statusText"] == "wrong token"
    assert "Wrong token" in wrong["notice"] and "?token=" in wrong["notice"], wrong
    assert missing["statusText"] == "token required"
    assert "requires a token" in missing["notice"] and "?token=" in missing["notice"], missing
    for shown in (wrong, missing):
        assert shown["count"] == "0"
