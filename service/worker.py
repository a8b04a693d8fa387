"""A worker on the Redis bus: it holds sessions under leases and publishes their messages there.

``affectstream worker --bus redis://…`` runs one (:mod:`affectstream.service.commands.worker`).
It is the embedded service's core without its HTTP side: the same
:class:`~affectstream.service.state.ServiceState` (models, stream directory, scheduler, sessions),
with the hub replaced by :class:`BusHub`, which hands every message to
:meth:`Bus.publish <affectstream.service.bus.Bus.publish>` instead of to WebSocket queues.

Its lease loop (:meth:`Worker.step`, every ``renew_s``):

1. heartbeat (``{p}:worker:{id}``, expiring with the lease time): its load, which gateways show;
2. renew the lease of every session it holds; a session whose lease it lost (it stalled longer
   than the lease, and another worker took over) or that left the registry (deleted) is closed
   here at once. Fencing in Redis already stops a stale holder from publishing;
3. claim sessions that nobody holds, up to its fair share (the sessions divided among the live
   workers, rounded up) and never beyond ``max_sessions`` (a full worker stops claiming, so new
   workers pick up new sessions), and open them from the registry's request, with a
   ``session_status`` message saying which worker serves them and, after a takeover, from which
   seq on (predictions the dead worker would have made are not made up: the gap in time is
   announced, ``seq`` itself continues without a hole);
4. apply the stimulus a gateway stored for each session it holds (``PUT /sessions/{id}/stimulus``
   on any gateway, for fusion models), backdated to when the gateway received it: the gateway
   stores its wall-clock time, the worker subtracts the time since then (clamped at 0) from its
   LSL clock, so windows starting after the request use the new stimulus although the worker
   learns of it up to ``renew_s`` later (this assumes the machines' wall clocks agree, as NTP
   keeps them to milliseconds). A session taken over gets its stimulus at the new worker's first
   step.

A worker killed with SIGKILL stops renewing; its leases expire after ``lease_ms`` and the others
claim the sessions on their next step, so a takeover takes at most ``lease_ms + renew_s`` plus
the session's stream discovery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from affectstream.service.bus import Bus
from affectstream.service.hub import Hub
from affectstream.service.messages import SessionBody, SessionStatus, now_iso
from affectstream.service.settings import Settings
from affectstream.service.state import ServiceState, session_match
from affectstream.streaming.lsl.inlet import local_clock

__all__ = ["BusHub", "Worker", "default_worker_id"]

log = logging.getLogger("affectstream.worker")

INTERNAL = frozenset({"closed", "opened", "ended"})
"""Hub-internal messages (a session's incarnation starting and ending, its deletion): they are
about this process's sessions, not the session on the bus, and never go there."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class BusHub(Hub):
    """The hub of a worker: messages go to the session's Redis stream, fenced by its lease.

    Internal messages (:data:`INTERNAL`) are not forwarded: a worker closes a session when it
    loses it, which is not the end of the session (the gateway says when a session is
    deleted)."""

    bus: Bus | None = None
    worker: str = ""
    fenced: int = 0
    """Messages refused because the lease was no longer ours (counted, never written)."""
    errors: int = 0
    """Messages lost because Redis could not be reached (counted and logged)."""
    held: set[str] = field(default_factory=set)

    def publish(self, session: str, message: dict[str, Any]) -> None:
        if message.get("type") in INTERNAL or self.bus is None or session not in self.held:
            return
        try:
            seq = self.bus.publish(session, self.worker, message)
        except redis.RedisError as e:  # Redis away or refusing: counted, the pipeline goes on
            self.errors += 1
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.warning(
                    "session %s: message not published (%d so far): %s", session, self.errors, e
                )
            return
        self.published_total += 1
        if seq is None:
            self.fenced += 1

    def publish_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Each ``(session, message)`` to the bus in order (the scheduler hands a model's
        predictions over in one batch)."""
        for session, message in items:
            self.publish(session, message)


@dataclass
class Worker:
    settings: Settings
    bus: Bus
    worker_id: str = field(default_factory=default_worker_id)
    max_sessions: int = 32
    lease_ms: int = 3000
    renew_s: float = 1.0
    state: ServiceState = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    takeovers: int = 0
    freeze_heap: bool = False  # ``affectstream worker`` sets it (:mod:`affectstream.service.heap`)
    _stimuli: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state = ServiceState.from_settings(self.settings)
        self.hub = BusHub(bus=self.bus, worker=self.worker_id)
        self.state.hub = self.hub

    @property
    def held(self) -> set[str]:
        return self.hub.held

    def start(self) -> None:
        """Load the models and start the scheduler (no HTTP, no auto-attach: sessions come from
        the registry)."""
        self.state.settings = self.settings.model_copy(update={"auto_attach": False})
        # the hub never uses the loop: nothing is queued; the heap is frozen before any session
        self.state.start(asyncio.new_event_loop(), freeze_heap=self.freeze_heap)

    def close(self) -> None:
        """Release every lease (another worker takes over at once) and stop."""
        self.stop.set()
        for sid in list(self.held):
            self._drop(sid, release=True)
        self.state.close()
        self.bus.heartbeat(self.worker_id, {"sessions": 0, "stopping": True}, ttl_ms=1)

    def run(self) -> None:
        """The lease loop until :attr:`stop` is set."""
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.step()
            except redis.RedisError as e:  # Redis away: keep the sessions, try again next step
                log.warning("worker %s: bus unreachable (%s); retrying", self.worker_id, e)
            except Exception:
                log.exception("worker %s: lease step failed", self.worker_id)
            self.stop.wait(max(0.0, self.renew_s - (time.monotonic() - t0)))

    def step(self) -> None:
        self.bus.heartbeat(self.worker_id, self.load(), ttl_ms=self.lease_ms)
        registry = self.bus.sessions()
        for sid in list(self.held):
            if sid not in registry:
                log.info("session %s left the registry: closed", sid)
                self._drop(sid, release=True)
            elif not self.bus.renew(sid, self.worker_id, self.lease_ms):
                log.warning("session %s: lease lost (another worker holds it)", sid)
                self._drop(sid, release=False)
        for sid in self.held:
            self._put_state(sid)
        share = self.fair_share(len(registry))
        for sid, request in registry.items():
            if len(self.held) >= share:
                break
            if sid in self.held or self.bus.holder(sid) is not None:
                continue
            if self.bus.claim(sid, self.worker_id, self.lease_ms):
                self._open(sid, request)
        self._apply_stimuli()

    def _apply_stimuli(self) -> None:
        """Apply each held session's stored stimulus when it changed (module docstring, 4)."""
        for sid, raw in self.bus.stimuli(sorted(self.held)).items():
            if raw == self._stimuli.get(sid):
                continue
            session = self.state.find_session(sid)
            if session is None:
                continue
            self._stimuli[sid] = raw
            if raw is None:
                session.set_stimulus(None, None)
                continue
            value = json.loads(raw)
            late = max(0.0, time.time() - float(value.get("set_at", time.time())))
            features = value.get("features")
            session.set_stimulus(
                value.get("id"),
                None if features is None else np.asarray(features, dtype=np.float64),
                at=local_clock() - late,
            )
            log.info(
                "session %s: stimulus %s applied (%.2f s after the request)",
                sid,
                value.get("id"),
                late,
            )

    def fair_share(self, n_sessions: int) -> int:
        """How many sessions this worker may hold: an equal share among the live workers (their
        heartbeats), so that sessions spread instead of going to whichever worker claims first,
        never more than ``max_sessions``. A dead worker's heartbeat expires with its leases, so
        its sessions fit into the others' shares by the time they can be claimed."""
        live = max(1, len(self.bus.workers()))
        return min(self.max_sessions, -(-n_sessions // live))

    def load(self) -> dict[str, Any]:
        return {
            "sessions": len(self.held),
            "max_sessions": self.max_sessions,
            "fenced": self.hub.fenced,
            "errors": self.hub.errors,
            "published": self.hub.published_total,
            "takeovers": self.takeovers,
            "pid": os.getpid(),
        }

    def _open(self, sid: str, request: dict[str, Any]) -> None:
        try:
            body = SessionBody.model_validate({**request, "session": sid})
            self.state.add_session(
                sid,
                session_match(body.match),
                body.models,
                body.stream_overrides(),
                lsl_out=body.lsl_out,
            )
        except Exception as e:  # the gateway validated it; a worker that cannot open it says so
            log.error("session %s cannot be opened here: %s", sid, e)
            self.bus.release(sid, self.worker_id)
            return
        last = self.bus.last_seq(sid)
        if last:
            self.takeovers += 1
        self.held.add(sid)
        self._put_state(sid)
        reason = f"served by worker {self.worker_id}" + (
            f"; taken over after seq {last}: windows between the previous worker's last "
            "prediction and this one's first were not predicted"
            if last
            else ""
        )
        status = SessionStatus(session=sid, state="served", reason=reason, emitted_at=now_iso())
        self.bus.publish(sid, self.worker_id, status.dump())
        log.info("session %s claimed (%s)", sid, reason)

    def _put_state(self, sid: str) -> None:
        """What gateways show of the session: the fields of ``hello`` and of ``GET``."""
        session = self.state.find_session(sid)
        if session is None:
            return
        snapshot = {
            "describe": session.describe(),
            "models": [slot.name for slot in session.slots],
            "streams": session.ingest.report(),
            "model_status": [row.model_dump(mode="json") for row in session.model_rows()],
            "session_state": "served" if session.served else "unserved",
            "reason": session.unserved_reason(),
        }
        self.bus.put_state(sid, self.worker_id, snapshot, ttl_ms=self.lease_ms)

    def _drop(self, sid: str, *, release: bool) -> None:
        self.held.discard(sid)
        self._stimuli.pop(sid, None)
        if self.state.find_session(sid) is not None:
            self.state.remove_session(sid)
        if release:
            self.bus.release(sid, self.worker_id)
