"""Publish/subscribe of session messages to WebSocket clients, with bounded queues, and each
session's resume buffer.

Each subscriber has its own ``asyncio.Queue`` of at most ``queue_size`` messages. Publishing never
waits: when a subscriber's queue is full the *oldest* message is dropped (counted, and reported to
that subscriber in its next message's ``dropped`` field), so a slow or dead client never delays the
pipeline or any other client. Publishing is thread-safe: the scheduler thread hands messages to the
event loop with ``call_soon_threadsafe``.

Messages come in as the wire dicts of :mod:`affectstream.service.messages` (``.dump()``):
predictions from the scheduler, status messages from the sessions, ``closed`` when a session is
removed. Each is queued as one :class:`~affectstream.service.messages.Wire` (the same dict, which
keeps its JSON text once encoded), so a message is encoded once however many clients receive it
(#16). Messages published from other threads within one turn of the event loop are handed over in
one batch (one ``call_soon_threadsafe``, one wake-up of the loop), in order. The WebSocket route
(:mod:`affectstream.service.api.ws`) drains each subscriber's queue to its client.

Resume: per session the hub also keeps the last ``resume_buffer`` predictions exactly as they were
published (:class:`Kept`, without any subscriber's ``dropped``: each as its seq and JSON text),
for clients that reconnect with
``?since=`` (docs/protocol.md, "Resume"). A session announces each incarnation with an internal
``opened`` message carrying its epoch (and ``ended`` when it closes), so the buffer always belongs
to one incarnation; both travel the same ordered path as the predictions. Everything here runs on
the event loop, so a WebSocket that takes :meth:`Hub.kept` and :meth:`Hub.subscribe` without
awaiting in between gets every prediction exactly once: published before, in the snapshot; after,
in its queue.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from affectstream.service.messages import Wire

__all__ = ["Hub", "Kept", "KeptPrediction", "Subscriber"]


@dataclass(eq=False)
class Subscriber:
    session: str
    queue: asyncio.Queue[dict[str, Any]]
    id: int
    dropped: int = 0
    delivered: int = 0


KeptPrediction = tuple[int, str]
"""A kept prediction: its ``seq`` and its JSON text as published. A plain tuple of an int and a
str, which the garbage collector stops tracking after its first look, so a session's kept
predictions cost a full collection nothing. Kept as the message dicts they were two tracked
objects each (the message and its ``quality``), about half of what a full collection walked once
the start-up objects are set aside (measured at 40 wearable sessions a minute in: 9 482 kept
messages among 37 378 tracked objects; a full collection holds the whole process, #16,
:mod:`affectstream.service.heap`).
It also keeps ~600 bytes of text per prediction instead of its dicts."""


@dataclass(eq=False)
class Kept:
    """One incarnation's last predictions (at most ``maxlen``), oldest first, and the latest
    seq published for it (also when ``maxlen`` is 0 and nothing is kept)."""

    epoch: str
    messages: deque[KeptPrediction]
    last_seq: int = 0

    @property
    def first_seq(self) -> int:
        """The oldest kept seq (``last_seq + 1`` when none is kept: the next one to come)."""
        return self.messages[0][0] if self.messages else self.last_seq + 1


@dataclass
class Hub:
    queue_size: int = 64
    loop: asyncio.AbstractEventLoop | None = None
    resume_buffer: int = 1024
    """Predictions kept per session for resuming clients (0: none)."""
    _subs: dict[str, set[Subscriber]] = field(default_factory=lambda: defaultdict(set))
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _kept: dict[str, Kept] = field(default_factory=dict)
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
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

    def kept(self, session: str, epoch: str) -> Kept:
        """A snapshot of incarnation ``epoch`` of ``session``'s kept predictions (empty when the
        hub has not heard of that incarnation yet). Call on the event loop."""
        kept = self._kept.get(session)
        if kept is None or kept.epoch != epoch:
            return Kept(epoch, deque())
        return Kept(epoch, deque(kept.messages), kept.last_seq)

    def publish(self, session: str, message: dict[str, Any]) -> None:
        """From any thread: queue ``message`` for every subscriber of ``session`` (on the event
        loop, in the order published; one wake-up of the loop per batch)."""
        loop = self.loop
        if loop is None:
            return
        with self._pending_lock:
            self._pending.append((session, message))
            first = len(self._pending) == 1
        if first:  # the batch's first message: the loop is told once
            loop.call_soon_threadsafe(self._drain)

    def publish_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """From any thread: :meth:`publish` each ``(session, message)``, waking the loop once."""
        loop = self.loop
        if loop is None or not items:
            return
        with self._pending_lock:
            first = not self._pending
            self._pending.extend(items)
        if first:
            loop.call_soon_threadsafe(self._drain)

    def publish_now(self, session: str, message: dict[str, Any]) -> None:
        """On the event loop: publish ``message`` at once (a gateway's relay runs there), after
        whatever other threads published before."""
        self._drain()
        self._publish(session, message)

    def _drain(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        for session, message in batch:
            self._publish(session, message)

    def _publish(self, session: str, message: dict[str, Any]) -> None:
        if not isinstance(message, Wire):
            message = Wire(message)  # encoded at most once, for every subscriber
        kind = message.get("type")
        if kind == "opened":
            self._kept[session] = Kept(str(message["epoch"]), deque(maxlen=self.resume_buffer))
            return
        if kind == "ended":
            kept = self._kept.get(session)
            if kept is not None and kept.epoch == message["epoch"]:
                del self._kept[session]
            return
        if kind == "prediction":
            kept = self._kept.get(session)
            if kept is not None:
                kept.last_seq = int(message["seq"])
                if self.resume_buffer:  # (encoded here once, for the subscribers as well)
                    kept.messages.append((kept.last_seq, message.text))
        self.published_total += 1
        for sub in list(self._subs.get(session, ())):
            if sub.queue.full():
                sub.queue.get_nowait()  # drop the oldest: newest data matter most
                sub.dropped += 1
                self.dropped_total += 1
            sub.queue.put_nowait(message)
