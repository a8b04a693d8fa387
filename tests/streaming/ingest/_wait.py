"""Waiting in the acquisition tests (test_acquisition_hold.py, test_acquisition_loop.py): each
module binds its own timeout (``functools.partial(wait, seconds=…)``); a call can still give
another."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait(until: Callable[[], bool], what: str, seconds: float, poll_s: float = 0.002) -> None:
    """Poll ``until`` every ``poll_s`` until it is true; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(poll_s)
