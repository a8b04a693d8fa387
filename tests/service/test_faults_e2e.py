"""Every replay fault through a running service: what the README's "Ingest" section promises.

A replay with ``--faults`` (a real process) → the service under uvicorn with the tiny GSR model and
``auto_attach`` → a WebSocket client for a few seconds → ``GET /sessions``. Whatever the fault, the
service keeps serving (``/health``), the session's counters show the fault, and predictions flow
once the fault has passed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_service import replay_log, run_replay, run_service, wait_until, write_gsr_model

from affectstream.service.settings import Settings

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl, pytest.mark.slow]

TOKEN = "faults-e2e-token-0123456789"


@dataclass
class Seen:
    messages: list[dict[str, Any]]
    session: dict[str, Any]  # GET /sessions' row for the session
    detail: dict[str, Any]  # GET /sessions/{id}
    health: Any

    def stream(self, kind: str) -> dict[str, Any]:
        return next(s for s in self.session["streams"] if s["type"] == kind)

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.detail["models"][0])

    @property
    def predictions(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "prediction"]

    def states(self, kind: str = "GSR") -> list[str]:
        return [
            m["state"]
            for m in self.messages
            if m["type"] == "status" and m["stream"]["type"] == kind
        ]

    def predictions_after(self, state: str, kind: str = "GSR") -> int:
        """Predictions received after the first status message ``state`` of stream ``kind``."""
        for i, m in enumerate(self.messages):
            if m["type"] == "status" and m["stream"]["type"] == kind and m["state"] == state:
                return sum(x["type"] == "prediction" for x in self.messages[i:])
        return 0


async def _listen(url: str, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    async with websockets.connect(url) as ws:
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
            except TimeoutError:
                break
    return out


def _run(
    faults: str,
    seconds: float,
    synthetic_dir: Path,
    session: str,
    env: dict[str, str],
    tmp_path: Path,
) -> Seen:
    write_gsr_model(tmp_path / "zoo" / "gsr")
    settings = Settings(model_dir=tmp_path / "zoo", auto_attach=True, token=TOKEN)
    with (
        run_replay(
            synthetic_dir / "s01.dat",
            session,
            env,
            "--faults",
            faults,
            "--faults-seed",
            "3",
            "--wait-for-consumers",
            "15",
            log_dir=tmp_path,
        ) as proc,
        run_service(settings) as live,
    ):
        try:
            wait_until(lambda: session in live.state.sessions, 20, what="auto-attach")
        except TimeoutError:
            pytest.fail(replay_log(session, tmp_path))
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session}?token={TOKEN}"
        messages = asyncio.run(_listen(url, seconds))
        rows = live.get_json("/sessions", token=TOKEN)["sessions"]
        detail = live.get_json(f"/sessions/{session}", token=TOKEN)
        health = live.get_json("/health", token=TOKEN)
        assert proc.poll() is None, replay_log(session, tmp_path)
    row = next(r for r in rows if r["session"] == session)
    return Seen(messages, row, detail, health)


def _check_nan(seen: Seen) -> None:
    # NaN counted in the stream's nonfinite, windows over long runs withheld (and counted), no
    # prediction ever made from NaN
    assert seen.stream("GSR")["nonfinite"] > 0
    withheld = {k: v for k, v in seen.model["skipped_windows"].items() if k.startswith("GSR")}
    assert sum(withheld.values()) > 0, seen.model["skipped_windows"]
    assert all("nonfinite" in p["quality"]["GSR"] for p in seen.predictions)
    assert len(seen.predictions) >= 10  # the windows in between are served


def _check_jitter(seen: Seen) -> None:
    # tolerated: timestamps 5 ms off on 7.8 ms intervals still make a steady stream
    assert len(seen.predictions) >= 20
    assert seen.stream("GSR")["state"] in ("ok", "recovered")
    assert sum(seen.model["skipped_windows"].values()) <= 2, seen.model["skipped_windows"]
    # smoothed, not mistaken for holes or steps (raw timestamps do go backwards at ±5 ms)
    gsr = seen.stream("GSR")
    assert (gsr["gaps"], gsr["clock_steps"], gsr["backwards"]) == (0, 0, 0), gsr


def _check_restart(seen: Seen) -> None:
    # every outlet destroyed at 8 s for 1 s: the streams go lost, come back (same source_id),
    # and predictions resume
    states = seen.states("GSR")
    assert "lost" in states and "recovered" in states[states.index("lost") :], states
    assert seen.stream("GSR")["reconnects"] >= 1
    # the second the producer was down is a hole (128 samples at 128 Hz, more until the inlet
    # is back), counted as a gap
    gsr = seen.stream("GSR")
    assert gsr["gaps"] >= 1 and gsr["missing"] >= 100 and gsr["clock_steps"] == 0, gsr
    assert seen.predictions_after("recovered") >= 4, states


def _check_stall(seen: Seen) -> None:
    # nothing pushed for 1.5 s: stale, then recovered when the backlog arrives; nothing lost
    states = seen.states("GSR")
    assert "stale" in states and "recovered" in states[states.index("stale") :], states
    gsr = seen.stream("GSR")
    assert (gsr["gaps"], gsr["clock_steps"], gsr["backwards"]) == (0, 0, 0), gsr
    assert seen.predictions_after("recovered") >= 4, states


def _check_survives(seen: Seen) -> None:
    # no crash, no stop: predictions keep coming, in order
    assert len(seen.predictions) >= 15
    ends = [p["window"]["end"] for p in seen.predictions]
    assert all(b > a for a, b in itertools.pairwise(ends))


def _check_step_ahead(seen: Seen) -> None:
    # the step (+0.5 s) is at 4 s: the timeline re-anchors on it, the windows over the jump are
    # skipped and the next ones served until the end. The samples after the step are stamped
    # later than they arrive, which tells the step from a dropped run: a clock step, not a gap
    gsr = seen.stream("GSR")
    assert gsr["clock_steps"] == 1 and gsr["gaps"] == 0, gsr
    ends = [p["window"]["end"] for p in seen.predictions]
    assert all(b > a for a, b in itertools.pairwise(ends))
    assert len(ends) >= 2, seen.model["skipped_windows"]
    jump = max(range(1, len(ends)), key=lambda i: ends[i] - ends[i - 1])
    assert ends[jump] - ends[jump - 1] >= 2.0, ends  # the windows over the step were skipped
    # … and the windows after it flow: the data are stamped 0.5 s ahead of the service's clock,
    # so it serves them two hops at a time (coalesced), at least 2 predictions a second
    assert len(ends) - jump >= 5, ends


def _check_step_back(seen: Seen) -> None:
    # README: timestamps that do not increase are dropped and counted. The step (−0.5 s) is
    # counted once, the half second of samples stamped before the newest stored one are dropped
    # (64 at 128 Hz, give or take the first ones on the new line); they arrive, so the stream
    # never looks silent (stale)
    gsr = seen.stream("GSR")
    assert gsr["clock_steps"] == 1 and gsr["gaps"] == 0, gsr
    assert 60 <= gsr["backwards"] <= 68, gsr
    assert seen.states("GSR") == ["ok"], seen.states("GSR")


def _check_drop(seen: Seen) -> None:
    # windows over the holes are skipped and counted; the others are served
    skipped = {k: v for k, v in seen.model["skipped_windows"].items() if k.startswith("GSR")}
    assert sum(skipped.values()) > 0, seen.model["skipped_windows"]
    assert len(seen.predictions) >= 5


def _check_drop_gaps(seen: Seen) -> None:
    # README: forward jumps count as gaps, with the samples missing; every hole is a run of at
    # least 0.2 s = 26 samples at 128 Hz (runs may overlap into longer ones)
    gsr = seen.stream("GSR")
    assert gsr["gaps"] > 0, gsr
    assert gsr["missing"] >= 26 * gsr["gaps"], gsr
    assert gsr["clock_steps"] == 0 and gsr["backwards"] == 0, gsr


CASES: dict[str, tuple[str, float, Callable[[Seen], None]]] = {
    "nan": ("nan=0.1,nan-run=0.3s", 10.0, _check_nan),
    "jitter": ("jitter=5ms", 9.0, _check_jitter),
    "restart": ("restart=8s,restart-down=1s", 16.0, _check_restart),
    "stall": ("stall=1.5s,stall-every=5s", 10.0, _check_stall),
    "drop": ("drop=0.02,drop-run=0.2s", 10.0, _check_drop),
    "drop-gaps": ("drop=0.02,drop-run=0.2s", 8.0, _check_drop_gaps),
    "clock-step-back": ("clock-step=-0.5s,clock-step-at=4s", 10.0, _check_survives),
    "clock-step-back-counted": ("clock-step=-0.5s,clock-step-at=4s", 8.0, _check_step_back),
    "clock-step-ahead": ("clock-step=0.5s,clock-step-at=4s", 10.0, _check_step_ahead),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(CASES))
def test_the_service_survives_and_reports_each_fault(
    case: str, synthetic_dir: Path, session_name: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    faults, seconds, check = CASES[case]
    seen = _run(faults, seconds, synthetic_dir, session_name, cli_env, tmp_path)
    assert seen.health == {"status": "ok"}
    assert seen.messages and seen.messages[0]["type"] == "hello"
    gsr = seen.stream("GSR")
    counters = {
        k: gsr[k]
        for k in ("gaps", "missing", "clock_steps", "nonfinite", "backwards", "reconnects", "state")
    }
    print(
        f"\n{case}:",
        counters,
        dict(seen.model["skipped_windows"]),
        len(seen.predictions),
        seen.states("GSR"),
        [round(p["window"]["end"], 2) for p in seen.predictions][-6:],
    )
    check(seen)
