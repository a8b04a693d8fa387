"""The `affectstream` command: verbs, help, errors, and the demo end to end."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from affectstream.service import cli as cli_module


def test_overview_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in cli_module.VERBS:
        assert f"  {verb} " in out


def test_no_verb_prints_overview_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main([]) == 2
    assert "usage: affectstream VERB" in capsys.readouterr().out


@pytest.mark.parametrize("verb", sorted(cli_module.VERBS))
def test_summary_is_the_module_docstring(verb: str) -> None:
    module_name, summary = cli_module.VERBS[verb]
    doc = importlib.import_module(module_name).__doc__ or ""
    assert doc.strip().splitlines()[0] == summary


@pytest.mark.parametrize("verb", sorted(cli_module.VERBS))
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_module.main([verb, "--help"])
    assert info.value.code == 0
    assert f"usage: affectstream {verb}" in capsys.readouterr().out


def test_unknown_verb_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_module.main(["replya"]) == 2
    assert "did you mean 'replay'" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("affectstream")
    if not script.exists() and shutil.which("affectstream") is None:
        pytest.skip("affectstream is not installed in this interpreter's environment")
    exe = str(script) if script.exists() else "affectstream"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("affectstream ")


def test_replay_of_a_malformed_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "s01.dat"
    bad.write_text("not a pickle")
    assert cli_module.main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"affectstream replay: error: {bad}: not a pickle" in err


def test_replay_bad_trial_selection(
    synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_module.main(["replay", str(synthetic_dir / "s01.dat"), "--trials", "2-9"]) == 2
    assert "out of range: the file has trials 1-3" in capsys.readouterr().err


@pytest.mark.lsl
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_demo_runs_end_to_end(
    tmp_path: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    """The quick-start command: synth (fresh folder) → replay → service with the shipped models
    → predictions printed next to the ground truth, then the online score."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        cli(
            "demo",
            "--data",
            tmp_path,
            "--trials",
            "1",
            "--port",
            str(port),
            "--seconds",
            "12",
            "--score-every",
            "5",
        ),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=140,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert [p.name for p in tmp_path.glob("s*.dat")] == ["s17.dat"]
    assert f"dashboard  http://127.0.0.1:{port}/?session=demo-" in out
    predictions = [line for line in out.splitlines() if line.lstrip().startswith("#")]
    assert len(predictions) >= 5, out
    assert all("valence 0." in p or "valence 1.00" in p for p in predictions)
    assert "truth V " in predictions[-1]
    assert "online score" in out and "synthetic data" in out
    assert "Traceback" not in done.stderr


def test_the_demo_subject_is_outside_every_shipped_model_s_training_set() -> None:
    """The demo's online score must not be measured on training data: each shipped model records
    the synthetic set it was trained on (subjects 1-N of a seed); the demo's subject lies beyond."""
    import json

    from affectstream.service.commands.demo import DEMO_SUBJECT

    zoo = sorted((Path(__file__).parents[2] / "models" / "zoo").glob("*/model.json"))
    assert zoo
    for path in zoo:
        dataset = json.loads(path.read_text())["trained_on"]["dataset"]
        assert dataset["synthetic"] is True, path
        assert dataset["generator"]["seed"] == 0, path  # the demo's seed
        first = dataset["generator"].get("first_subject", 1)
        trained = range(first, first + dataset["subjects"])
        assert DEMO_SUBJECT not in trained, (path, list(trained))
        # nor among the subjects written for it (held out for evaluation, e.g. the coverage curve)
        assert first + dataset["generator"]["subjects"] <= DEMO_SUBJECT, path


@pytest.mark.parametrize("verb", ["serve", "worker"])
def test_an_unreachable_bus_is_one_line_naming_the_url(
    verb: str, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    """Redis unreachable at start: exit code 2 and one line naming the URL (password redacted),
    no traceback — for a gateway and for a worker."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    done = subprocess.run(
        cli(verb, "--bus", url), env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the bus at redis://:***@127.0.0.1:{port}/0" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
