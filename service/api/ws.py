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
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from affectstream.service.api.deps import WS_SESSION_CLOSED, AppState, admit
from affectstream.service.api.guard import close_reason
from affectstream.service.messages import ErrorMessage, Hello, Pong

__all__ = [
    "BINARY",
    "UNSUPPORTED",
    "WS_MESSAGE_TOO_BIG",
    "WS_POLICY",
    "WS_TRY_AGAIN",
    "RateLimit",
    "read_client",
    "router",
]

router = APIRouter()

UNSUPPORTED = 'unsupported message: send JSON {"type": "ping"}; this endpoint only publishes'
BINARY = 'binary frames are not taken: send JSON text {"type": "ping"}'
WS_POLICY, WS_MESSAGE_TOO_BIG, WS_TRY_AGAIN = 1008, 1009, 1013
"""Close codes (RFC 6455): message rate exceeded, message too big, too many subscribers."""


@router.websocket("/ws/sessions/{session_id}")
async def session_messages(ws: WebSocket, session_id: str, state: AppState) -> None:
    session = await admit(ws, state, session_id)
    if session is None:
        return
    settings = state.settings
    if len(state.hub.subscribers(session_id)) >= settings.max_subscribers:
        await ws.close(
            WS_TRY_AGAIN,
            close_reason(
                f"session has {settings.max_subscribers} subscribers (max_subscribers); "
                "try again later"
            ),
        )
        return
    sub = state.hub.subscribe(session_id)
    limit = RateLimit(settings.max_ws_messages_per_s)
    reader = asyncio.create_task(read_client(ws, session_id, settings.max_ws_message_bytes, limit))
    try:
        hello = Hello(
            session=session_id,
            models=[s.name for s in session.slots],
            streams=session.ingest.report(),
            model_status=session.model_rows(),
            session_state="served" if session.served else "unserved",
            reason=session.unserved_reason(),
        )
        await ws.send_json(hello.dump())
        reported = 0
        while True:
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            message = getter.result()
            if sub.dropped != reported:
                message = {**message, "dropped": sub.dropped}
                reported = sub.dropped
            if message.get("type") == "closed":
                await ws.close(WS_SESSION_CLOSED, "session deleted")
                break
            await ws.send_json(message)
            sub.delivered += 1
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        state.hub.unsubscribe(sub)


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
                await ws.send_json(ErrorMessage(session=session_id, error=reason).dump())
                await ws.close(WS_POLICY, close_reason(reason))
                return
            if text is None:
                await ws.send_json(ErrorMessage(session=session_id, error=BINARY).dump())
            elif _kind(text) == "ping":
                await ws.send_json(Pong(session=session_id).dump())
            else:
                await ws.send_json(ErrorMessage(session=session_id, error=UNSUPPORTED).dump())
        except (WebSocketDisconnect, RuntimeError):
            return
