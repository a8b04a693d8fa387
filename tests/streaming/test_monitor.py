"""`affectstream monitor` against a real replay on loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from affectstream.service.cli import main

REQUIRED = {
    "name",
    "type",
    "source_id",
    "channel_count",
    "nominal_srate",
    "samples",
    "nonfinite",
    "reconnects",
    "state",
}


def test_bad_match_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--match", "colour=blue", "--seconds", "0"]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    assert main(["monitor", "--match", "session", "--seconds", "0"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.lsl
def test_monitor_json_reports_every_stream_of_the_session(
    synthetic_dir: Path, session_name: str, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    replay = subprocess.Popen(
        cli("replay", synthetic_dir / "s01.dat", "--loop", "--quiet", "--session", session_name),
        env=cli_env,
    )
    try:
        done = subprocess.run(
            cli(
                "monitor",
                "--match",
                f"session={session_name}",
                "--seconds",
                "4",
                "--json",
                "--expect",
                "EEG=32",
                "--expect",
                "GSR=2",
            ),
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        replay.terminate()
        replay.wait(10)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["match"] == {"session": session_name}
    streams = {s["type"]: s for s in doc["streams"]}
    assert set(streams) == {"EEG", "GSR", "PPG", "RESP", "AUX", "Markers"}
    for s in doc["streams"]:
        assert set(s) >= REQUIRED, s
        assert s["source_id"] == f"{session_name}-{s['type']}"
    for kind in ("EEG", "PPG", "RESP", "AUX"):
        assert streams[kind]["state"] == "ok", streams[kind]
        assert streams[kind]["samples"] > 128  # more than a second's worth arrived
        assert streams[kind]["nonfinite"] == 0
    assert streams["EEG"]["channel_count"] == 32
    # the expectation GSR=2 contradicts the 1-channel GSR stream: refused with a reason
    assert streams["GSR"]["state"] == "refused"
    assert "has 1 channel(s); this session expects 2 for GSR" in streams["GSR"]["reason"]
