"""The routes that differ on a gateway (``serve --bus``): health, readiness, sessions and the
WebSocket, answered from the Redis registry and relay (:mod:`affectstream.service.gateway`).

They are mounted before the embedded routes, so they take those paths; everything else (models,
metrics, the message schema, the dashboard, ``/client.js``) is the same on a gateway. The
request checks are the embedded ones (token, bounds, models, ids); a session's streams and models
are reported by the worker that holds it. A stimulus (fusion models: in the session request or
``PUT /sessions/{id}/stimulus``) is checked here against the loaded models as in one process, and
stored in Redis with the gateway's wall-clock time; the session's worker applies it at its next
lease step, backdated to that time (:mod:`affectstream.service.worker`). Redis unreachable: 503
naming the bus.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from fastapi import APIRouter, Depends, HTTPException, WebSocket
from fastapi.responses import JSONResponse

from affectstream.models.runner import ModelRunner
from affectstream.service.api.deps import (
    WRONG_TOKEN,
    WS_UNAUTHORIZED,
    WS_UNKNOWN_SESSION,
    AppState,
    UnknownSessionError,
    require_token,
    token_ok,
)
from affectstream.service.api.guard import close_reason
from affectstream.service.api.http import check_models, check_stimulus
from affectstream.service.api.ws import (
    WS_POLICY,
    WS_TRY_AGAIN,
    deliver,
    plan_resume,
    resume_params,
)
from affectstream.service.gateway import Gateway, RemoteSession
from affectstream.service.messages import Hello, SessionBody, StimulusBody, valid_session_id
from affectstream.service.state import ServiceState

__all__ = ["router"]

router = APIRouter()
guarded = [Depends(require_token)]

T = TypeVar("T")


def _gateway(state: ServiceState) -> Gateway:
    assert state.gateway is not None
    return state.gateway


def _bus(state: ServiceState, call: Callable[[Gateway], T]) -> T:
    """``call(gateway)``, with an unreachable Redis as 503 naming the bus."""
    gateway = _gateway(state)
    try:
        return call(gateway)
    except (redis.RedisError, OSError) as e:
        raise HTTPException(
            503, f"the bus ({gateway.health()['url']}) is unreachable: {e}; retry later"
        ) from None


def _session(state: ServiceState, session_id: str) -> RemoteSession:
    found = _bus(state, lambda g: g.session(session_id)) if valid_session_id(session_id) else None
    if found is None:
        raise HTTPException(404, str(UnknownSessionError(session_id)))
    return found


@router.get("/health", dependencies=guarded)
def health(state: AppState) -> dict[str, Any]:
    bus = _gateway(state).health()
    return {"status": "ok" if bus["connected"] else "degraded", "role": "gateway", "bus": bus}


@router.get("/ready", dependencies=guarded)
def ready(state: AppState) -> JSONResponse:
    gateway = _gateway(state)
    ok = bool(state.runners) and gateway.connected
    body = {
        "ready": ok,
        "role": "gateway",
        "bus": gateway.connected,
        "models": list(state.runners),
        "refused": state.refused_models,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.post("/sessions", status_code=201, dependencies=guarded)
def create_session(body: SessionBody, state: AppState) -> dict[str, Any]:
    check_models(body, state)
    if body.stimulus is not None:
        check_stimulus(body.stimulus, _runners(state, body.models))
    if _bus(state, lambda g: g.session(body.session)) is not None:
        raise HTTPException(409, f"session {body.session!r} exists")
    limit = state.settings.max_sessions
    if _bus(state, lambda g: g.count()) >= limit:
        raise HTTPException(429, f"the bus holds {limit} sessions (max_sessions); delete one first")
    request = body.model_dump(mode="json", exclude={"session", "stimulus"}, exclude_none=True)
    created = _bus(state, lambda g: g.create(body.session, request))
    if body.stimulus is not None:
        _store_stimulus(state, body.session, body.stimulus)
    return created.describe()


@router.get("/sessions", dependencies=guarded)
def list_sessions(state: AppState) -> dict[str, Any]:
    return {"sessions": [s.describe() for s in _bus(state, lambda g: g.sessions())]}


@router.get("/sessions/{session_id}", dependencies=guarded)
def get_session(session_id: str, state: AppState) -> dict[str, Any]:
    return _session(state, session_id).describe()


@router.delete("/sessions/{session_id}", status_code=204, dependencies=guarded)
def delete_session(session_id: str, state: AppState) -> None:
    _session(state, session_id)
    if session_id in state.auto_sessions and state.directory is not None:
        # as the embedded service: an auto-attached session stays deleted until its streams
        # change (on this gateway: auto-attach runs on one gateway)
        uids = frozenset(
            s.uid for s in state.directory.streams() if s.source_id.startswith(f"{session_id}-")
        )
        state.auto_deleted[session_id] = uids
        state.auto_sessions.discard(session_id)
    _bus(state, lambda g: g.delete(session_id))


@router.put("/sessions/{session_id}/stimulus", dependencies=guarded)
def put_stimulus(session_id: str, body: StimulusBody, state: AppState) -> dict[str, Any]:
    session = _session(state, session_id)
    check_stimulus(body, _runners(state, list(session.request.get("models") or [])))
    _store_stimulus(state, session_id, body)
    return session.describe()


@router.delete("/sessions/{session_id}/stimulus", status_code=204, dependencies=guarded)
def delete_stimulus(session_id: str, state: AppState) -> None:
    _session(state, session_id)
    _bus(state, lambda g: g.bus.put_stimulus(session_id, None))


def _runners(state: ServiceState, names: list[str]) -> list[ModelRunner]:
    """The session's models (every loaded one when it names none), as the workers load them."""
    return [state.runner(n) for n in names] if names else list(state.runners.values())


