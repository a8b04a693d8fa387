"""A session's messages over the WebSocket, resumed across network loss and service restarts.

:class:`SessionClient` connects to ``/ws/sessions/{id}`` of a running service and yields the
session's messages as the JSON objects the service sends (``docs/messages.schema.json``). When the
connection drops (network loss, close codes 1006, 1011, 1012, 1013, the service restarting) it
reconnects by itself with exponential backoff and jitter (:class:`Backoff`) and resumes where it
was: it sends back the last prediction ``seq`` it holds and the session's ``epoch``
(``?since=&epoch=``), the service replays what it kept since then, and the client drops anything it
already has. What can no longer be had is counted in :attr:`SessionClient.missed`: the ``missed``
of every ``gap`` message plus every seq skipped on the live feed (each lost prediction once). A
session that came back as a new incarnation (another ``epoch``: the service restarted, the
session was deleted and created again) starts the seq bookkeeping afresh (:attr:`resets`).

Close codes that retrying cannot fix raise a :class:`SessionClosedError` subclass instead:
:class:`UnauthorizedError` (4401), :class:`ForbiddenError` (4403), :class:`UnknownSessionError`
(4404, unless ``wait_for_session``), :class:`SessionDeletedError` (4410),
:class:`PolicyViolationError` (1008), :class:`MessageTooBigError` (1009). The protocol is in
``docs/protocol.md``.

Usage::

    import asyncio
    from affectstream.client import SessionClient

    async def main() -> None:
        async with SessionClient("http://127.0.0.1:8000", "p01", token="…") as client:
            async for p in client.predictions():
                print(p["seq"], p["model"], p["valence"], p["arousal"])
                if client.missed:
                    print("missed so far:", client.missed)

    asyncio.run(main())

``client.messages()`` yields every message instead (``hello`` on each connection, ``gap``,
``prediction``, ``status``, ``model_status``, ``session_status``, …), or only those named in
``kinds``: ``client.messages(kinds={"prediction", "status"})``.

This module uses only the standard library and ``websockets``: it does not import the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
)

__all__ = [
    "NO_RETRY",
    "Backoff",
    "ClientError",
    "ForbiddenError",
    "GaveUpError",
    "Message",
    "MessageTooBigError",
    "PolicyViolationError",
    "ProtocolError",
    "SessionClient",
    "SessionClosedError",
    "SessionDeletedError",
    "UnauthorizedError",
    "UnknownSessionError",
]

log = logging.getLogger("affectstream.client")

Message = dict[str, Any]
"""One message as the service sent it (a JSON object; its ``type`` says which)."""


# -- errors ------------------------------------------------------------------------------------


class ClientError(Exception):
    """Anything :class:`SessionClient` gives up on."""


class SessionClosedError(ClientError):
    """The service closed the socket with a code that retrying cannot fix."""

    code: int = 0

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the service with {code}: {reason or '(no reason)'}")
        self.code = code
        self.reason = reason


class UnauthorizedError(SessionClosedError):
    """4401 (or HTTP 401): missing or wrong token."""


class ForbiddenError(SessionClosedError):
    """4403 (or HTTP 403): the ``Host`` or ``Origin`` is not allowed by the service."""


class UnknownSessionError(SessionClosedError):
    """4404: no session of that id (retried instead with ``wait_for_session=True``)."""


class SessionDeletedError(SessionClosedError):
    """4410: the session was deleted while the client was connected."""


class PolicyViolationError(SessionClosedError):
    """1008: too many client messages, or a malformed ``since``/``epoch``."""


class MessageTooBigError(SessionClosedError):
    """1009: a message the client sent was over the service's limit."""


class GaveUpError(ClientError):
    """``max_attempts`` connection attempts in a row failed; ``__cause__`` is the last failure."""


class ProtocolError(ClientError):
    """The service sent something the protocol does not allow (e.g. no ``hello`` first)."""


class _ClosedMeanwhileError(ClientError):
    """:meth:`SessionClient.close` was called while the client was (re)connecting."""


NO_RETRY: Final[dict[int, type[SessionClosedError]]] = {
    4401: UnauthorizedError,
    4403: ForbiddenError,
    4404: UnknownSessionError,
    4410: SessionDeletedError,
    1008: PolicyViolationError,
    1009: MessageTooBigError,
}
"""Close codes that end the client, and the exception each raises. Any other code (1006 lost,
1011 server error, 1012 restart, 1013 try again later, …) is retried with backoff; so are 1000 and
1001, since a session's feed has no normal end but its deletion (4410)."""
_HTTP_NO_RETRY: Final[dict[int, int]] = {401: 4401, 403: 4403, 404: 4404}
"""A handshake refused with one of these HTTP statuses counts as that close code."""


