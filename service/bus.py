"""The Redis bus that gateways and workers share when one process is not enough (issue #17).

Nothing here runs in the embedded default (``affectstream serve`` without ``--bus``). With a bus,
the roles split: a **gateway** keeps the session registry and relays predictions to WebSocket
clients; a **worker** holds sessions (LSL ingest, preprocessing, inference) under **leases**.
This module is the protocol between them, built on Redis data types only (no home-made wire
format), in the manner of the Redis engines of WebSocket fan-out servers (Centrifugo keeps a
bounded Redis Stream per channel, addressed by an offset and an epoch; ours are the prediction
``seq`` and the session ``epoch``):

======================================  ============  ==============================================
key (``{p}`` = prefix)                  type          what
======================================  ============  ==============================================
``{p}:sessions``                        hash          session id → its request (JSON), by gateways
``{p}:epoch:{id}``                      string        the session's epoch (random; set with the id)
``{p}:lease:{id}``                      string + TTL  the worker holding the session
``{p}:worker:{w}``                      string + TTL  a worker's heartbeat: its load (JSON)
``{p}:seq:{id}``                        string        the session's last prediction ``seq``
``{p}:msgs:{id}``                       stream        the session's messages, trimmed to ~``maxlen``
``{p}:state:{id}``                      string + TTL  what its worker says of it (hello, GET)
``{p}:stimulus:{id}``                   string        its stimulus set over REST (JSON), if any
======================================  ============  ==============================================

Messages go into the stream by :meth:`Bus.publish`, a Lua script that runs atomically in Redis:
it checks that the publisher still holds the session's lease (**fencing**: a worker whose lease
expired while it was paused cannot publish a duplicate or an out-of-order message after the
takeover), increments ``seq`` for a prediction and appends the entry with the explicit ID
``<seq>-*``, so that stream IDs *are* the seq: a prediction is entry ``<seq>-0``, the status
messages after it ``<seq>-1``, ``<seq>-2`` …; resuming after prediction *s* is ``XRANGE (s-0 +``.
The ``seq`` counter lives beside the lease, not in the worker, so it keeps increasing across a
takeover. Entries hold the message without its ``seq`` (the relay adds it from the ID).

Redis doing the ordering is the design choice: there is no leader among workers, no clock
comparison, and a gateway needs nothing but ``XREAD`` to relay any session.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aredis

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_PREFIX",
    "Bus",
    "BusUnavailableError",
    "Entry",
    "follow",
    "redact_url",
]

DEFAULT_PREFIX = "affectstream"
DEFAULT_MAXLEN = 1024
"""Entries kept per session stream (approximately: ``MAXLEN ~`` trims by whole macro nodes)."""

_PUBLISH = """
-- KEYS: lease, seq, stream; ARGV: worker, maxlen, kind, payload
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local seq
if ARGV[3] == 'prediction' then
  seq = redis.call('INCR', KEYS[2])
