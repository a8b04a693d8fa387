"""The WebSocket route ``/ws/sessions/{id}``: where a window's prediction leaves the service.

After :func:`~affectstream.service.api.deps.admit` (token, session), the client gets a
:class:`~affectstream.service.messages.Hello`, then every message the hub queues for the session
(:mod:`affectstream.service.hub`: predictions from the scheduler, status messages from the
session), each with ``dropped`` added when its queue lost messages since the last report. The
session's deletion (a :class:`~affectstream.service.messages.Closed` on the hub) closes the socket
with code 4410. Meanwhile :func:`read_client` answers the client: ``ping`` with a
:class:`~affectstream.service.messages.Pong`, anything else with an
:class:`~affectstream.service.messages.ErrorMessage` (binary frames and JSON too deep to parse
included: the connection stays); a message over ``max_ws_message_bytes`` closes the socket with
1009, more than ``max_ws_messages_per_s`` with an error message and then 1008, a session's
``max_subscribers + 1``-th client is closed with 1013 (try again later).

Resume (docs/protocol.md, "Resume"): with ``?since=<seq>`` (and ``?epoch=`` from the last hello)
the hello says what is replayed and missed (:func:`plan_resume`); a ``gap`` message follows when
predictions after ``since`` are no longer in the hub's resume buffer, then the kept predictions
after ``since``, then the live feed, with none twice and none lost in between (the buffer's
snapshot and the subscription are taken together on the event loop). A ``since`` or ``epoch``
that is not well formed closes the socket with 1008 and the reason (:func:`resume_params`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from affectstream.service.api.deps import WS_SESSION_CLOSED, AppState, admit
from affectstream.service.api.guard import close_reason
from affectstream.service.hub import Kept, KeptPrediction, Subscriber
from affectstream.service.messages import (
    ErrorMessage,
    Gap,
    Hello,
    Pong,
    Resume,
    Wire,
    encode,
    valid_epoch,
)
from affectstream.service.state import ServiceState

__all__ = [
    "BINARY",
    "MAX_SINCE",
    "UNSUPPORTED",
    "WS_MESSAGE_TOO_BIG",
    "WS_POLICY",
    "WS_SERVICE_RESTART",
    "WS_TRY_AGAIN",
    "RateLimit",
    "ResumePlan",
    "deliver",
    "plan_resume",
    "read_client",
    "resume_params",
    "router",
    "send_message",
]

router = APIRouter()

UNSUPPORTED = 'unsupported message: send JSON {"type": "ping"}; this endpoint only publishes'
BINARY = 'binary frames are not taken: send JSON text {"type": "ping"}'
WS_POLICY, WS_MESSAGE_TOO_BIG, WS_SERVICE_RESTART, WS_TRY_AGAIN = 1008, 1009, 1012, 1013
"""Close codes (RFC 6455): message rate exceeded, message too big, service restart (a gateway's
session re-created after Redis lost it: reconnect, the hello has the new epoch), too many
subscribers."""


@router.websocket("/ws/sessions/{session_id}")
async def session_messages(ws: WebSocket, session_id: str, state: AppState) -> None:
    session = await admit(ws, state, session_id)
    if session is None:
        return
    settings = state.settings
    try:
        since, epoch = resume_params(ws.query_params.get("since"), ws.query_params.get("epoch"))
    except ValueError as e:
        await ws.close(WS_POLICY, close_reason(str(e)))
        return
    if len(state.hub.subscribers(session_id)) >= settings.max_subscribers:
        await ws.close(
            WS_TRY_AGAIN,
            close_reason(
                f"session has {settings.max_subscribers} subscribers (max_subscribers); "
                "try again later"
            ),
        )
        return
    # no await between the snapshot and the subscription: every prediction is in one of them
    kept = state.hub.kept(session_id, session.epoch)
    sub = state.hub.subscribe(session_id)
    last_seq = session.seq
    plan = plan_resume(
        session_id, since, epoch, session.epoch, last_seq, kept, state.hub.resume_buffer
    )
    hello = Hello(
        session=session_id,
        models=[s.name for s in session.slots],
        streams=session.ingest.report(),
        model_status=session.model_rows(),
        session_state="served" if session.served else "unserved",
        reason=session.unserved_reason(),
        epoch=session.epoch,
        last_seq=last_seq,
        resume=plan.resume,
    )
    await deliver(ws, state, session_id, sub, hello, plan)


async def deliver(
    ws: WebSocket,
    state: ServiceState,
    session_id: str,
    sub: Subscriber,
    hello: Hello,
    plan: ResumePlan,
) -> None:
    """Send ``hello``, the resume ``plan`` (gap, replay), then the subscriber's queue until the
    client goes or the session is deleted (4410), while :func:`read_client` answers the client.
    Unsubscribes at the end. Shared by the embedded route and a gateway's
    (:mod:`affectstream.service.api.gateway`)."""
    settings = state.settings
    limit = RateLimit(settings.max_ws_messages_per_s)
    reader = asyncio.create_task(read_client(ws, session_id, settings.max_ws_message_bytes, limit))
    try:
        await send_message(ws, hello.dump())
        if plan.gap is not None:
            await send_message(ws, plan.gap.dump())
        replayed_to = 0
        for seq, text in plan.replay:
            await ws.send_text(text)
            replayed_to = seq
        reported = 0
        while True:
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            message = getter.result()
            if message.get("type") == "prediction" and int(message["seq"]) <= replayed_to:
                continue  # already replayed (cannot happen with the snapshot above; a guard)
            if sub.dropped != reported:
                message = {**message, "dropped": sub.dropped}
                reported = sub.dropped
            if message.get("type") == "closed":
                await ws.close(WS_SESSION_CLOSED, "session deleted")
                break
            if message.get("type") == "restarted":  # a gateway's session came back anew
                await ws.close(WS_SERVICE_RESTART, "session restarted on the bus; reconnect")
                break
            await send_message(ws, message)
            sub.delivered += 1
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        state.hub.unsubscribe(sub)


async def send_message(ws: WebSocket, message: dict[str, Any]) -> None:
    """Send one message as a JSON text frame; a hub's :class:`Wire` message goes out as the text
    it was encoded to once (the same for every subscriber), any other dict is encoded here."""
    await ws.send_text(message.text if isinstance(message, Wire) else encode(message))


MAX_SINCE = 2**63 - 1
"""The largest ``?since=`` taken (a seq is a 64-bit counter in any client)."""


def resume_params(since: str | None, epoch: str | None) -> tuple[int | None, str | None]:
    """``?since=`` and ``?epoch=`` as given: ``since`` a non-negative integer (decimal digits),
    ``epoch`` 1-64 of ``[A-Za-z0-9_-]`` (empty counts as absent); ``ValueError`` with the reason
    the socket is closed for (1008)."""
    value: int | None = None
    if since is not None:
        if not (since.isascii() and since.isdigit()) or int(since) > MAX_SINCE:
            raise ValueError("since: must be a non-negative integer (the last seq you hold)")
        value = int(since)
    if epoch == "":
        epoch = None
    if epoch is not None and not valid_epoch(epoch):
        raise ValueError("epoch: 1-64 letters, digits, '_' or '-' (as the hello gave it)")
    return value, epoch


@dataclass
class ResumePlan:
    """What a connecting client gets after its hello: ``resume`` for the hello, a ``gap`` if
    predictions it asked for are no longer kept, the kept predictions to send before the live
    feed."""

    resume: Resume | None = None
    gap: Gap | None = None
    replay: list[KeptPrediction] = field(default_factory=list)


def plan_resume(
    session_id: str,
    since: int | None,
    epoch: str | None,
    session_epoch: str,
    last_seq: int,
    kept: Kept,
    resume_buffer: int,
) -> ResumePlan:
    """The resume protocol (docs/protocol.md, "Resume"). Without ``since``: nothing. With the
    session's epoch (or none) and ``since`` ≤ ``last_seq``: the kept predictions after ``since``.
    Another epoch, or ``since`` beyond ``last_seq`` (it cannot be this incarnation's): a reset,
    every kept prediction of this incarnation. Seqs between the resume point and the first kept
    one are reported as a gap and counted as missed."""
    if since is None:
        return ResumePlan()
    reset = (epoch is not None and epoch != session_epoch) or since > last_seq
    start = 0 if reset else since
    replay = [m for m in kept.messages if m[0] > start]
    gap = None
    if kept.first_seq > start + 1:
        gap = Gap.model_validate(
            {
                "session": session_id,
                "from": start + 1,
                "to": kept.first_seq - 1,
                "missed": kept.first_seq - 1 - start,
                "reason": f"older than the resume buffer (resume_buffer={resume_buffer})",
            }
        )
    missed = 0 if gap is None else gap.missed
    resume = Resume(since=since, replayed=len(replay), missed=missed, reset=reset)
    return ResumePlan(resume, gap, replay)


class RateLimit:
    """A token bucket: ``rate`` messages per second, in bursts of up to ``rate`` (at least 1)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _kind(text: str) -> Any:
    """The ``type`` of a client's JSON message; ``None`` if it is not a JSON object (or nests
    too deeply to parse: ``RecursionError`` is an answer, not a crash)."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return msg.get("type") if isinstance(msg, dict) else None


async def read_client(
    ws: WebSocket, session_id: str, max_bytes: int = 4096, limit: RateLimit | None = None
) -> None:
    """Answer client messages: ``{"type": "ping"}`` → pong; anything else (other JSON, not JSON,
    a binary frame) → an error message, and the connection stays. A message over ``max_bytes``
    closes it with 1009; more messages than ``limit`` allows get an error message, then close
    1008.

    Returns when the client disconnects or the socket was closed here."""
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text: str | None = message.get("text")
        data: bytes | None = message.get("bytes")
        size = len(data or b"") if text is None else len(text.encode("utf-8", "replace"))
        try:
            if size > max_bytes:
                reason = f"message of {size} bytes; at most {max_bytes} (max_ws_message_bytes)"
                await ws.close(WS_MESSAGE_TOO_BIG, close_reason(reason))
                return
            if limit is not None and not limit.take():
                reason = f"more than {limit.rate:g} messages/s (max_ws_messages_per_s)"
                await send_message(ws, ErrorMessage(session=session_id, error=reason).dump())
                await ws.close(WS_POLICY, close_reason(reason))
                return
            if text is None:
                await send_message(ws, ErrorMessage(session=session_id, error=BINARY).dump())
            elif _kind(text) == "ping":
                await send_message(ws, Pong(session=session_id).dump())
            else:
                await send_message(ws, ErrorMessage(session=session_id, error=UNSUPPORTED).dump())
        except (WebSocketDisconnect, RuntimeError):
            return
