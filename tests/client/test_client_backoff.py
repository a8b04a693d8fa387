"""The Python client's parts that need no service: backoff delays, the URL it connects to, the
arguments it refuses, retrying where nothing listens (the live behaviour: test_client_live.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from affectstream.client import NO_RETRY, Backoff, GaveUpError, SessionClient, UnauthorizedError


def test_backoff_grows_exponentially_up_to_its_bound_with_jitter_taken_off() -> None:
    b = Backoff(initial=0.5, factor=2.0, max_delay=4.0, jitter=0.5)
    assert [b.delay(n, rand=lambda: 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [b.delay(n, rand=lambda: 1.0) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    delays = {b.delay(3) for _ in range(50)}  # the default random source: spread in [2, 4]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(delays) > 1
    assert b.delay(10_000, rand=lambda: 0.0) == 4.0  # no overflow far out
    for bad in (
        {"initial": 0.0},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"initial": 5.0, "max_delay": 1.0},
    ):
        with pytest.raises(ValueError, match="Backoff"):
            Backoff(**bad)  # type: ignore[arg-type]


def test_the_client_speaks_websocket_to_the_service_url_it_is_given() -> None:
    for base, ws in (
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000"),
        ("https://lab.example/affect/", "wss://lab.example/affect"),
        ("ws://h:1", "ws://h:1"),
    ):
        assert SessionClient(base, "p 01").url == f"{ws}/ws/sessions/p%2001"
    for bad_url in ("127.0.0.1:8000", "ftp://h/", "http://"):
        with pytest.raises(ValueError, match="service URL"):
            SessionClient(bad_url, "p01")
    with pytest.raises(ValueError, match="since"):
        SessionClient("http://h", "p01", since=-1)
    with pytest.raises(ValueError, match="session"):
        SessionClient("http://h", "")


def test_close_codes_that_retrying_cannot_fix_are_typed() -> None:
    assert set(NO_RETRY) == {4401, 4403, 4404, 4410, 1008, 1009}
    assert NO_RETRY[4401] is UnauthorizedError
    assert not {1006, 1011, 1012, 1013} & set(NO_RETRY)  # retried with backoff


def _nobody_listening() -> str:
    """A loopback URL where connections are refused (a port free right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_refused_connections_are_retried_until_max_attempts() -> None:
    client = SessionClient(
        _nobody_listening(), "p01", backoff=Backoff(initial=0.05, max_delay=0.05), max_attempts=3
    )
    started = time.monotonic()
    with pytest.raises(GaveUpError, match="3 connection attempts") as gave_up:
        asyncio.run(client.connect())
    assert isinstance(gave_up.value.__cause__, OSError)
    assert time.monotonic() - started >= 2 * 0.025  # two waits of at least half the delay


def test_closing_while_it_retries_ends_the_iteration_quietly() -> None:
    async def scenario() -> list[Any]:
        client = SessionClient(_nobody_listening(), "p01", backoff=Backoff(initial=0.1))
        seen: list[Any] = []

        async def iterate() -> None:
            async for m in client.messages():
                seen.append(m)

        task = asyncio.create_task(iterate())
        await asyncio.sleep(0.3)  # a few refused attempts
        assert not task.done()
        await client.close()
        await asyncio.wait_for(task, 2)  # ends, without an exception
        assert client.reconnects == 0 and not client.connected
        return seen

    assert asyncio.run(scenario()) == []
