"""The FastAPI application, wired: ``create_app(settings)``.

Nothing is computed here. The lifespan starts and stops the
:class:`~affectstream.service.state.ServiceState` (models, stream directory, scheduler,
auto-attach; kept on ``app.state.service``); the routes come from
:mod:`affectstream.service.api` (``http``: REST, metrics, message schema; ``ws``: the WebSocket);
the dashboard is a static page.

To follow one window through the service, read :mod:`~affectstream.service.sessions` (windows and
preprocessing per model) → :mod:`~affectstream.service.scheduler` (batched inference) →
:mod:`~affectstream.service.messages` (the typed messages) → :mod:`~affectstream.service.hub`
(per-client queues) → :mod:`~affectstream.service.api.ws` (the WebSocket).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from affectstream.service.api import http, ws
from affectstream.service.settings import Settings
from affectstream.service.state import ServiceState

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings) -> FastAPI:
    state = ServiceState.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="affectstream", version="0.1", lifespan=lifespan)
    app.state.service = state
    app.include_router(http.router)
    app.include_router(ws.router)

    # Not behind the token: the page holds no data (its GET /sessions and WebSocket calls send
    # the token and are checked), and only a served page can tell a user whose token is wrong or
    # missing what to do.
    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return (STATIC / "dashboard.html").read_text(encoding="utf-8")

    return app
