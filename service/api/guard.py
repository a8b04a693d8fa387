"""What stands between the network and the routes: the ``Host`` and ``Origin`` checks, the body
bound, security headers, the secret redaction of the server's logs and bounded close reasons.

:class:`Guard` is a pure ASGI middleware (``create_app`` installs it outermost), so it runs before
any route, body parsing or token check:

* ``Host`` must name the service (setting ``allowed_hosts``; default when bound to loopback:
  ``localhost``, ``127.0.0.1``, ``::1``): a page of another site that rebinds its DNS name to
  127.0.0.1 reaches the service with its own name and gets 400 (a WebSocket: close 4403).
* ``Origin``, when a browser sends one, must be the service's own (same host and port as
  ``Host``) or listed in ``allowed_origins``: another site's page cannot open a session's
  WebSocket from a lab member's browser (cross-site WebSocket hijacking) nor post to the API
  (403; a WebSocket: close 4403). Clients that are not browsers send no ``Origin`` and pass.
* A request body larger than ``max_body_bytes`` gets 413 before anything parses it, whether or
  not it declares a ``Content-Length`` (chunked bodies are counted as they arrive).
* Every HTTP response carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``Referrer-Policy: no-referrer``; the dashboard also a Content-Security-Policy
  (:func:`dashboard_csp`).

WebSocket refusals are sent after accepting the socket, as :func:`~affectstream.service.api.deps.
admit` does, so the client gets a close code and reason rather than a bare HTTP 403.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from affectstream.service.settings import Settings

__all__ = [
    "CLOSE_REASON_BYTES",
    "WS_FORBIDDEN",
    "Guard",
    "RedactSecrets",
    "close_reason",
    "dashboard_csp",
    "install_redaction",
    "validation_error_handler",
]

WS_FORBIDDEN = 4403
"""WebSocket close code: ``Host`` or ``Origin`` not allowed."""
CLOSE_REASON_BYTES = 123
"""A WebSocket close reason holds at most this many bytes of UTF-8 (RFC 6455, 5.5.1)."""

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def close_reason(text: str) -> str:
    """``text`` cut to :data:`CLOSE_REASON_BYTES` bytes of UTF-8 (ending in ``…`` when cut)."""
    raw = text.encode("utf-8")
    if len(raw) <= CLOSE_REASON_BYTES:
        return text
    return raw[: CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "…"


def _host_name(host_header: str) -> str:
    """The name in a ``Host`` header: lower case, without port and IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = settings.host_names()
        self.origins = frozenset(settings.allowed_origins)
        self.max_body = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            status, reason = refused
            if scope["type"] == "websocket":
                await _refuse_websocket(receive, send, reason)
            else:
                await _respond(send, status, reason)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._http(scope, receive, _with_security_headers(send))

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """``(HTTP status, reason)`` when the request's ``Host`` or ``Origin`` is not allowed."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and self.hosts is not None:
            name = _host_name(host)
            in_process = name == "testserver" and (scope.get("client") or ("",))[0] == "testclient"
            if name not in self.hosts and not in_process:
                return 400, "Host not allowed (setting allowed_hosts)"
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin.strip().lower(), host):
            return 403, "Origin not allowed (setting allowed_origins)"
        return None

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        if "*" in self.origins or origin in self.origins:
            return True
        parts = urllib.parse.urlsplit(origin)
        return (
            parts.scheme in ("http", "https")
            and host is not None
            and parts.netloc == host.strip().lower()
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole body (at most ``max_body`` bytes, else 413), then run the app on it."""
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _respond(send, 400, "invalid Content-Length")
                return
            if int(declared) > self.max_body:
                await _respond(send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client has gone
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _respond(send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body} bytes (setting max_body_bytes)"


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS:
                if name.decode() not in headers:
                    headers.raw.append((name, value))
        await send(message)

    return wrapped


async def _respond(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Receive, send: Send, reason: str) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": WS_FORBIDDEN, "reason": close_reason(reason)})


# -- the dashboard's Content-Security-Policy --------------------------------------------------


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")
_CSP_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?")


def dashboard_csp(html: str, host: str | None, scripts: tuple[str, ...] = ()) -> str:
    """The dashboard's policy: its own inline script (by hash) and the scripts at the paths
    ``scripts`` of this service (``/client.js``; each by its exact URL, or ``'self'`` when the
    ``Host`` is missing or odd) and nothing else run; styles from the page (its tables set colours
    with ``style=``); connections only to this service (HTTP and its WebSocket); no framing, no
    forms, no plugins, no base URL changes."""
    safe_host = host is not None and _SAFE_HOST.fullmatch(host) is not None
    sources = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    ]
    if scripts:
        # a source without a scheme takes the page's (http, or https behind a TLS proxy); CSP
        # has no syntax for IPv6 literals ([::1]): 'self' there
        by_url = host is not None and _CSP_HOST.fullmatch(host) is not None
        sources += [f"{host}{path}" for path in scripts] if by_url else ["'self'"]
    connect = "'self'"
    if safe_host:
        connect += f" ws://{host} wss://{host}"
    return (
        f"default-src 'none'; script-src {' '.join(sources)}; style-src 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src {connect}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


# -- validation errors without a 500 -----------------------------------------------------------


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as strict JSON can hold it: non-finite numbers and bytes become strings, long
    strings are cut, deep structures end."""
    if depth > 20:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value[:100]]
    if isinstance(value, bool | int | None):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 200 else text[:200] + "…"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with the errors, as FastAPI's own handler, but always valid JSON (FastAPI's echoes
    the input: a ``NaN`` there made the response itself fail, a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": _plain(errors)}, status_code=422)


# -- secrets out of the logs -------------------------------------------------------------------


class RedactSecrets(logging.Filter):
    """Rewrite ``token=…`` (and ``ticket=``, ``access_token=``) query values, and the given
    secrets wherever they appear, in a record's message and arguments. Installed on uvicorn's
    loggers, whose request lines (``uvicorn.access``) and WebSocket handshake lines
    (``uvicorn.error``) carry the query string; headers are never logged."""

    QUERY = re.compile(r"(?i)((?:token|ticket|access_token)=)[^&\s\"']*")
    MARK = "[redacted]"

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__("affectstream-redact")
        forms = set()
        for s in secrets:
            forms |= {s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)}
        self.secrets = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: str) -> str:
        text = self.QUERY.sub(r"\1" + self.MARK, text)
        for s in self.secrets:
            text = text.replace(s, self.MARK)
        return text

    def _value(self, value: Any) -> Any:
        return self.redact(value) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._value(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: self._value(v) for k, v in record.args.items()}
        return True


REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


def install_redaction(token: str | None) -> Callable[[], None]:
    """Put a :class:`RedactSecrets` on uvicorn's loggers; returns the function that removes it."""
    redactor = RedactSecrets((token,) if token else ())
    loggers = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    for logger in loggers:
        logger.addFilter(redactor)

    def remove() -> None:
        for logger in loggers:
            logger.removeFilter(redactor)

    return remove
