"""After start-up the service sets what it has built aside from garbage collection
(:mod:`affectstream.service.heap`): a full collection then walks only what came after, instead
of stopping the process for 100-165 ms (#16)."""

from __future__ import annotations

import gc
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from live_service import free_port, stop_process, wait_until, write_gsr_model

from affectstream.service.heap import freeze_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_freeze_heap_sets_aside_what_is_alive_and_leaves_what_comes_after() -> None:
    alive = [[k] for k in range(1000)]  # tracked containers alive at the freeze
    try:
        frozen = freeze_heap()
        # (a frozen object freed by its refcount leaves the count: other threads may free some)
        assert frozen >= len(alive) and gc.get_freeze_count() >= len(alive)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(x) in tracked for x in alive)  # collections no longer walk them
        # what is made afterwards is collected as before: a cycle dropped is freed
        a, b = Node(), Node()
        a.other, b.other = b, a
        assert id(a) in {id(o) for o in gc.get_objects()}
        del a, b
        assert gc.collect() >= 2
    finally:
        gc.unfreeze()  # (the rest of the test run collects as usual)


@pytest.mark.slow
def test_serve_freezes_the_heap_once_started(
    tmp_path: Path, cli: Callable[..., list[str]], cli_env: dict[str, str]
) -> None:
    model = write_gsr_model(tmp_path / "models" / "gsr-tiny")
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**cli_env, "AFFECTSTREAM_MODEL_DIR": str(model.parent)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cli("serve", "--port", str(port), "--log-level", "info"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(healthy, 60, what="serve answers /health")
        deadline = time.monotonic() + 5
        while "set aside from garbage collection" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.1)
    finally:
        stop_process(proc)
    line = next(ln for ln in log.read_text().splitlines() if "garbage collection" in ln)
    assert int(line.split(" objects set aside")[0].rsplit(" ", 1)[-1]) > 10_000
