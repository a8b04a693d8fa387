"""Shared fixtures. LSL discovery is limited to this machine for every test (and every process a
test starts), so test runs never multicast onto the network nor see each other's streams."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from affectstream.streaming.lsl.config import use_machine_scope

use_machine_scope()  # before anything imports pylsl

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_service_settings_from_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Service settings read ``AFFECTSTREAM_*`` variables: a developer's own (a token, a model
    folder) must not change what a test builds. Tests that want one set it themselves."""
    for name in [n for n in os.environ if n.startswith("AFFECTSTREAM_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic subjects of 3 trials each, written once per test session."""
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("synthetic-deap")
    write_synthetic_deap(out, n_subjects=2, n_trials=3, seed=7)
    return out


@pytest.fixture
def session_name() -> str:
    """A session name no other test (or test run) uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for ``python -m affectstream.service …`` subprocesses (same LSL config; the
    package comes from the installed ``affectstream``, not from the source folders)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def cli() -> Callable[..., list[str]]:
    """``cli("replay", path, …)`` → the command line running the affectstream CLI with this
    interpreter (the same code as the ``affectstream`` console script)."""

    def command(*args: str | os.PathLike[str]) -> list[str]:
        return [sys.executable, "-m", "affectstream.service", *map(str, args)]

    return command
