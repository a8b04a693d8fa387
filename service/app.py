"""The FastAPI application: REST, WebSocket, dashboard and metrics.

``create_app(settings)`` builds the app; heavy objects (model runners, the stream directory, the
scheduler) are created in the lifespan and kept in :class:`ServiceState` on ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from affectstream.models.runner import ModelLoadError, ModelRunner
from affectstream.service.hub import Hub
from affectstream.service.metrics import render_metrics
from affectstream.service.scheduler import Scheduler
from affectstream.service.sessions import Session, group_key
from affectstream.service.settings import Settings
from affectstream.streaming.ingest.session import SessionMatch
from affectstream.streaming.lsl.inlet import StreamDirectory
from affectstream.streaming.preprocess.spec import FeatureKind

__all__ = ["ServiceState", "create_app"]

log = logging.getLogger("affectstream.service")

STATIC = Path(__file__).with_name("static")
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
WS_UNAUTHORIZED, WS_UNKNOWN_SESSION, WS_SESSION_CLOSED = 4401, 4404, 4410


@dataclass
class ServiceState:
    settings: Settings
    runners: dict[str, ModelRunner] = field(default_factory=dict)
    refused_models: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    directory: StreamDirectory | None = None
    hub: Hub = field(default_factory=Hub)
    scheduler: Scheduler | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def session_list(self) -> list[Session]:
        with self.lock:
            return list(self.sessions.values())

    def runner(self, name: str) -> ModelRunner:
        for key, r in self.runners.items():
            if name in (key, r.name, r.contract.name):
                return r
        raise KeyError(name)

    def add_session(self, session_id: str, match: SessionMatch, models: list[str]) -> Session:
        runners = [self.runner(m) for m in models] if models else list(self.runners.values())
        assert self.directory is not None
        with self.lock:
            if session_id in self.sessions:
                raise FileExistsError(session_id)
            s = Session(
                session_id,
                match,
                runners,
                directory=self.directory,
                buffer_s=self.settings.buffer_s,
                on_status=self._status,
            )
            self.sessions[session_id] = s
        log.info("session %s created (%s)", session_id, ", ".join(r.name for r in runners))
        return s

    def remove_session(self, session_id: str) -> None:
        with self.lock:
            s = self.sessions.pop(session_id)
        s.close()
        self.hub.publish(session_id, {"type": "closed", "schema": 1, "session": session_id})
        log.info("session %s removed", session_id)

    def _status(self, session: Session, message: dict[str, Any]) -> None:
        self.hub.publish(session.id, message)


# -- request bodies --------------------------------------------------------------------------------


class MatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id_prefix: str | None = Field(default=None, min_length=1, max_length=256)
    hostname: str | None = Field(default=None, min_length=1, max_length=256)
    session: str | None = Field(default=None, min_length=1, max_length=256)
    type: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def one_key(self) -> MatchBody:
        if not (self.source_id_prefix or self.hostname or self.session):
            raise ValueError("match needs one of source_id_prefix, hostname or session")
        return self


class StimulusBody(BaseModel):
    """The current stimulus of a session: an id from the fusion models' tables, or its features."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, min_length=1, max_length=128)
    features: list[float] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def one_of(self) -> StimulusBody:
        if (self.id is None) == (self.features is None):
            raise ValueError('give exactly one of "id" or "features"')
        if self.features is not None and not np.isfinite(self.features).all():
            raise ValueError("features must be finite numbers")
        return self


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session: str
    match: MatchBody
    models: list[str] = Field(default_factory=list, max_length=16)
    stimulus: StimulusBody | None = None

    @field_validator("session")
    @classmethod
    def valid_id(cls, v: str) -> str:
        if not SESSION_ID.match(v):
            raise ValueError(
                "session id: 1-128 letters, digits, '.', '_' or '-', not starting with a symbol"
            )
        return v


# -- the app ------------------------------------------------------------------------------


def _check_stimulus(body: StimulusBody, runners: list[ModelRunner]) -> None:
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


def _load_models(state: ServiceState) -> None:
    explicit = bool(state.settings.models)
    for path in state.settings.model_paths():
        try:
            runner = ModelRunner(path)
        except ModelLoadError as e:
            if explicit:
                raise
            state.refused_models[path.name] = str(e)
            log.warning("model %s refused: %s", path.name, e)
            continue
        state.runners[path.name] = runner
        log.info("model %s on %s", runner.name, runner.provider)


def _auto_attach(state: ServiceState) -> None:
    """Create a session for every group of streams ``<key>-<TYPE>`` that appears."""
    while not state.stop.wait(1.0):
        assert state.directory is not None
        try:
            keys = {
                key
                for s in state.directory.streams()
                if (key := group_key(s.source_id, s.type)) is not None
                and s.type in (*state.settings.auto_attach_types, "Markers")
            }
            for key in sorted(keys):
                if key not in state.sessions and SESSION_ID.match(key):
                    with contextlib.suppress(FileExistsError):
                        state.add_session(key, SessionMatch(source_id_prefix=key + "-"), [])
        except Exception:
            log.exception("auto-attach failed")


