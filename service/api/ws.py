"""The WebSocket route ``/ws/sessions/{id}``: where a window's prediction leaves the service.

After :func:`~affectstream.service.api.deps.admit` (token, session), the client gets a
:class:`~affectstream.service.messages.Hello`, then every message the hub queues for the session
(:mod:`affectstream.service.hub`: predictions from the scheduler, status messages from the
session), each with ``dropped`` added when its queue lost messages since the last report. The
session's deletion (a :class:`~affectstream.service.messages.Closed` on the hub) closes the socket
with code 4410. Meanwhile :func:`read_client` answers the client: ``ping`` with a
:class:`~affectstream.service.messages.Pong`, anything else with an
:class:`~affectstream.service.messages.ErrorMessage`.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from affectstream.service.api.deps import WS_SESSION_CLOSED, AppState, admit
from affectstream.service.messages import ErrorMessage, Hello, Pong

__all__ = ["UNSUPPORTED", "read_client", "router"]

router = APIRouter()

UNSUPPORTED = 'unsupported message: send JSON {"type": "ping"}; this endpoint only publishes'


@router.websocket("/ws/sessions/{session_id}")
async def session_messages(ws: WebSocket, session_id: str, state: AppState) -> None:
    session = await admit(ws, state, session_id)
    if session is None:
        return
    sub = state.hub.subscribe(session_id)
    reader = asyncio.create_task(read_client(ws, session_id))
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


async def read_client(ws: WebSocket, session_id: str) -> None:
    """Answer client messages: ``{"type": "ping"}`` → pong; anything else → an error message.

    Returns when the client disconnects."""
    while True:
        try:
            raw = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        try:
            msg = json.loads(raw)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except json.JSONDecodeError:
            kind = None
        if kind == "ping":
            await ws.send_json(Pong(session=session_id).dump())
        else:
            await ws.send_json(ErrorMessage(session=session_id, error=UNSUPPORTED).dump())