# -- backoff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts: ``initial · factor**n`` seconds before the ``n+1``-th
    retry in a row, at most ``max_delay``, of which a random fraction up to ``jitter`` is taken
    off (so clients that lost the service together do not come back together)."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 15.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.max_delay and self.factor >= 1 and 0 <= self.jitter <= 1):
            raise ValueError(
                f"Backoff: need 0 < initial ≤ max_delay, factor ≥ 1 and 0 ≤ jitter ≤ 1, got {self}"
            )

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        base = min(self.max_delay, self.initial * self.factor ** min(retry, 64))
        return base * (1.0 - self.jitter * rand())


# -- the client --------------------------------------------------------------------------------


def _ws_base(url: str) -> str:
    """``http(s)://`` or ``ws(s)://`` base URL of the service → its ``ws(s)://`` form."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"the service URL must be http(s):// or ws(s)://host[:port], got {url!r}")
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class SessionClient:
    """A session's messages from a running service, reconnecting and resuming by itself.

    ``url``: the service (``http://host:port`` or ``ws://host:port``, with a path prefix if it is
    behind one). ``session``: the session id. ``token``: the service's token, sent as
    ``Authorization: Bearer``. ``since``/``epoch``: where to resume from on the first connection
    (a position saved from an earlier run; default: join the live feed). ``backoff``: the delays
    between attempts; ``max_attempts``: failed attempts in a row before :class:`GaveUpError`
    (default: never give up). ``wait_for_session``: retry 4404 (the session does not exist yet,
    e.g. while a restarted service re-creates it) instead of raising :class:`UnknownSessionError`.
    ``connect_options``: passed on to :func:`websockets.asyncio.client.connect` (e.g.
    ``open_timeout``, ``ping_interval``, ``ssl``, ``proxy``).

    Use it as ``async with``: entering connects (and raises at once what retrying cannot fix),
    leaving closes. Iterate :meth:`predictions` or :meth:`messages`."""

    def __init__(
        self,
        url: str,
        session: str,
        *,
        token: str | None = None,
        since: int | None = None,
        epoch: str | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        wait_for_session: bool = False,
        **connect_options: Any,
    ) -> None:
        if not session:
            raise ValueError("session: give the session id")
        if since is not None and since < 0:
            raise ValueError(f"since: a seq is ≥ 0, got {since}")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts: at least 1, got {max_attempts}")
        self.url = f"{_ws_base(url)}/ws/sessions/{urllib.parse.quote(session, safe='')}"
        self.session = session
        self.token = token
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.wait_for_session = wait_for_session
        self.connect_options = connect_options
        self.epoch: str | None = epoch
        """The session's epoch as of the last ``hello``."""
        self.last_seq: int | None = since
        """The seq of the last prediction this client holds (``None`` before the first; after a
        reset, 0 until the new incarnation's first)."""
        self.missed = 0
        """Predictions this client will never get: ``gap`` messages' counts plus seqs skipped on
        the live feed."""
        self.reconnects = 0
        """Connections made again after one was lost."""
        self.resets = 0
        """Times the session turned out to be a new incarnation (another epoch) on reconnecting;
        the seq bookkeeping then started afresh."""
        self.hello: Message | None = None
        """The latest ``hello``."""
        self._joined_at: int | None = None  # last_seq of the hello when joining the live feed
        self._ws: ClientConnection | None = None
        self._pending: deque[Message] = deque()  # the hello (and what it implies) to yield
        self._closing = False

    # -- the context ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (and :meth:`connect` not since)."""
        return self._closing

    async def connect(self) -> None:
        """Connect (if not connected), retrying with backoff what can be retried."""
        if self._ws is None:
            self._closing = False
            self._ws = await self._connect()

    async def close(self) -> None:
        """Close the connection; a :meth:`messages` loop then ends."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    # -- iteration -----------------------------------------------------------------------------

    def predictions(self) -> AsyncIterator[Message]:
        """The session's predictions, each once, in seq order within an incarnation."""
        return self.messages(kinds=("prediction",))

    async def messages(self, kinds: Collection[str] | None = None) -> AsyncIterator[Message]:
        """Every message of the session (``kinds``: only those types), across reconnections:
        the ``hello`` of each connection, ``gap`` messages, predictions (each once: replayed
        ones the client already has are dropped), status messages. Ends after :meth:`close`;
        raises a :class:`SessionClosedError` for close codes that retrying cannot fix, and
        :class:`GaveUpError` after ``max_attempts`` failed attempts in a row."""
        wanted = None if kinds is None else frozenset(kinds)
        while True:
            while self._pending:
                message = self._pending.popleft()
                if wanted is None or message.get("type") in wanted:
                    yield message
            if self._closing:
                return
            if self._ws is None:
                again = self.hello is not None  # (not the first connection of this client)
                try:
                    self._ws = await self._connect()
                except _ClosedMeanwhileError:
                    return
                self.reconnects += int(again)
                continue
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as e:
                if self.closed:  # (read again: close() ran while recv() waited)
                    return
                self._ws = None
                self._raise_if_final(e)
                log.info("session %s: connection lost (%s); reconnecting", self.session, e)
                continue
            message = self._parse(raw)
            if self._take(message) and (wanted is None or message.get("type") in wanted):
                yield message

    # -- bookkeeping ---------------------------------------------------------------------------

    @staticmethod
    def _parse(raw: str | bytes) -> Message:
        try:
            message = json.loads(raw)
        except ValueError as e:
            raise ProtocolError(f"the service sent something that is not JSON: {e}") from e
        if not isinstance(message, dict):
            raise ProtocolError(f"the service sent a JSON {type(message).__name__}, not an object")
        return message

    def _take(self, message: Message) -> bool:
        """Account for ``message``; ``False`` for a prediction this client already has."""
        kind = message.get("type")
        if kind == "gap":
            self.missed += int(message["missed"])
            self.last_seq = max(self.last_seq or 0, int(message["to"]))
        elif kind == "prediction":
            seq = int(message["seq"])
            if self.last_seq is not None:
                if seq <= self.last_seq:
                    return False
                self.missed += seq - self.last_seq - 1
            self.last_seq = seq
        return True

    def _on_hello(self, hello: Message) -> None:
        epoch = str(hello["epoch"])
        resume = hello.get("resume")
        reset = bool(resume and resume.get("reset")) or (
            self.epoch is not None and epoch != self.epoch
        )
        if reset:
            self.resets += 1
            self.last_seq = 0  # the replay starts at the new incarnation's first kept seq
        elif resume is None:
            self._joined_at = int(hello["last_seq"])  # live: what came before is not missed
        self.epoch = epoch
        self.hello = hello
        self._pending.append(hello)

    def _query(self) -> str:
        since = self.last_seq if self.last_seq is not None else self._joined_at
        if since is None:
            return ""
        params = {"since": str(since), **({"epoch": self.epoch} if self.epoch else {})}
        return "?" + urllib.parse.urlencode(params)

    # -- connecting ----------------------------------------------------------------------------

    def _raise_if_final(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd is not None else 1006
        reason = closed.rcvd.reason if closed.rcvd is not None else ""
        error = NO_RETRY.get(code)
        if error is UnknownSessionError and self.wait_for_session:
            return
        if error is not None:
            raise error(code, reason) from closed

    async def _connect(self) -> ClientConnection:
        """Connect and read the ``hello``, retrying with backoff what can be retried."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        failures = 0
        while True:
            if self.closed:
                raise _ClosedMeanwhileError("the client was closed while connecting")
            failure: BaseException
            try:
                ws = await connect(
                    self.url + self._query(), additional_headers=headers, **self.connect_options
                )
            except InvalidStatus as e:
                status = e.response.status_code
                code = _HTTP_NO_RETRY.get(status)
                if code is not None and not (code == 4404 and self.wait_for_session):
                    raise NO_RETRY[code](code, f"HTTP {status} at the handshake") from e
                failure = e
            except (OSError, TimeoutError, InvalidHandshake) as e:
                failure = e  # refused, unreachable, timed out, not a WebSocket endpoint (yet)
            else:
                try:
                    hello = self._parse(await ws.recv())
                except ConnectionClosed as e:
                    self._raise_if_final(e)
                    failure = e
                else:
                    if hello.get("type") != "hello":
                        await ws.close()
                        raise ProtocolError(f"expected a hello first, got {hello.get('type')!r}")
                    self._on_hello(hello)
                    return ws
                with contextlib.suppress(Exception):
                    await ws.close()
            failures += 1
            if self.max_attempts is not None and failures >= self.max_attempts:
                raise GaveUpError(
                    f"{failures} connection attempts to {self.url} failed; last: {failure}"
                ) from failure
            delay = self.backoff.delay(failures - 1)
            log.info("session %s: %s; retrying in %.2f s", self.session, failure, delay)
            await asyncio.sleep(delay)