def create_app(settings: Settings) -> FastAPI:
    state = ServiceState(settings, hub=Hub(settings.queue_size))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.loop = asyncio.get_running_loop()
        _load_models(state)
        if any(
            i.feature.kind == FeatureKind.EDA_CVX3
            for r in state.runners.values()
            for i in r.contract.inputs
        ):
            from affectstream.streaming.preprocess.cvxeda.compiled import compiled_if_ready

            compiled_if_ready()  # start the ~10 s JIT now, in the background, not in a session
        state.directory = StreamDirectory()
        state.scheduler = Scheduler(state.session_list, state.hub.publish, settings.tick_s)
        state.scheduler.start()
        watcher = None
        if settings.auto_attach:
            watcher = threading.Thread(target=_auto_attach, args=(state,), daemon=True)
            watcher.start()
        try:
            yield
        finally:
            state.stop.set()
            state.scheduler.stop()
            for sid in list(state.sessions):
                state.remove_session(sid)
            state.directory.close()

    app = FastAPI(title="affectstream", version="0.1", lifespan=lifespan)
    app.state.service = state

    def authorise(request: Request) -> None:
        if settings.token is None:
            return
        given = _token_of(
            request.headers.get("authorization"),
            request.query_params.get("token"),
            request.headers.get("x-affectstream-token"),
        )
        if given is None or not secrets.compare_digest(given, settings.token):
            raise HTTPException(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})

    http = APIRouter(dependencies=[Depends(authorise)])

    @http.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @http.get("/ready")
    def ready() -> JSONResponse:
        ok = bool(state.runners) and state.scheduler is not None
        body = {"ready": ok, "models": list(state.runners), "refused": state.refused_models}
        return JSONResponse(body, status_code=200 if ok else 503)

    @http.get("/models")
    def models() -> dict[str, Any]:
        return {
            "models": [r.describe() for r in state.runners.values()],
            "refused": state.refused_models,
        }

    @http.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return render_metrics(state)

    @http.post("/sessions", status_code=201)
    def create_session(body: SessionBody) -> dict[str, Any]:
        m = body.match
        unknown = [name for name in body.models if not _has_runner(state, name)]
        if unknown:
            raise HTTPException(422, f"unknown model(s) {unknown}; loaded: {sorted(state.runners)}")
        match = SessionMatch(m.source_id_prefix, m.hostname, m.session, m.type)
        if body.stimulus is not None:
            chosen = [state.runner(n) for n in body.models] or list(state.runners.values())
            _check_stimulus(body.stimulus, chosen)
        try:
            s = state.add_session(body.session, match, body.models)
        except FileExistsError:
            raise HTTPException(409, f"session {body.session!r} exists") from None
        if body.stimulus is not None:
            _set_stimulus(s, body.stimulus)
        return s.describe()

    @http.put("/sessions/{session_id}/stimulus")
    def put_stimulus(session_id: str, body: StimulusBody) -> dict[str, Any]:
        s = state.sessions.get(session_id)
        if s is None:
            raise HTTPException(404, f"no session {session_id!r}")
        _check_stimulus(body, [slot.runner for slot in s.slots])
        _set_stimulus(s, body)
        return s.describe()

    @http.delete("/sessions/{session_id}/stimulus", status_code=204)
    def delete_stimulus(session_id: str) -> None:
        s = state.sessions.get(session_id)
        if s is None:
            raise HTTPException(404, f"no session {session_id!r}")
        s.set_stimulus(None, None)

    @http.get("/sessions")
    def list_sessions() -> dict[str, Any]:
        return {"sessions": [s.describe() for s in state.session_list()]}

    @http.get("/sessions/{session_id}")
    def get_session(session_id: str) -> dict[str, Any]:
        s = state.sessions.get(session_id)
        if s is None:
            raise HTTPException(404, f"no session {session_id!r}")
        return s.describe()

    @http.delete("/sessions/{session_id}", status_code=204)
    def delete_session(session_id: str) -> None:
        if session_id not in state.sessions:
            raise HTTPException(404, f"no session {session_id!r}")
        state.remove_session(session_id)

    app.include_router(http)

    # Not behind the token: the page holds no data (its GET /sessions and WebSocket calls send
    # the token and are checked), and only a served page can tell a user whose token is wrong or
    # missing what to do.
    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return (STATIC / "dashboard.html").read_text(encoding="utf-8")

    @app.websocket("/ws/sessions/{session_id}")
    async def ws_session(ws: WebSocket, session_id: str) -> None:
        await ws.accept()
        if settings.token is not None:
            given = _token_of(
                ws.headers.get("authorization"),
                ws.query_params.get("token"),
                ws.headers.get("x-affectstream-token"),
            )
            if given is None or not secrets.compare_digest(given, settings.token):
                await ws.close(WS_UNAUTHORIZED, "missing or wrong token")
                return
        session = state.sessions.get(session_id)
        if session is None:
            await ws.close(WS_UNKNOWN_SESSION, f"no session {session_id!r}")
            return
        sub = state.hub.subscribe(session_id)
        reader = asyncio.create_task(_read_client(ws, session_id))
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "schema": 1,
                    "session": session_id,
                    "models": [s.name for s in session.slots],
                    "streams": session.ingest.report(),
                }
            )
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

    return app


async def _read_client(ws: WebSocket, session_id: str) -> None:
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
            msg = None
        if kind == "ping":
            await ws.send_json({"type": "pong", "schema": 1, "session": session_id})
        else:
            await ws.send_json(
                {
                    "type": "error",
                    "schema": 1,
                    "session": session_id,
                    "error": 'unsupported message: send JSON {"type": "ping"}; this endpoint '
                    "only publishes",
                }
            )


def _token_of(authorization: str | None, query: str | None, header: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return header or query


def _has_runner(state: ServiceState, name: str) -> bool:
    try:
        state.runner(name)
    except KeyError:
        return False
    return True
