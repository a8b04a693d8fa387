"""The Redis bus against a real ``redis-server`` (started here on a free loopback port): registry,
leases with fencing, seq continuity across a takeover, resume ranges, trimming, the relay, and
a clear error for an unreachable Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from redis_server import RedisServer, free_port

from affectstream.service.bus import Bus, BusUnavailableError, Entry, follow, redact_url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()


@pytest.fixture
def bus(server: RedisServer, request: pytest.FixtureRequest) -> Iterator[Bus]:
    # one key prefix per test: tests share the server but not their keys
    b = Bus.connect(server.url, prefix=f"t-{request.node.name}", maxlen=64)
    yield b
    for key in b.r.scan_iter(match=f"{b.prefix}:*"):
        b.r.delete(key)
    b.close()


def _prediction(valence: float = 0.5) -> dict[str, object]:
    return {"type": "prediction", "session": "s1", "model": "m@1", "valence": valence}


def test_unreachable_redis_is_a_clear_error_naming_the_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(BusUnavailableError, match=r"cannot reach the bus at redis://:\*\*\*@127"):
        Bus.connect(url, timeout_s=0.5)
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_registry_keeps_requests_and_one_epoch_per_incarnation(bus: Bus) -> None:
    epoch = bus.put_session("s1", {"source_id_prefix": "lab1", "models": []})
    assert bus.sessions() == {"s1": {"source_id_prefix": "lab1", "models": []}}
    assert bus.put_session("s1", {"source_id_prefix": "lab1", "models": []}) == epoch  # kept
    assert bus.epoch("s1") == epoch
    assert bus.delete_session("s1") is True
    assert bus.delete_session("s1") is False
    assert bus.sessions() == {}
    assert bus.put_session("s1", {}) != epoch  # a new incarnation


def test_a_lease_is_exclusive_renewable_and_expires(bus: Bus) -> None:
    assert bus.claim("s1", "w1", ttl_ms=300)
    assert not bus.claim("s1", "w2", ttl_ms=300)
    assert bus.holder("s1") == "w1"
    assert bus.renew("s1", "w1", ttl_ms=300)
    assert not bus.renew("s1", "w2", ttl_ms=300)
    time.sleep(0.45)  # no renewal: it lapses
    assert bus.holder("s1") is None
    assert bus.claim("s1", "w2", ttl_ms=5000)
    assert not bus.renew("s1", "w1", ttl_ms=300)  # the old holder learns it lost the session
    assert not bus.release("s1", "w1")
    assert bus.release("s1", "w2") and bus.holder("s1") is None
    assert bus.leases(["s1", "s2"]) == {"s1": None, "s2": None}


def test_seq_increases_across_a_takeover_and_a_fenced_worker_writes_nothing(bus: Bus) -> None:
    bus.put_session("s1", {})
    assert bus.claim("s1", "w1", ttl_ms=200)
    assert [bus.publish("s1", "w1", _prediction()) for _ in range(3)] == [1, 2, 3]
    assert bus.publish("s1", "w1", {"type": "model_status", "state": "running"}) == 3
    time.sleep(0.3)  # w1 stalls; its lease lapses; w2 takes over
    assert bus.claim("s1", "w2", ttl_ms=5000)
    assert bus.publish("s1", "w1", _prediction()) is None  # the stalled worker wakes: fenced
    assert bus.publish("s1", "w2", {"type": "status", "reason": "taken over"}) == 3
    assert bus.publish("s1", "w2", _prediction()) == 4
    entries = bus.after("s1", 0)
    assert [e.id for e in entries] == ["1-0", "2-0", "3-0", "3-1", "3-2", "4-0"]
    assert [e.message.get("seq") for e in entries if e.sub == 0] == [1, 2, 3, 4]
    assert entries[4].message == {"type": "status", "reason": "taken over"}
    assert bus.last_seq("s1") == 4
    # resume after prediction 2: its status messages and everything later, nothing before
    assert [e.id for e in bus.after("s1", 2)] == ["3-0", "3-1", "3-2", "4-0"]
    assert bus.after("s1", 4) == []


def test_the_stream_is_bounded_and_first_kept_says_what_resume_can_reach(bus: Bus) -> None:
    bus.put_session("s1", {})
    assert bus.claim("s1", "w1", ttl_ms=5000)
    for _ in range(500):
        bus.publish("s1", "w1", _prediction())
    kept = bus.after("s1", 0)
    assert 64 <= len(kept) < 500  # MAXLEN ~ 64 trims whole nodes: about 64, never all 500
    first = bus.first_kept("s1")
    assert first is not None and kept[0].seq == first and kept[-1].seq == 500
    assert [e.seq for e in kept] == list(range(first, 501))  # contiguous: nothing lost inside


def test_heartbeats_expire_with_their_worker(bus: Bus) -> None:
    bus.heartbeat("w1", {"sessions": 3}, ttl_ms=200)
    bus.heartbeat("w2", {"sessions": 1}, ttl_ms=5000)
    assert {k: v["sessions"] for k, v in bus.workers().items()} == {"w1": 3, "w2": 1}
    time.sleep(0.3)
    assert set(bus.workers()) == {"w2"}


def test_the_relay_follows_new_entries_in_order(bus: Bus, server: RedisServer) -> None:
    bus.put_session("s1", {})
    assert bus.claim("s1", "w1", ttl_ms=5000)
    bus.publish("s1", "w1", _prediction(0.1))  # before the relay starts, after its resume point

    async def relay() -> list[Entry]:
        client = aredis.Redis.from_url(server.url, decode_responses=True)
        got: list[Entry] = []
        try:

            async def consume() -> None:
                async for entry in follow(client, bus.key("msgs", "s1"), "0-0", block_ms=200):
                    got.append(entry)
                    if len(got) == 4:
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            for v in (0.2, 0.3):
                await asyncio.to_thread(bus.publish, "s1", "w1", _prediction(v))
            await asyncio.to_thread(bus.publish, "s1", "w1", {"type": "pong"})
            await asyncio.wait_for(task, 5)
        finally:
            await client.aclose()
        return got

    got = asyncio.run(relay())
    assert [e.id for e in got] == ["1-0", "2-0", "3-0", "3-1"]
    assert [e.message.get("valence") for e in got[:3]] == [0.1, 0.2, 0.3]


def test_a_restarted_redis_is_reachable_again_and_starts_empty(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path / "r").start()
    try:
        bus = Bus.connect(srv.url, prefix="restart")
        epoch = bus.put_session("s1", {})
        srv.stop()
        with pytest.raises(Exception, match=r"(?i)connect|closed|refused|reset"):
            bus.sessions()
        srv.start()
        # the same client reconnects on its next command; the state is gone (no persistence):
        # the gateway puts its sessions back, with a new epoch (clients see a reset)
        assert bus.sessions() == {}
        assert bus.put_session("s1", {}) != epoch
        bus.close()
    finally:
        srv.stop()
