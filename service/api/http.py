"""The REST routes: health and readiness, models, metrics, the message schema, sessions and their
stimulus. All of them need the token (:func:`~affectstream.service.api.deps.require_token`).

Sessions created here are polled by the scheduler from then on; their messages reach clients over
the WebSocket route (:mod:`affectstream.service.api.ws`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse

from affectstream.models.runner import ModelRunner
from affectstream.service.api.deps import AppState, SessionFor, require_token
from affectstream.service.messages import SessionBody, StimulusBody, message_json_schema
from affectstream.service.metrics import render_metrics
from affectstream.service.sessions import Session
from affectstream.service.state import ServiceState, SessionLimitError, session_match

__all__ = ["check_models", "check_stimulus", "router"]

router = APIRouter(dependencies=[Depends(require_token)])


# -- the service -----------------------------------------------------------------------------------


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
def ready(state: AppState) -> JSONResponse:
    ok = bool(state.runners) and state.scheduler is not None
    body = {"ready": ok, "models": list(state.runners), "refused": state.refused_models}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/models")
def models(state: AppState) -> dict[str, Any]:
    return {
        "models": [r.describe() for r in state.runners.values()],
        "refused": state.refused_models,
    }


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(state: AppState) -> str:
    return render_metrics(state)


@router.get("/schema/messages.json")
def messages_schema() -> dict[str, Any]:
    """JSON Schema of the WebSocket messages (also in ``docs/messages.schema.json``)."""
    return message_json_schema()


# -- sessions --------------------------------------------------------------------------------------


def check_models(body: SessionBody, state: ServiceState) -> None:
    """422 unless the request names at most ``max_models_per_session`` loaded models, each once
    (the embedded route and a gateway's, :mod:`affectstream.service.api.gateway`)."""
    most = state.settings.max_models_per_session
    if len(body.models) > most:
        raise HTTPException(
            422, f"{len(body.models)} models; at most {most} (max_models_per_session)"
        )
    unknown = [name for name in body.models if not state.has_runner(name)]
    if unknown:
        raise HTTPException(422, f"unknown model(s) {unknown}; loaded: {sorted(state.runners)}")
    if len({id(state.runner(n)) for n in body.models}) < len(body.models):
        raise HTTPException(422, f"models {body.models} name one model more than once")


@router.post("/sessions", status_code=201)
def create_session(body: SessionBody, state: AppState) -> dict[str, Any]:
    check_models(body, state)
    if body.stimulus is not None:
        chosen = [state.runner(n) for n in body.models] or list(state.runners.values())
        check_stimulus(body.stimulus, chosen)
    try:
        s = state.add_session(
            body.session,
            session_match(body.match),
            body.models,
            body.stream_overrides(),
            lsl_out=body.lsl_out,
        )
    except FileExistsError:
        raise HTTPException(409, f"session {body.session!r} exists") from None
    except SessionLimitError as e:
        raise HTTPException(429, str(e)) from None
    if body.stimulus is not None:
        _set_stimulus(s, body.stimulus)
    return s.describe()


@router.get("/sessions")
def list_sessions(state: AppState) -> dict[str, Any]:
    return {"sessions": [s.describe() for s in state.session_list()]}


@router.get("/sessions/{session_id}")
def get_session(session: SessionFor) -> dict[str, Any]:
    return session.describe()


@router.delete("/sessions/{session_id}", status_code=204)
def delete_session(session: SessionFor, state: AppState) -> None:
    state.delete_session(session.id)


# -- a session's stimulus (fusion models) ----------------------------------------------------------


@router.put("/sessions/{session_id}/stimulus")
def put_stimulus(session: SessionFor, body: StimulusBody) -> dict[str, Any]:
    check_stimulus(body, [slot.runner for slot in session.slots])
    _set_stimulus(session, body)
    return session.describe()


@router.delete("/sessions/{session_id}/stimulus", status_code=204)
def delete_stimulus(session: SessionFor) -> None:
    session.set_stimulus(None, None)


def check_stimulus(body: StimulusBody, runners: list[ModelRunner]) -> None:
    """422 unless some fusion model among ``runners`` can use the stimulus."""
    fusion = [r for r in runners if r.contract.stimulus is not None]
    if not fusion:
        raise HTTPException(422, "none of the session's models takes stimulus features")
    if body.id is not None:
        if not any(r.stimulus_features(body.id) is not None for r in fusion):
            raise HTTPException(
                422,
                f"stimulus id {body.id!r} is in no feature table of {[r.name for r in fusion]}",
            )
    else:
        assert body.features is not None
        sizes = {r.name: r.contract.stimulus.n_features for r in fusion if r.contract.stimulus}
        if len(body.features) not in sizes.values():
            raise HTTPException(
                422, f"{len(body.features)} features; the session's fusion models need {sizes}"
            )


def _set_stimulus(session: Session, body: StimulusBody) -> None:
    features = None if body.features is None else np.asarray(body.features, dtype=np.float64)
    session.set_stimulus(body.id, features)