else
  seq = tonumber(redis.call('GET', KEYS[2]) or '0')
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-*', 'kind', ARGV[3], 'msg', ARGV[4])
return seq
"""

_RENEW = """
-- KEYS: lease; ARGV: worker, ttl_ms
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
-- KEYS: lease; ARGV: worker
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BusUnavailableError(RuntimeError):
    """Redis cannot be reached (or refused us); the message names the URL, password redacted."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (what logs and errors show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True)
class Entry:
    """One message of a session's stream: its position and the message as a wire dict
    (predictions with their ``seq`` put back)."""

    seq: int
    """The seq of the latest prediction at or before this entry (the entry's own for a
    prediction)."""
    sub: int
    """0 for a prediction; 1, 2, … for the status messages that followed prediction ``seq``."""
    message: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.seq}-{self.sub}"

    @classmethod
    def parse(cls, entry_id: str | bytes, fields: dict[Any, Any]) -> Entry:
        text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        seq_s, sub_s = text.split("-")
        raw = fields.get("msg", fields.get(b"msg", b"{}"))
        message = json.loads(raw)
        seq, sub = int(seq_s), int(sub_s)
        if sub == 0 and seq > 0:
            message["seq"] = seq
        return cls(seq, sub, message)


class Bus:
    """The synchronous side of the bus (workers, and a gateway's registry calls).

    ``Bus.connect(url)`` checks the connection at once: an unreachable Redis is a
    :class:`BusUnavailableError` naming the URL, not a hang or a traceback later."""

    def __init__(
        self,
        client: redis.Redis,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
    ) -> None:
        self.r = client
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self._publish = self.r.register_script(_PUBLISH)
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
        timeout_s: float = 2.0,
    ) -> Bus:
        try:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=timeout_s,
                socket_timeout=timeout_s,
                health_check_interval=10,
            )
            client.ping()
        except (redis.RedisError, ValueError, OSError) as e:
            raise BusUnavailableError(f"cannot reach the bus at {redact_url(url)}: {e}") from e
        return cls(client, url, prefix=prefix, maxlen=maxlen)

    def close(self) -> None:
        self.r.close()

    # -- keys --------------------------------------------------------------------------------

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}:{kind}:{name}" if name else f"{self.prefix}:{kind}"

    # -- the session registry (gateways) -------------------------------------------------------

    def put_session(self, session_id: str, request: dict[str, Any]) -> str:
        """Register (or re-register) a session; returns its epoch. A new session gets a new
        epoch and its seq starts from 1; re-registering an existing one keeps both (what a
        gateway does when Redis lost its state and the gateway puts its sessions back: the
        epoch is then new, because the old one is gone with the rest)."""
        epoch = secrets.token_hex(6)
        with self.r.pipeline() as p:
            p.hset(self.key("sessions"), session_id, json.dumps(request, separators=(",", ":")))
            p.set(self.key("epoch", session_id), epoch, nx=True)
            p.get(self.key("epoch", session_id))
            out = p.execute()
        return str(out[-1])

    def delete_session(self, session_id: str, linger_ms: int = 30_000) -> bool:
        """Remove a session: registry entry, epoch, seq, state and lease (its holder can publish
        nothing more, and closes it at its next step). A final ``closed`` entry goes into its
        stream, which lingers ``linger_ms`` so that every gateway's relay reads it and closes its
        clients (4410).
        ``False`` if the session is unknown."""
        seq = self.last_seq(session_id)
        with self.r.pipeline() as p:
            p.hdel(self.key("sessions"), session_id)
            p.xadd(
                self.key("msgs", session_id),
                {"kind": "closed", "msg": json.dumps({"type": "closed", "session": session_id})},
                id=f"{seq}-*",
            )
            p.pexpire(self.key("msgs", session_id), linger_ms)
            p.delete(
                self.key("epoch", session_id),
                self.key("seq", session_id),
                self.key("state", session_id),
                self.key("stimulus", session_id),
                self.key("lease", session_id),  # its holder is fenced from now on
            )
            removed, *_ = p.execute()
        return bool(removed)

    def put_stimulus(self, session_id: str, stimulus: dict[str, Any] | None) -> None:
        """Set (a dict: ``id``, ``features``, ``set_at`` wall-clock seconds) or clear (``None``)
        a session's stimulus; its holder applies it at its next lease step."""
        key = self.key("stimulus", session_id)
        if stimulus is None:
            self.r.delete(key)
        else:
            self.r.set(key, json.dumps(stimulus, separators=(",", ":")))

    def stimuli(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        """Session → its stimulus as stored (raw JSON; ``None``: none), in one round trip."""
        ids = list(session_ids)
        if not ids:
            return {}
        raw = cast(list[str | None], self.r.mget([self.key("stimulus", s) for s in ids]))
        return dict(zip(ids, raw, strict=True))

    def request(self, session_id: str) -> dict[str, Any] | None:
        raw = cast(str | None, self.r.hget(self.key("sessions"), session_id))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def count(self) -> int:
        return int(self.r.hlen(self.key("sessions")))

    def put_state(
        self, session_id: str, worker: str, snapshot: dict[str, Any], ttl_ms: int
    ) -> None:
        """What the holder says of the session (models, streams, model states), for gateways'
        ``hello`` and ``GET /sessions/{id}``; expires with the worker."""
        payload = json.dumps({**snapshot, "worker": worker}, separators=(",", ":"), default=str)
        self.r.set(self.key("state", session_id), payload, px=ttl_ms)

    def session_state(self, session_id: str) -> dict[str, Any] | None:
        raw = cast(str | None, self.r.get(self.key("state", session_id)))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    def sessions(self) -> dict[str, dict[str, Any]]:
        raw = cast(dict[str, str], self.r.hgetall(self.key("sessions")))
        return {k: json.loads(v) for k, v in raw.items()}

    def epoch(self, session_id: str) -> str | None:
        return cast(str | None, self.r.get(self.key("epoch", session_id)))

    # -- leases (workers) ------------------------------------------------------------------------

    def claim(self, session_id: str, worker: str, ttl_ms: int) -> bool:
        """Take the session if no one holds it (``SET NX PX``)."""
        return bool(self.r.set(self.key("lease", session_id), worker, nx=True, px=ttl_ms))

    def renew(self, session_id: str, worker: str, ttl_ms: int) -> bool:
        """Extend our lease; ``False`` when it is no longer ours (expired, taken over, or the
        session was deleted): the worker must drop the session then."""
        return bool(self._renew(keys=[self.key("lease", session_id)], args=[worker, ttl_ms]))

    def release(self, session_id: str, worker: str) -> bool:
        """Give the session up (a clean shutdown), so another worker takes it at once."""
        return bool(self._release(keys=[self.key("lease", session_id)], args=[worker]))

    def holder(self, session_id: str) -> str | None:
        return cast(str | None, self.r.get(self.key("lease", session_id)))

    def leases(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(session_ids)
        if not ids:
            return {}
        held = cast(list[str | None], self.r.mget([self.key("lease", s) for s in ids]))
        return dict(zip(ids, held, strict=True))

    # -- worker heartbeats -----------------------------------------------------------------------

    def heartbeat(self, worker: str, load: dict[str, Any], ttl_ms: int) -> None:
        payload = json.dumps({**load, "at": time.time()}, separators=(",", ":"))
        self.r.set(self.key("worker", worker), payload, px=ttl_ms)

    def workers(self) -> dict[str, dict[str, Any]]:
        names = [str(k) for k in self.r.scan_iter(match=self.key("worker", "*"), count=500)]
        if not names:
            return {}
        values = cast(list[str | None], self.r.mget(names))
        prefix = f"{self.prefix}:worker:"
        return {
            n[len(prefix) :]: json.loads(v)
            for n, v in zip(names, values, strict=True)
            if v is not None
        }

    # -- messages -----------------------------------------------------------------------------

    def publish(self, session_id: str, worker: str, message: dict[str, Any]) -> int | None:
        """Append ``message`` to the session's stream if ``worker`` holds its lease.

        A prediction (``type == "prediction"``) gets the next seq (any ``seq`` it carries is
        replaced); any other message is filed after the latest prediction. Returns the seq, or
        ``None`` when the lease is not ours (fenced: nothing was written)."""
        kind = str(message.get("type", ""))
        body = {k: v for k, v in message.items() if k != "seq"}
        seq = int(
            self._publish(
                keys=[
                    self.key("lease", session_id),
                    self.key("seq", session_id),
                    self.key("msgs", session_id),
                ],
                args=[worker, self.maxlen, kind, json.dumps(body, separators=(",", ":"))],
            )
        )
        return None if seq < 0 else seq

    def last_seq(self, session_id: str) -> int:
        return int(cast(str | None, self.r.get(self.key("seq", session_id))) or 0)

    def after(self, session_id: str, seq: int, count: int | None = None) -> list[Entry]:
        """The kept entries after prediction ``seq`` (its status messages included), oldest
        first; ``seq=0`` gives everything kept."""
        start = f"({seq}-0" if seq > 0 else "-"
        rows = self.r.xrange(self.key("msgs", session_id), min=start, max="+", count=count)
        return [Entry.parse(i, f) for i, f in cast(list[tuple[str, dict[str, str]]], rows)]

    def first_kept(self, session_id: str) -> int | None:
        """The seq of the oldest prediction still kept (``None`` when none is)."""
        for entry in self.after(session_id, 0, count=self.maxlen + 64):
            if entry.sub == 0 and entry.seq > 0:
                return entry.seq
        return None


async def follow(
    client: aredis.Redis,
    stream_key: str,
    after: str = "$",
    *,
    block_ms: int = 1000,
    count: int = 256,
) -> AsyncIterator[Entry]:
    """The gateway's relay: entries of one session stream as they arrive, after the entry ID
    ``after`` (``"$"``: only new ones; ``"5-0"``: everything after prediction 5), forever.

    ``XREAD BLOCK`` wakes on new entries; a quiet stream costs one round trip per ``block_ms``.
    Connection errors propagate (the caller reconnects with backoff and resumes from the last
    entry it relayed)."""
    last = after
    while True:
        rows = await client.xread({stream_key: last}, count=count, block=block_ms)
        for _key, entries in cast(list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]], rows or []):
            for entry_id, fields in entries:
                entry = Entry.parse(entry_id, fields)
                last = entry.id
                yield entry
