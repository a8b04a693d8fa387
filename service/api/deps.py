"""What every route needs before it runs: the service state, the token check and the session
lookup, written once for HTTP and WebSocket.

Over HTTP they are FastAPI dependencies (401 for a missing or wrong token, 404 for an unknown
session); a WebSocket is first accepted and then closed with a code (4401, 4404), because a
socket closed before it is accepted reaches the client as a bare HTTP 403 without code or reason,
and the dashboard could not tell the user what is wrong (:func:`admit`).

Next: the routes themselves, :mod:`affectstream.service.api.http` and
:mod:`affectstream.service.api.ws`.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from affectstream.service.api.guard import close_reason
from affectstream.service.messages import valid_session_id
from affectstream.service.sessions import Session
from affectstream.service.state import ServiceState

__all__ = [
    "BEARER",
    "WS_SESSION_CLOSED",
    "WS_UNAUTHORIZED",
    "WS_UNKNOWN_SESSION",
    "AppState",
    "SessionFor",
    "UnknownSessionError",
    "admit",
    "find_session",
    "require_token",
    "service_state",
    "session_for",
    "token_ok",
]

WS_UNAUTHORIZED, WS_UNKNOWN_SESSION, WS_SESSION_CLOSED = 4401, 4404, 4410
"""WebSocket close codes: missing or wrong token, unknown session, session deleted."""
WRONG_TOKEN = "missing or wrong token"


def service_state(conn: HTTPConnection) -> ServiceState:
    """The app's :class:`ServiceState` (set by ``create_app``), for HTTP and WebSocket alike."""
    state: ServiceState = conn.app.state.service
    return state


AppState = Annotated[ServiceState, Depends(service_state)]


# -- the token -----------------------------------------------------------------------------------


def token_ok(conn: HTTPConnection, expected: str | None) -> bool:
    """Whether the request or socket carries the service's token (always, when it has none).

    Taken from ``Authorization: Bearer …``, else ``X-Affectstream-Token``, else ``?token=`` (what
    a browser's WebSocket can send); compared in constant time."""
    if expected is None:
        return True
    authorization = conn.headers.get("authorization")
    if authorization and authorization.lower().startswith("bearer "):
        given: str | None = authorization[7:].strip()
    else:
        given = conn.headers.get("x-affectstream-token") or conn.query_params.get("token")
    if given is None:
        return False
    # on bytes: compare_digest refuses str with non-ASCII characters (a 500 for every request
    # that sent one); headers arrive as Latin-1, query values as UTF-8, both encode
    return secrets.compare_digest(
        given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


BEARER = HTTPBearer(
    auto_error=False,
    description="The service's token (setting `token`): `Authorization: Bearer <token>`; also "
    "accepted as `X-Affectstream-Token` or `?token=` (for a browser's WebSocket).",
)
"""Declares the token scheme in the OpenAPI document; :func:`token_ok` does the checking."""


def require_token(
    request: HTTPConnection,
    state: AppState,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> None:
    """HTTP dependency: 401 unless :func:`token_ok`."""
    if not token_ok(request, state.settings.token):
        raise HTTPException(401, WRONG_TOKEN, {"WWW-Authenticate": "Bearer"})


# -- the session ---------------------------------------------------------------------------------


class UnknownSessionError(LookupError):
    """No session of that id; the message is what the client is told."""

    def __init__(self, session_id: str) -> None:
        # the id is echoed only when it is one (a short one: a close reason holds 123 bytes)
        if valid_session_id(session_id) and len(session_id) <= 64:
            super().__init__(f"no session {session_id!r}")
        else:
            super().__init__("no such session")


def find_session(state: ServiceState, session_id: str) -> Session:
    """The session of that id, or :class:`UnknownSessionError`."""
    session = state.find_session(session_id)
    if session is None:
        raise UnknownSessionError(session_id)
    return session


def session_for(session_id: str, state: AppState) -> Session:
    """HTTP dependency: the session named in the path, 404 if there is none."""
    try:
        return find_session(state, session_id)
    except UnknownSessionError as e:
        raise HTTPException(404, str(e)) from None


SessionFor = Annotated[Session, Depends(session_for)]


# -- the WebSocket -------------------------------------------------------------------------------


async def admit(ws: WebSocket, state: ServiceState, session_id: str) -> Session | None:
    """Accept the socket, then check its token and find its session; on failure close it with
    the code and reason (4401, 4404) and return ``None``."""
    await ws.accept()
    if not token_ok(ws, state.settings.token):
        await ws.close(WS_UNAUTHORIZED, WRONG_TOKEN)
        return None
    try:
        return find_session(state, session_id)
    except UnknownSessionError as e:
        await ws.close(WS_UNKNOWN_SESSION, close_reason(str(e)))
        return None
