"""Threads name themselves at the OS level (#16): ``top -H`` and the benchmark's per-thread CPU
split read the names from ``/proc``."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from affectstream.streaming.threadname import name_os_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_thread_takes_its_python_name_cut_to_fifteen_bytes() -> None:
    seen: dict[str, str] = {}

    def run(key: str, name: str | None) -> None:
        assert name_os_thread(name)
        comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()
        seen[key] = comm

    threads = [
        threading.Thread(target=run, args=("own", None), name="scheduler"),
        threading.Thread(target=run, args=("long", "acquire-watchdog-of-everything"), name="x"),
    ]
    for t in threads:
        t.start()
        t.join(10)
    assert seen == {"own": "scheduler", "long": "acquire-watchdo"}  # 15 bytes
