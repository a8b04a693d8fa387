"""A gateway on the Redis bus: the session registry, REST and the WebSocket relay, no signals.

``affectstream serve --bus redis://…`` makes the service a gateway (issue #17). It loads the
models (to validate requests and answer ``GET /models``) but runs no LSL ingest, preprocessing or
inference: workers (:mod:`affectstream.service.worker`) do, for the sessions the registry lists.
Any gateway relays any session, so clients may connect to whichever gateway a load balancer
gives them and resume there.

The relay reuses the embedded service's hub (:mod:`affectstream.service.hub`): one task per
session with clients on this gateway reads the session's Redis stream
(:func:`affectstream.service.bus.follow`) and publishes each entry into the hub, which queues it
per client and keeps the last ``resume_buffer`` predictions for resuming clients, exactly as
when the scheduler publishes. Before the first client of a session subscribes, the task loads
the entries Redis still keeps into the hub, so a client resuming at a gateway it never talked to
gets what it missed (up to what the stream keeps, ``resume_buffer`` predictions and their status
messages).

Redis going away: the relay tasks and the registry keeper retry with backoff (0.2 s doubling to
5 s); ``GET /health`` says ``"bus": {"connected": false}`` meanwhile. When Redis comes back
empty (restarted without persistence, detected by its changed ``run_id``), the keeper puts back
the sessions of its last registry snapshot, with new epochs: workers claim them again, clients
see a reset (``hello.resume.reset``) and go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import redis.asyncio as aredis

from affectstream.service.bus import Bus, follow, redact_url
from affectstream.service.hub import Hub

__all__ = ["Gateway", "RemoteSession"]

log = logging.getLogger("affectstream.gateway")

KEEP_EVERY_S = 1.0
"""The registry keeper's period: registry snapshot, Redis restart detection, bus health."""


@dataclass
class RemoteSession:
    """A session served by some worker, as a gateway sees it: the request it was created with,
    its epoch, and what its worker last said (``None`` until a worker holds it)."""

    id: str
    epoch: str
    request: dict[str, Any]
    snapshot: dict[str, Any] | None
    worker: str | None

    def hello_fields(self) -> dict[str, Any]:
        snap = self.snapshot or {}
        return {
            "models": snap.get("models") or list(self.request.get("models") or []),
            "streams": snap.get("streams") or [],
            "model_status": snap.get("model_status") or [],
            "session_state": snap.get("session_state", "unserved"),
            "reason": snap.get("reason", "")
            if self.snapshot is not None
            else "no worker holds this session yet",
        }

    def describe(self) -> dict[str, Any]:
        base = dict((self.snapshot or {}).get("describe") or {})
        return {
            **base,
            "session": self.id,
            "epoch": self.epoch,
            "worker": self.worker,
            "request": self.request,
            **(
                {}
                if self.snapshot
                else {
                    "served": False,
                    "unserved": "no worker holds it yet",
                    "streams": [],
                    "models": [],
                }
            ),
        }


