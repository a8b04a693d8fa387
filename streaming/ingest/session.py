"""A session: the LSL streams of one person, found by a match, acquired and watched.

A :class:`SessionMatch` says which streams belong to the session (every given key must hold):
``source_id_prefix``, ``hostname``, ``session`` (the ``<session>`` field of the stream's
description, which needs the full description, hence an inlet) and ``type``. :class:`IngestSession`
keeps a :class:`~affectstream.streaming.lsl.inlet.StreamDirectory` (continuous resolver), starts one
:class:`~affectstream.streaming.ingest.acquisition.StreamAcquirer` per matching stream, refuses
streams that contradict the session's :class:`StreamExpectation` (wrong channel count or format,
with a message), and re-finds lost streams by ``source_id``.

Types are compared by :func:`canonical_type` (``"eda"`` and ``"GSR"`` are one modality). Each
adopted stream gets its :class:`~affectstream.streaming.ingest.channels.ChannelPlan` (labels,
units, conversion to µS), under the session's
:class:`~affectstream.streaming.ingest.channels.StreamOverrides`; a stream the plan cannot serve
(labels for another channel count, an unknown skin unit) is refused with the reason
(docs/lsl.md#types-labels-and-units).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from affectstream.streaming.ingest.acquisition import StreamAcquirer
from affectstream.streaming.ingest.channels import (
    EMPTY_REPORT,
    ChannelPlan,
    StreamOverrides,
    canonical_type,
    plan_channels,
)
from affectstream.streaming.ingest.health import HealthPolicy, StreamHealth, StreamState
from affectstream.streaming.lsl.inlet import (
    Inlet,
    LslError,
    StreamDescription,
    StreamDirectory,
    local_clock,
)
from affectstream.streaming.threadname import name_os_thread

__all__ = [
    "MATCH_KEYS",
    "IngestSession",
    "SessionMatch",
    "StreamExpectation",
    "StreamOverrides",
    "canonical_type",
    "visible_streams",
]

log = logging.getLogger(__name__)

MATCH_KEYS = ("source_id_prefix", "hostname", "session", "type")


@dataclass(frozen=True, slots=True)
class SessionMatch:
    """Which streams belong to a session; ``None`` fields are not checked."""

    source_id_prefix: str | None = None
    hostname: str | None = None
    session: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        if all(getattr(self, k) is None for k in MATCH_KEYS):
            raise ValueError(f"a session match needs at least one of {', '.join(MATCH_KEYS)}")

    @classmethod
    def from_pairs(cls, pairs: Iterable[str]) -> SessionMatch:
        """From ``KEY=VALUE`` strings (the CLI's ``--match``); unknown keys are an error."""
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not value:
                raise ValueError(f"--match {pair!r}: expected KEY=VALUE")
            if key not in MATCH_KEYS:
                raise ValueError(
                    f"--match {pair!r}: unknown key {key!r}; keys: {', '.join(MATCH_KEYS)}"
                )
            if key in values:
                raise ValueError(f"--match: key {key!r} given twice")
            values[key] = value
        return cls(**values)

    def as_dict(self) -> dict[str, str]:
        """The keys that are set, e.g. ``{"session": "lab1"}``."""
        return {k: v for k in MATCH_KEYS if (v := getattr(self, k)) is not None}

    @property
    def needs_description(self) -> bool:
        return self.session is not None

    def matches_short(self, s: StreamDescription) -> bool:
        """The checks possible without the full description."""
        if self.source_id_prefix is not None and not s.source_id.startswith(self.source_id_prefix):
            return False
        if self.hostname is not None and s.hostname != self.hostname:
            return False
        return self.type is None or canonical_type(s.type) == canonical_type(self.type)

    def matches(self, s: StreamDescription) -> bool:
        return self.matches_short(s) and (self.session is None or s.session == self.session)


@dataclass(frozen=True, slots=True)
class StreamExpectation:
    """What the session expects of the stream of one (canonical) type."""

    type: str
    channel_count: int | None = None
    numeric: bool = True

    def problem(self, s: StreamDescription) -> str | None:
        """Why ``s`` cannot serve as this type, or ``None``."""
        if self.channel_count is not None and s.channel_count != self.channel_count:
            return (
                f"stream {s.key} ({s.type}) has {s.channel_count} channel(s); "
                f"this session expects {self.channel_count} for {self.type}"
            )
        if self.numeric and s.channel_format in ("string", "unknown"):
            return f"stream {s.key} ({s.type}) carries {s.channel_format} values, expected numbers"
        if self.numeric and s.nominal_srate <= 0:
            return f"stream {s.key} ({s.type}) has an irregular rate; {self.type} must be regular"
        return None


StateCallback = Callable[[StreamAcquirer, StreamState], None]

LISTING_MAX_AGE_S = 0.25
"""How long one listing of a directory's streams serves every session that shares it."""
_listings: weakref.WeakKeyDictionary[StreamDirectory, tuple[float, list[StreamDescription]]] = (
    weakref.WeakKeyDictionary()
)
_listings_lock = threading.Lock()


def visible_streams(directory: StreamDirectory) -> list[StreamDescription]:
    """``directory.streams()``, taken at most every :data:`LISTING_MAX_AGE_S` per directory.

    Each session looks through the visible streams every ``discover_every_s``; listing them
    converts every stream's liblsl description (~15 µs each), so with a shared directory the
    cost per session grew with the number of sessions (#16). Sessions sharing a directory now
    share its listing."""
    now = local_clock()
    with _listings_lock:
        got = _listings.get(directory)
        if got is not None and now - got[0] < LISTING_MAX_AGE_S:
            return got[1]
    streams = directory.streams()
    with _listings_lock:
        _listings[directory] = (now, streams)
    return streams


class IngestSession:
    """Discover, acquire and watch the streams of one session.

    Parameters
    ----------
    match : which streams belong to the session
    expectations : per canonical type, what a stream must satisfy (others are taken as they are)
    buffer_s : seconds kept per stream
    on_state : called on every stream health change (from acquisition threads)
    directory : a shared continuous resolver (one per process is enough); created if not given
    overrides : channel labels and units the session gives for streams of a type (labels for
        streams that carry none or wrong ones, the unit of a GSR stream)
    on_data : given to every stream's acquirer (:class:`StreamAcquirer`'s ``on_data``)
    """

    def __init__(
        self,
        match: SessionMatch,
        *,
        expectations: Mapping[str, StreamExpectation] | None = None,
        buffer_s: float = 30.0,
        policy: HealthPolicy | None = None,
        on_state: StateCallback | None = None,
        directory: StreamDirectory | None = None,
        discover_every_s: float = 0.5,
        overrides: StreamOverrides | None = None,
        on_data: Callable[[float], None] | None = None,
    ) -> None:
        self.match = match
        self.on_data = on_data
        self.expectations = {canonical_type(k): v for k, v in (expectations or {}).items()}
        self.overrides = overrides or StreamOverrides()
        self.buffer_s = buffer_s
        self.policy = policy or HealthPolicy()
        self._on_state = on_state
        self._own_directory = directory is None
        self.directory = directory or StreamDirectory()
        self._discover_every_s = discover_every_s
        self.acquirers: dict[str, StreamAcquirer] = {}  # by stream key
        self.refused: dict[str, tuple[StreamDescription, str]] = {}
        self._rejected_uids: set[str] = set()  # streams seen not to belong (description checked)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wanted: float | None = None
        self._by_type: dict[str, StreamAcquirer] = {}  # canonical type -> its first acquirer

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> IngestSession:
        self._thread = threading.Thread(target=self._discover_loop, name="discover", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for acq in list(self.acquirers.values()):
            acq.stop()
        if self._own_directory:
            self.directory.close()

    def __enter__(self) -> IngestSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- discovery ------------------------------------------------------------------------------

    def _discover_loop(self) -> None:
        name_os_thread()
        while not self._stop.is_set():
            try:
                self.discover_once()
            except Exception:  # keep discovering; one odd stream must not end the session
                log.exception("stream discovery failed")
            self._stop.wait(self._discover_every_s)

    def discover_once(self) -> None:
        for s in visible_streams(self.directory):
            if s.key in self.acquirers or s.key in self.refused or s.uid in self._rejected_uids:
                continue
            if not self.match.matches_short(s):
                continue
            self._adopt(s)

    def _adopt(self, s: StreamDescription) -> None:
        inlet = Inlet(s)
        try:
            inlet.open(timeout=2.0)
            full = inlet.describe(timeout=2.0)
        except LslError as e:
            log.info("could not open %s: %s", s.key, e)
            inlet.close()
            return
        if not self.match.matches(full):
            self._rejected_uids.add(s.uid)
            inlet.close()
            return
        expectation = self.expectations.get(canonical_type(full.type))
        problem = expectation.problem(full) if expectation else None
        if problem is None and full.channel_format == "unknown":
            problem = f"stream {full.key} has an unsupported channel format"
        plan = None
        if problem is None:
            try:
                plan = plan_channels(full, self.overrides)
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            inlet.close()
            with self._lock:
                self.refused[full.key] = (full, problem)
            log.warning("refused %s", problem)
            return
        assert plan is not None
        acq = StreamAcquirer(
            full,
            buffer_s=self.buffer_s,
            find_stream=self._find,
            policy=self.policy,
            on_state=self._on_state,
            channels=plan,
            replan=self._replan,
            on_data=self.on_data,
        )
        acq.want(self._wanted)
        with self._lock:
            self.acquirers[full.key] = acq
            self._by_type.setdefault(canonical_type(full.type), acq)
        acq.start(inlet)
        log.info(
            "acquiring %s (%s, %d ch @ %g Hz, labels from %s, unit %s)",
            full.key,
            full.type,
            full.channel_count,
            full.nominal_srate,
            plan.labels_from,
            plan.unit,
        )

    def _replan(self, full: StreamDescription) -> ChannelPlan:
        """The channel plan of a stream that came back with another channel count, checked as a
        new stream is (the session's expectations, its channel map and units); ``ValueError``
        with the reason when it cannot be taken."""
        expectation = self.expectations.get(canonical_type(full.type))
        problem = expectation.problem(full) if expectation else None
        if problem is not None:
            raise ValueError(problem)
        return plan_channels(full, self.overrides)

    def _find(self, key: str) -> StreamDescription | None:
        for s in visible_streams(self.directory):
            if s.key == key:
                return s
        return None

    def want(self, until: float | None) -> None:
        """The session's consumers wait for data up to ``until`` (LSL s; ``None``: whatever
        comes): every stream's :meth:`StreamAcquirer.want`, also of streams found later."""
        self._wanted = until
        with self._lock:
            acquirers = list(self.acquirers.values())
        for acq in acquirers:
            acq.want(until)

    # -- reading --------------------------------------------------------------------------------

    def by_type(self, lsl_type: str) -> StreamAcquirer | None:
        """The acquirer of the (first) stream of a canonical type, if any."""
        return self._by_type.get(canonical_type(lsl_type))  # asked for at every window

    def wait_for(self, types: Iterable[str], timeout: float) -> bool:
        """Wait until a stream of each type is being acquired; ``True`` if all are."""
        deadline = local_clock() + timeout
        wanted = list(types)
        while local_clock() < deadline:
            if all(self.by_type(t) is not None for t in wanted):
                return True
            self._stop.wait(0.05)
        return all(self.by_type(t) is not None for t in wanted)

    def report(self) -> list[dict[str, object]]:
        """One JSON-ready dict per stream (acquired or refused): identity, health, counters, and
        the channel plan (``labels``, ``labels_from``, ``unit``, ``unit_given``, ``unit_from``;
        all ``None`` for a refused stream)."""
        rows: list[dict[str, object]] = []
        with self._lock:
            acquirers = list(self.acquirers.values())
            refused = list(self.refused.values())
        for acq in acquirers:
            rows.append({**_identity(acq.stream), **acq.health.snapshot(), **acq.channels.report()})
        for s, why in refused:
            rows.append(
                {
                    **_identity(s),
                    **EMPTY_REPORT,
                    "state": str(StreamState.REFUSED),
                    "reason": why,
                    "samples": 0,
                    "nonfinite": 0,
                    "reconnects": 0,
                    "channel_changes": 0,
                }
            )
        return sorted(rows, key=lambda r: (str(r["type"]), str(r["source_id"])))

    def states(self) -> list[tuple[str, str, int, str | None]]:
        """``(type, state, nonfinite, unit)`` of every stream, in :meth:`report`'s order and with
        its values: what a prediction's ``quality`` needs at every window end, without building
        the full report (a lab session's six streams, idle process: ~70 µs for the report,
        ~7 µs for this). Each stream's ``(state, nonfinite)`` is a pair its health held at one
        instant (:func:`_state_and_nonfinite`), read without taking the health's lock."""
        with self._lock:
            acquirers = list(self.acquirers.values())
            refused = list(self.refused.values())
        keyed: list[tuple[str, str, str, int, str | None]] = []
        for a in acquirers:
            # one read of each reference the acquirer replaces as a whole (a new description or
            # channel plan when the stream comes back changed): type, source_id and unit come
            # from one object each
            stream, plan, health = a.stream, a.channels, a.health
            nonfinite, state = health.nonfinite, health.state
            if health.nonfinite != nonfinite:  # (see _state_and_nonfinite: its first try inline)
                state, nonfinite = _state_and_nonfinite(health)
            keyed.append((stream.type, stream.source_id, str(state), nonfinite, plan.unit))
        keyed += [(s.type, s.source_id, str(StreamState.REFUSED), 0, None) for s, _ in refused]
        keyed.sort(key=lambda r: (str(r[0]), str(r[1])))
        return [(t, state, nonfinite, unit) for t, _, state, nonfinite, unit in keyed]


def _state_and_nonfinite(health: StreamHealth) -> tuple[StreamState, int]:
    """``(state, nonfinite)`` of a stream's health as they were at one instant, without its lock.

    The acquisition thread writes both under ``health``'s lock (:meth:`StreamHealth.on_nonfinite`
    then :meth:`StreamHealth.on_samples` for a chunk with non-finite values), and
    :meth:`StreamHealth.snapshot` reads them under it. Taking that lock here, at every window end
    of every session, would make the acquisition thread (one thread for all the process' streams)
    wait whenever this reader holds it — for as long as the reader is descheduled while holding
    it. Instead:

    - each field is a single reference, stored by one assignment (``state`` in ``_enter``,
      ``nonfinite`` by ``+=``), so each read sees a value it held (atomic under the interpreter
      lock);
    - ``nonfinite`` only grows (a count of samples). Read before and after ``state``, the same
      value means it held that value all the while, in particular at the instant ``state`` was
      read: the pair is one the health held then, as a read under the lock would give.

    A count that moved in between (a chunk with non-finite values stored meanwhile) is read again;
    should it keep moving, the pair comes from :meth:`StreamHealth.snapshot` (under the lock).
    """
    for _ in range(3):
        nonfinite, state = health.nonfinite, health.state
        if health.nonfinite == nonfinite:
            return state, nonfinite
    snap = health.snapshot()
    return StreamState(snap["state"]), int(snap["nonfinite"])


def _identity(s: StreamDescription) -> dict[str, object]:
    return {
        "name": s.name,
        "type": s.type,
        "source_id": s.source_id,
        "hostname": s.hostname,
        "session": s.session,
        "channel_count": s.channel_count,
        "nominal_srate": s.nominal_srate,
        "channel_format": s.channel_format,
    }
