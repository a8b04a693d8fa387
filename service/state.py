"""What the running service holds, and the jobs that fill it.

:class:`ServiceState` (kept on ``app.state.service``) holds the loaded models, the sessions, the
LSL stream directory, the hub and the scheduler. :meth:`ServiceState.start` loads the model
directory (:func:`load_models`), opens the stream directory, starts the scheduler and, when asked,
the thread that attaches sessions to streams as they appear (:func:`auto_attach`);
:meth:`ServiceState.close` undoes it. The app's lifespan (:mod:`affectstream.service.app`) calls
both; the routes (:mod:`affectstream.service.api`) read and change the state through
:mod:`affectstream.service.api.deps`.

On the way of one window: a session created here (:class:`~affectstream.service.sessions.Session`)
is polled by the scheduler (:mod:`affectstream.service.scheduler`), which publishes its predictions
on the hub; the session's status messages go to the hub through :meth:`ServiceState.add_session`'s
callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from affectstream.models.runner import ModelLoadError, ModelRunner
from affectstream.service import heap
from affectstream.service.gateway import Gateway
from affectstream.service.hub import Hub
from affectstream.service.messages import Closed, MatchBody, valid_session_id
from affectstream.service.scheduler import Scheduler
from affectstream.service.sessions import Session, group_key, session_phase
from affectstream.service.settings import Settings
from affectstream.streaming.ingest.channels import StreamOverrides
from affectstream.streaming.ingest.session import SessionMatch
from affectstream.streaming.lsl.inlet import StreamDirectory
from affectstream.streaming.preprocess.spec import FeatureKind

__all__ = [
    "AUTO_ATTACH_EVERY_S",
    "ServiceState",
    "SessionLimitError",
    "auto_attach",
    "auto_attach_once",
    "load_models",
    "session_match",
]

AUTO_ATTACH_EVERY_S = 1.0
"""Auto-attach looks at the stream directory this often (one thread for the whole service; a
session's own discovery runs in its ingest session, whatever auto-attach does)."""


class SessionLimitError(RuntimeError):
    """The service holds ``max_sessions`` sessions already; the message says so."""


log = logging.getLogger("affectstream.service")


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
    auto_sessions: set[str] = field(default_factory=set)
    """Sessions auto-attach created (removed when their streams stay gone)."""
    auto_deleted: dict[str, frozenset[str]] = field(default_factory=dict)
    """Auto-attached sessions a client deleted → the uids of their streams then: not attached
    again until a stream with another uid appears for the group (the outlet restarted)."""
    last_seen: dict[str, float] = field(default_factory=dict)
    """Group key → monotonic time auto-attach last saw one of its streams."""
    models_loaded: bool = False
    capped: set[str] = field(default_factory=set)
    """Groups auto-attach could not take for ``max_sessions`` (logged once each)."""
    gateway: Gateway | None = None
    """With a bus (``settings.bus``): the registry and relay; sessions then live on workers and
    this state holds none (:mod:`affectstream.service.gateway`)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceState:
        """An idle state for ``settings`` (nothing loaded or started: see :meth:`start`)."""
        return cls(settings, hub=Hub(settings.queue_size, resume_buffer=settings.resume_buffer))

    # -- start and stop (the app's lifespan) -----------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, freeze_heap: bool = False) -> None:
        """Load the models, open the stream directory, start the scheduler and auto-attach.

        ``loop``: the server's event loop, into which the hub hands messages from other threads.
        A model named explicitly in the settings that cannot be loaded raises here.
        ``freeze_heap``: before any session exists, set what was built so far aside from garbage
        collection (:func:`affectstream.service.heap.freeze_heap`)."""
        self.hub.loop = loop
        if not self.models_loaded:
            load_models(self)
        if any(
            i.feature.kind == FeatureKind.EDA_CVX3
            for r in self.runners.values()
            for i in r.contract.inputs
        ):
            from affectstream.streaming.preprocess.cvxeda.compiled import compiled_if_ready

            compiled_if_ready()  # start the ~10 s JIT now, in the background, not in a session
        self.directory = StreamDirectory()
        self.scheduler = Scheduler(
            self.session_list,
            self.hub.publish,
            self.settings.tick_s,
            inference_threads=self.settings.inference_threads_used(),
        )
        self.scheduler.start()
        if freeze_heap:  # here, before auto-attach can make a session (frozen, it would leak)
            heap.freeze_heap()
        if self.settings.auto_attach:
            threading.Thread(target=auto_attach, args=(self,), daemon=True).start()

    def close(self) -> None:
        """Stop auto-attach and the scheduler, remove every session, close the directory."""
        self.stop.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        for sid in list(self.sessions):
            self.remove_session(sid)
        if self.directory is not None:
            self.directory.close()

    # -- models and sessions ---------------------------------------------------------------------

    def session_list(self) -> list[Session]:
        with self.lock:
            return list(self.sessions.values())

    def find_session(self, session_id: str) -> Session | None:
        """The session of that id, if there is one (the one lookup of HTTP and WebSocket)."""
        with self.lock:
            return self.sessions.get(session_id)

    def runner(self, name: str) -> ModelRunner:
        """A loaded model by its folder name, its name or its ``name@version``."""
        for key, r in self.runners.items():
            if name in (key, r.name, r.contract.name):
                return r
        raise KeyError(name)

    def has_runner(self, name: str) -> bool:
        try:
            self.runner(name)
        except KeyError:
            return False
        return True

    def add_session(
        self,
        session_id: str,
        match: SessionMatch,
        models: list[str],
        overrides: StreamOverrides | None = None,
        lsl_out: bool | None = None,
    ) -> Session:
        """Start a session on the streams ``match`` selects, with the named models (when empty:
        every loaded model; each runs once the streams it needs are there, and says what it waits
        for until then); ``FileExistsError`` if the id is taken. Its status messages go to the
        hub. ``overrides``: channel labels and units the streams do not give themselves.
        ``lsl_out``: publish its predictions as LSL streams (``None``: the ``lsl_out`` setting)."""
        runners = [self.runner(m) for m in models] if models else list(self.runners.values())
        assert self.directory is not None
        with self.lock:
            if session_id in self.sessions:
                raise FileExistsError(session_id)
            if len(self.sessions) >= self.settings.max_sessions:
                raise SessionLimitError(
                    f"the service holds {self.settings.max_sessions} sessions (max_sessions); "
                    "delete one first"
                )
            s = Session(
                session_id,
                match,
                runners,
                directory=self.directory,
                buffer_s=self.settings.buffer_s,
                on_status=self._status,
                overrides=overrides,
                lsl_out=self.settings.lsl_out if lsl_out is None else lsl_out,
                wake=None if self.scheduler is None else self.scheduler.wake,
                window_phase=session_phase(session_id) if self.settings.stagger_windows else 0.0,
            )
            self.sessions[session_id] = s
        log.info("session %s created (%s)", session_id, ", ".join(r.name for r in runners))
        return s

    def delete_session(self, session_id: str) -> None:
        """A client's delete: :meth:`remove_session`, and an auto-attached session stays deleted
        until its streams change (:attr:`auto_deleted`)."""
        if session_id in self.auto_sessions and self.directory is not None:
            uids = frozenset(u for key, u in _groups(self) if key == session_id)
            self.auto_deleted[session_id] = uids
        self.remove_session(session_id)

    def remove_session(self, session_id: str) -> None:
        """Close the session (``KeyError`` if there is none; its LSL prediction streams close
        with it) and tell its subscribers."""
        with self.lock:
            s = self.sessions.pop(session_id)
            self.auto_sessions.discard(session_id)
        s.close()
        self.hub.publish(session_id, Closed(session=session_id).dump())
        log.info("session %s removed", session_id)

    def _status(self, session: Session, message: dict[str, Any]) -> None:
        self.hub.publish(session.id, message)


def session_match(m: MatchBody) -> SessionMatch:
    """The ingest layer's stream match for a request's match body."""
    return SessionMatch(m.source_id_prefix, m.hostname, m.session, m.type)


def load_models(state: ServiceState) -> None:
    """Load every model of the settings; with an explicit list a refused model is an error,
    otherwise it is logged and listed under ``refused``."""
    state.models_loaded = True
    explicit = bool(state.settings.models)
    for path in state.settings.model_paths():
        try:
            # one ONNX Runtime thread per run: the scheduler runs the models due in a tick in
            # parallel instead (a pool of inference_threads); at these batch sizes a second
            # intra-op thread cost more CPU than it saved time (measured: README, Benchmarks)
            runner = ModelRunner(path, threads=1, precision=state.settings.inference_precision)
        except ModelLoadError as e:
            if explicit:
                raise
            state.refused_models[path.name] = str(e)
            log.warning("model %s refused: %s", path.name, e)
            continue
        state.runners[path.name] = runner
        log.info("model %s on %s", runner.name, runner.provider)


def auto_attach(state: ServiceState) -> None:
    """Run :func:`auto_attach_once` every :data:`AUTO_ATTACH_EVERY_S` (in a thread until
    ``state.stop`` is set)."""
    while not state.stop.wait(AUTO_ATTACH_EVERY_S):
        try:
            auto_attach_once(state, time.monotonic())
        except Exception:
            log.exception("auto-attach failed")


def _groups(state: ServiceState) -> list[tuple[str, str]]:
    """(group key, stream uid) of every visible stream auto-attach may take: of the types in
    ``auto_attach_types`` (and markers), named ``<key>-<TYPE>``, ``<key>`` a valid session id
    matching ``auto_attach_pattern``."""
    assert state.directory is not None
    settings = state.settings
    out = []
    for s in state.directory.streams():
        if s.type not in (*settings.auto_attach_types, "Markers"):
            continue
        key = group_key(s.source_id, s.type)
        if (
            key is not None
            and valid_session_id(key)
            and fnmatch.fnmatchcase(key, settings.auto_attach_pattern)
        ):
            out.append((key, s.uid))
    return out


def _exists(state: ServiceState, key: str) -> bool:
    if state.gateway is not None:
        return state.gateway.session(key) is not None
    return state.find_session(key) is not None


def _attach(state: ServiceState, key: str) -> None:
    """A session for the group ``key``: here, or (a gateway) in the bus registry, for a worker."""
    match = SessionMatch(source_id_prefix=key + "-")
    if state.gateway is None:
        state.add_session(key, match, [])
        return
    if state.gateway.count() >= state.settings.max_sessions:
        raise SessionLimitError(
            f"the bus holds {state.settings.max_sessions} sessions (max_sessions)"
        )
    state.gateway.create(key, {"match": match.as_dict()})
    log.info("auto-attach: %s registered on the bus", key)


def auto_attach_once(state: ServiceState, now: float) -> None:
    """Create a session for every group of streams ``<key>-<TYPE>`` that appears (:func:`_groups`)
    up to ``max_sessions``; remove the auto-attached sessions whose streams have all been gone for
    ``auto_attach_grace_s``; leave a group a client deleted alone until a new stream (another uid)
    appears in it."""
    groups: dict[str, set[str]] = {}
    for key, uid in _groups(state):
        groups.setdefault(key, set()).add(uid)
    for key in groups:
        state.last_seen[key] = now
    for key, uids in list(state.auto_deleted.items()):
        if groups.get(key, set()) - uids:
            del state.auto_deleted[key]  # a restarted outlet: attach again
    for key in sorted(groups):
        if key in state.auto_deleted or _exists(state, key):
            continue
        try:
            _attach(state, key)
        except FileExistsError:
            continue
        except SessionLimitError as e:
            if key not in state.capped:
                state.capped.add(key)
                log.warning("auto-attach: %s not attached: %s", key, e)
            continue
        state.auto_sessions.add(key)
    grace = state.settings.auto_attach_grace_s
    for key in sorted(state.auto_sessions - set(groups)):
        if now - state.last_seen.get(key, now) > grace:
            log.info("auto-attach: %s removed, its streams gone for %.0f s", key, grace)
            if state.gateway is not None:
                state.gateway.delete(key)
                state.auto_sessions.discard(key)
            else:
                with contextlib.suppress(KeyError):
                    state.remove_session(key)
    for key in [k for k in state.last_seen if k not in groups and k not in state.auto_sessions]:
        del state.last_seen[key]