@dataclass
class Gateway:
    bus: Bus
    hub: Hub
    aredis_client: aredis.Redis | None = None
    relays: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    ready: dict[str, asyncio.Event] = field(default_factory=dict)
    connected: bool = True
    last_error: str = ""
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The keeper's last snapshot of the registry (what is put back after a Redis restart)."""
    run_id: str | None = None
    restarts_seen: int = 0
    _keeper: asyncio.Task[None] | None = None

    @classmethod
    def connect(cls, url: str, hub: Hub) -> Gateway:
        """Connect to ``url`` (``BusUnavailableError`` naming it when Redis cannot be reached);
        the stream length follows the hub's resume buffer."""
        bus = Bus.connect(url, maxlen=max(64, hub.resume_buffer + 256))
        return cls(bus, hub)

    # -- lifecycle (on the event loop) --------------------------------------------------------

    def start(self) -> None:
        self.aredis_client = aredis.Redis.from_url(
            self.bus.url, decode_responses=True, socket_connect_timeout=2.0
        )
        self.run_id = self._run_id()
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def close(self) -> None:
        tasks = [*self.relays.values(), *([self._keeper] if self._keeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.aredis_client is not None:
            await self.aredis_client.aclose()
        self.bus.close()

    # -- sessions ----------------------------------------------------------------------------

    def session(self, session_id: str) -> RemoteSession | None:
        """The session as the registry and its worker describe it; ``None`` if not registered."""
        with self._redis_call():
            request = self.bus.request(session_id)
            if request is None:
                return None
            epoch = self.bus.epoch(session_id) or ""
            snapshot = self.bus.session_state(session_id)
            worker = self.bus.holder(session_id)
        return RemoteSession(session_id, epoch, request, snapshot, worker)

    def sessions(self) -> list[RemoteSession]:
        with self._redis_call():
            ids = sorted(self.bus.sessions())
        found = [self.session(sid) for sid in ids]
        return [s for s in found if s is not None]

    def create(self, session_id: str, request: dict[str, Any]) -> RemoteSession:
        with self._redis_call():
            self.bus.put_session(session_id, request)
        created = self.session(session_id)
        assert created is not None
        return created

    def delete(self, session_id: str) -> bool:
        with self._redis_call():
            return self.bus.delete_session(session_id)

    def count(self) -> int:
        with self._redis_call():
            return self.bus.count()

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` shows of the bus: reachable, sessions and leases, workers' load."""
        out: dict[str, Any] = {"url": redact_url(self.bus.url), "connected": self.connected}
        if not self.connected:
            out["error"] = self.last_error
            return out
        try:
            ids = list(self.bus.sessions())
            holders = self.bus.leases(ids)
            workers = self.bus.workers()
        except redis.RedisError as e:
            return {**out, "connected": False, "error": str(e)}
        return {
            **out,
            "sessions": len(ids),
            "leased": sum(h is not None for h in holders.values()),
            "unleased": [s for s, h in holders.items() if h is None],
            "workers": workers,
            "relays": len(self.relays),
            "redis_restarts_seen": self.restarts_seen,
        }

    # -- the relay ----------------------------------------------------------------------------

    async def relay_ready(self, session_id: str, timeout_s: float = 5.0) -> bool:
        """Start the session's relay if it is not running and wait until the hub holds what
        Redis keeps of it (``False`` if that did not happen within ``timeout_s``)."""
        task = self.relays.get(session_id)
        if task is None or task.done():
            self.ready[session_id] = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._relay(session_id))
            self.relays[session_id] = task
        try:
            await asyncio.wait_for(self.ready[session_id].wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _relay(self, session_id: str) -> None:
        client = self.aredis_client
        assert client is not None
        stream = self.bus.key("msgs", session_id)
        epoch: str | None = None
        last = "0-0"
        backoff = 0.2
        missing_since: float | None = None
        try:
            while True:
                try:
                    key = self.bus.key("epoch", session_id)
                    now_epoch = cast(str | None, await client.get(key))
                    if now_epoch is None:
                        missing_since = missing_since or time.monotonic()
                        if await self._gone(client, session_id, stream, missing_since):
                            self.hub.publish_now(
                                session_id, {"type": "closed", "session": session_id}
                            )
                            return
                        await asyncio.sleep(0.5)  # Redis lost it; the keeper puts it back
                        continue
                    missing_since = None
                    if now_epoch != epoch:  # first start, or Redis restarted: a new incarnation
                        if epoch is not None:  # its clients reconnect and get the new epoch
                            self.hub.publish_now(session_id, {"type": "restarted"})
                        epoch, last = now_epoch, "0-0"
                        self.hub.publish_now(session_id, {"type": "opened", "epoch": epoch})
                    self.ready[session_id].set()
                    async for entry in follow(client, stream, last, block_ms=1000):
                        self.connected, backoff = True, 0.2
                        last = entry.id
                        self.hub.publish_now(session_id, entry.message)
                        if entry.message.get("type") == "closed":
                            return
                except (redis.RedisError, OSError) as e:
                    self.connected, self.last_error = False, str(e)
                    log.warning("relay of %s: bus unreachable (%s); retrying", session_id, e)
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
        finally:
            self.relays.pop(session_id, None)

    async def _gone(self, client: aredis.Redis, session_id: str, stream: str, since: float) -> bool:
        """Whether a session without an epoch was deleted (its stream ends with ``closed``, or
        it stayed out of the registry for 10 s) rather than lost by a restarting Redis."""
        tail = cast(list[tuple[str, dict[str, str]]], await client.xrevrange(stream, count=1))
        if tail and tail[0][1].get("kind") == "closed":
            return True
        registered = await client.hexists(self.bus.key("sessions"), session_id)
        return not registered and time.monotonic() - since > 10.0

    # -- the registry keeper ------------------------------------------------------------------

    async def _keep(self) -> None:
        backoff = KEEP_EVERY_S
        while True:
            await asyncio.sleep(backoff)
            try:
                run_id, registry = await asyncio.to_thread(self._snapshot)
            except (redis.RedisError, OSError) as e:
                self.connected, self.last_error = False, str(e)
                backoff = min(5.0, backoff * 2)
                continue
            self.connected, backoff = True, KEEP_EVERY_S
            if self.run_id is not None and run_id != self.run_id and self.registry:
                # Redis restarted and lost its data: put our last view of the registry back
                self.restarts_seen += 1
                lost = {k: v for k, v in self.registry.items() if k not in registry}
                log.warning(
                    "bus restarted (run_id %s → %s): putting back %d session(s)",
                    self.run_id,
                    run_id,
                    len(lost),
                )
                for sid, request in lost.items():
                    await asyncio.to_thread(self.bus.put_session, sid, request)
                    registry[sid] = request
            self.run_id, self.registry = run_id, registry

    def _snapshot(self) -> tuple[str, dict[str, dict[str, Any]]]:
        return self._run_id(), self.bus.sessions()

    def _run_id(self) -> str:
        info = self.bus.r.info("server")
        return str(info.get("run_id", ""))

    @contextlib.contextmanager
    def _redis_call(self) -> Any:
        try:
            yield
        except (redis.RedisError, OSError) as e:
            self.connected, self.last_error = False, str(e)
            raise
        self.connected = True