def _store_stimulus(state: ServiceState, session_id: str, body: StimulusBody) -> None:
    value = {"id": body.id, "features": body.features, "set_at": time.time()}
    _bus(state, lambda g: g.bus.put_stimulus(session_id, value))


@router.websocket("/ws/sessions/{session_id}")
async def session_messages(ws: WebSocket, session_id: str, state: AppState) -> None:
    """As the embedded route (:mod:`affectstream.service.api.ws`), fed by the session's relay:
    hello from the registry and the holder's snapshot, resume from what Redis keeps."""
    await ws.accept()
    if not token_ok(ws, state.settings.token):
        await ws.close(WS_UNAUTHORIZED, WRONG_TOKEN)
        return
    try:
        since, epoch = resume_params(ws.query_params.get("since"), ws.query_params.get("epoch"))
    except ValueError as e:
        await ws.close(WS_POLICY, close_reason(str(e)))
        return
    gateway = _gateway(state)
    try:
        session = gateway.session(session_id) if valid_session_id(session_id) else None
    except (redis.RedisError, OSError):
        await ws.close(WS_TRY_AGAIN, "the bus is unreachable; try again later")
        return
    if session is None:
        await ws.close(WS_UNKNOWN_SESSION, close_reason(str(UnknownSessionError(session_id))))
        return
    settings = state.settings
    if len(state.hub.subscribers(session_id)) >= settings.max_subscribers:
        reason = f"session has {settings.max_subscribers} subscribers (max_subscribers)"
        await ws.close(WS_TRY_AGAIN, close_reason(reason + "; try again later"))
        return
    if not await gateway.relay_ready(session_id):
        await ws.close(WS_TRY_AGAIN, "the bus is unreachable; try again later")
        return
    # no await between the snapshot and the subscription: every message is in one of them
    kept = state.hub.kept(session_id, session.epoch)
    sub = state.hub.subscribe(session_id)
    plan = plan_resume(
        session_id, since, epoch, session.epoch, kept.last_seq, kept, state.hub.resume_buffer
    )
    hello = Hello(
        session=session_id,
        **session.hello_fields(),
        epoch=session.epoch,
        last_seq=kept.last_seq,
        resume=plan.resume,
    )
    await deliver(ws, state, session_id, sub, hello, plan)
