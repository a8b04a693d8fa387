"""Publish/subscribe of session messages to WebSocket clients, with bounded queues.

Each subscriber has its own ``asyncio.Queue`` of at most ``queue_size`` messages. Publishing never
waits: when a subscriber's queue is full the *oldest* message is dropped (counted, and reported to
that subscriber in its next message's ``dropped`` field), so a slow or dead client never delays the
pipeline or any other client. Publishing is thread-safe: the scheduler thread hands messages to the
event loop with ``call_soon_threadsafe``.

Messages come in as the wire dicts of :mod:`affectstream.service.messages` (``.dump()``):
predictions from the scheduler, status messages from the sessions, ``closed`` when a session is
removed. The WebSocket route (:mod:`affectstream.service.api.ws`) drains each subscriber's queue
to its client.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hub", "Subscriber"]


@dataclass(eq=False)
class Subscriber:
    session: str
    queue: asyncio.Queue[dict[str, Any]]
    id: int
    dropped: int = 0
    delivered: int = 0


@dataclass
class Hub:
    queue_size: int = 64
    loop: asyncio.AbstractEventLoop | None = None
    _subs: dict[str, set[Subscriber]] = field(default_factory=lambda: defaultdict(set))
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    dropped_total: int = 0
    published_total: int = 0

    def subscribe(self, session: str) -> Subscriber:
        sub = Subscriber(session, asyncio.Queue(self.queue_size), next(self._ids))
        self._subs[session].add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs[sub.session].discard(sub)

    def subscribers(self, session: str | None = None) -> list[Subscriber]:
        if session is not None:
            return list(self._subs.get(session, ()))
        return [s for subs in self._subs.values() for s in subs]

    def publish(self, session: str, message: dict[str, Any]) -> None:
        """From any thread: queue ``message`` for every subscriber of ``session``."""
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(self._publish, session, message)

    def _publish(self, session: str, message: dict[str, Any]) -> None:
        self.published_total += 1
        for sub in list(self._subs.get(session, ())):
            if sub.queue.full():
                sub.queue.get_nowait()  # drop the oldest: newest data matter most
                sub.dropped += 1
                self.dropped_total += 1
            sub.queue.put_nowait(message)
