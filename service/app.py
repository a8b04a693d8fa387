"""The FastAPI application, wired: ``create_app(settings)``.

Nothing is computed here. The lifespan starts and stops the
:class:`~affectstream.service.state.ServiceState` (models, stream directory, scheduler,
auto-attach; kept on ``app.state.service``); the routes come from
:mod:`affectstream.service.api` (``http``: REST, metrics, message schema; ``ws``: the WebSocket);
the dashboard is a static page, and the JavaScript client it uses is served at ``/client.js``.

To follow one window through the service, read :mod:`~affectstream.service.sessions` (windows and
preprocessing per model) → :mod:`~affectstream.service.scheduler` (batched inference) →
:mod:`~affectstream.service.messages` (the typed messages) → :mod:`~affectstream.service.hub`
(per-client queues) → :mod:`~affectstream.service.api.ws` (the WebSocket).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from affectstream.service import heap
from affectstream.service.api import gateway, http, ws
from affectstream.service.api.deps import require_token
from affectstream.service.api.guard import (
    Guard,
    dashboard_csp,
    install_redaction,
    validation_error_handler,
)
from affectstream.service.gateway import Gateway
from affectstream.service.settings import Settings
from affectstream.service.state import ServiceState, auto_attach, load_models
from affectstream.streaming.lsl.inlet import StreamDirectory

__all__ = ["create_app"]

STATIC = Path(__file__).with_name("static")
CLIENT_JS = "/client.js"
"""Where the JavaScript client (``affectstream.client``'s ``js/affectstream.js``) is served."""


def create_app(settings: Settings, freeze_heap: bool = False) -> FastAPI:
    """The app for ``settings``. With ``settings.bus`` it is a gateway: it connects to Redis
    here (``BusUnavailableError`` naming the URL if it cannot) and serves sessions from there.
    ``freeze_heap``: once started, set what was built aside from garbage collection
    (:mod:`affectstream.service.heap`; ``serve`` does, the tests' in-process apps do not)."""
    state = ServiceState.from_settings(settings)
    if settings.bus is not None:
        state.gateway = Gateway.connect(settings.bus, state.hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # uvicorn's request lines carry the query string (?token=): redact it while we serve
        remove_redaction = install_redaction(settings.token)
        try:
            if state.gateway is not None:  # no ingest, scheduler or sessions here: workers
                state.hub.loop = asyncio.get_running_loop()
                if not state.models_loaded:
                    load_models(state)
                state.gateway.start()
                if freeze_heap:
                    heap.freeze_heap()
                if settings.auto_attach:  # this gateway registers sessions for LSL groups
                    state.directory = StreamDirectory()
                    threading.Thread(target=auto_attach, args=(state,), daemon=True).start()
                try:
                    yield
                finally:
                    state.stop.set()
                    await state.gateway.close()
                    if state.directory is not None:
                        state.directory.close()
            else:
                state.start(asyncio.get_running_loop(), freeze_heap=freeze_heap)
                try:
                    yield
                finally:
                    state.close()
        finally:
            remove_redaction()

    # the API documents are behind the token too (declared below, with the token check)
    app = FastAPI(
        title="affectstream",
        version="0.1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = state
    app.add_middleware(Guard, settings=settings)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    if state.gateway is not None:
        app.include_router(gateway.router)  # first: its routes take the embedded ones' paths
    app.include_router(http.router)
    app.include_router(ws.router)

    guarded = [Depends(require_token)]

    def document_url(request: Request) -> str:
        # the token a browser came with (?token=) is passed on to the page's fetch of the document
        token = request.query_params.get("token")
        return "/openapi.json" + (f"?{request.url.query}" if token else "")

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    def swagger(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=document_url(request), title="affectstream API")

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=document_url(request), title="affectstream API")

    page = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    # the JavaScript client, from the installed package (clients/js/ in the source tree)
    client_js = resources.files("affectstream.client").joinpath("js/affectstream.js").read_bytes()

    # Not behind the token: the page holds no data (its GET /sessions and WebSocket calls send
    # the token and are checked), and only a served page can tell a user whose token is wrong or
    # missing what to do. Its policy lets only its own script run and connect to this service.
    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> HTMLResponse:
        headers: dict[str, Any] = {
            "Content-Security-Policy": dashboard_csp(
                page, request.headers.get("host"), scripts=(CLIENT_JS,)
            ),
            "Cache-Control": "no-store",
        }
        return HTMLResponse(page, headers=headers)

    # Not behind the token either, for the same reason as the page that imports it: it is the
    # published client's code (also in the wheel), no data. no-cache: a browser asks again each
    # time, so a page never runs an older client than the service it talks to.
    @app.get(CLIENT_JS, include_in_schema=False)
    def client_module() -> Response:
        return Response(
            client_js,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    return app
