"""Acquisition: pull, check, store; never model code. One thread pulls every stream.

Each :class:`StreamAcquirer` owns an :class:`~affectstream.streaming.lsl.inlet.Inlet`, a
:class:`~affectstream.streaming.ingest.ring_buffer.RingBuffer` and a
:class:`~affectstream.streaming.ingest.health.StreamHealth`. An :class:`AcquisitionLoop` (one per
process unless given) polls the inlets of all its acquirers every ``period_s`` with non-blocking
pulls (``timeout=0``: what liblsl has queued, into the inlet's preallocated array), applies the
bad-input rules below, writes to the ring buffers and updates health. One thread for all streams
instead of one per stream (#16): ~70 threads contending for one interpreter lock cost more than
the work itself, and a chunk's cost was paid on every push.

Samples nobody waits for yet may stay in liblsl's queue a little (#16): a consumer that reads
windows says up to when it waits for data (:meth:`StreamAcquirer.want`, the service's next window
end); while the samples queued for a regular stream cannot reach that time, the pull is put off —
for at most :attr:`StreamAcquirer.hold_s` (half the stream's stale time, at most
:data:`HOLD_MAX_S`) or until half an inlet's chunk is queued. The window's data are pulled in the
round they arrive, as before; the chunks in between are pulled together, one pull, one dejitter
and one ring-buffer write instead of several (a full lab session's 128 Hz streams: ~8 instead of
32 pulls a second). While a stream holds, the loop does not even look at it until the hold ends or
:data:`WAKE_AHEAD_S` before the wished time. Without a wish (the default) every queued sample is
pulled at once.

A dead stream never stalls another (docs/lsl.md#one-thread-per-inlet):

- the loop never waits on an inlet: pulls do not block (inlets are opened with ``recover=False``:
  a lost outlet raises at once), and what can block inside liblsl (opening an inlet, a first time
  correction) runs in a short-lived helper thread of that stream only;
- should a pull block all the same, a watchdog replaces the loop's thread after ``hang_s``: the
  other streams go on in the new thread, the stream whose pull hung goes ``lost`` and is
  reconnected once the pull returns.

Bad-input rules (stated here, tested in ``tests/streaming``):

- **Non-finite values** (NaN, ±Inf) are stored as NaN and the sample is counted in
  ``health.nonfinite``. The windower never hands a window with NaN to a consumer: short runs are
  interpolated, longer ones make the window unavailable
  (:mod:`affectstream.streaming.ingest.windows`).
- **Units**: a GSR stream's values are converted to µS before they are stored (from the unit of
  the stream's description or the session's override; :mod:`.channels`). A skin resistance ≤ 0
  has no conductance: it is stored as NaN and counted like any other non-finite value.
- **Timestamps** of regular streams are smoothed by :class:`~.dejitter.Dejitter` (liblsl's
  clock synchronisation, our own discontinuity-preserving fit): a forward jump beyond its
  tolerance (at least ``gap_intervals`` nominal intervals) counts as a gap (``health.gaps``, the
  samples in it in ``health.missing``) and the missing span is never filled in; a clock step
  re-anchors the timeline and counts in ``health.clock_steps``. Irregular streams keep their
  timestamps as received.
- **Timestamps that do not increase** (equal to or before the previous one, or not finite) are
  dropped and counted in ``health.backwards`` (after a clock step backwards: the samples stamped
  before the newest stored one).
- **Lost outlet**: health goes ``lost``; the acquirer then looks for a stream with the same
  ``source_id`` every ``reconnect_every_s`` and, when the outlet is back, opens a new inlet (in a
  helper thread), counts a reconnect, and data (and health ``recovered``) flow again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.ingest.channels import ChannelPlan, plan_channels
from affectstream.streaming.ingest.dejitter import Dejitter, DejitterPolicy
from affectstream.streaming.ingest.health import HealthPolicy, StreamHealth, StreamState
from affectstream.streaming.ingest.ring_buffer import RingBuffer
from affectstream.streaming.lsl.inlet import (
    Inlet,
    LslError,
    StreamDescription,
    StreamLostError,
    local_clock,
)
from affectstream.streaming.threadname import name_os_thread

__all__ = ["AcquisitionLoop", "StreamAcquirer"]

log = logging.getLogger(__name__)

HOLD_MAX_S = 0.125
"""The longest a regular stream's queued samples are left in liblsl when no consumer waits for
them (:meth:`StreamAcquirer.want`); at most half the stream's stale time, so holding never makes a
stream look silent."""
WAKE_AHEAD_S = 0.05
"""While a stream holds samples, the loop does not look at it until this long before the wished
time (or the hold's end): no sample stamped at that time can have arrived earlier."""
HOLD_AHEAD_S = 0.02
"""Queued samples estimated to reach within this long (or two sample intervals, the longer) of the
wished time are pulled: the estimate counts samples at the nominal rate from the newest stored
timestamp, and a device's jitter must not put the completing chunk off to the next one."""

FindStream = Callable[[str], StreamDescription | None]
"""Look a stream up by :attr:`StreamDescription.key` (for reconnection); ``None`` if not visible."""


class _Worker:
    """One incarnation of the loop's thread (a hung one is retired and replaced)."""

    __slots__ = ("current", "retired", "since", "thread")

    def __init__(self) -> None:
        self.retired = threading.Event()
        self.current: StreamAcquirer | None = None  # the acquirer being stepped
        self.since = 0.0  # time.monotonic() when its step began
        self.thread: threading.Thread | None = None


class AcquisitionLoop:
    """One thread stepping many :class:`StreamAcquirer` objects: every ``period_s`` each one's
    inlet is pulled without waiting and what came is stored (:meth:`StreamAcquirer.step`).

    A watchdog thread checks every ``hang_s / 5`` that no step has been running for longer than
    ``hang_s``; if one has (a pull blocked inside liblsl), that thread is retired, a new one
    steps the other acquirers, and the hung acquirer goes ``lost`` and is reconnected once its
    pull returns. :meth:`shared` is the process' loop, which :class:`StreamAcquirer` uses by
    default. The threads start with the first acquirer and idle while there is none.
    """

    _shared: ClassVar[AcquisitionLoop | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, period_s: float = 0.01, hang_s: float = 0.5) -> None:
        if not period_s > 0 or not hang_s > 0:
            raise ValueError("period_s and hang_s must be > 0")
        self.period_s = period_s
        self.hang_s = hang_s
        self._members: dict[int, StreamAcquirer] = {}
        self._snapshot: tuple[StreamAcquirer, ...] = ()
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._worker: _Worker | None = None
        self._watchdog: threading.Thread | None = None
        self.replaced = 0
        """Threads retired because a step hung."""

    @classmethod
    def shared(cls) -> AcquisitionLoop:
        """The process' loop (created at the first call)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    # -- membership -----------------------------------------------------------------------------

    def add(self, acq: StreamAcquirer) -> None:
        with self._lock:
            self._members[id(acq)] = acq
            self._snapshot = tuple(self._members.values())
            if self._worker is None:
                self._start_worker()
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="acquire-watchdog", daemon=True
                )
                self._watchdog.start()
        self._changed.set()

    def remove(self, acq: StreamAcquirer, timeout: float = 2.0) -> None:
        """Stop stepping ``acq``; returns once a step of it that is running has ended (or after
        ``timeout``, if that step hangs)."""
        with self._lock:
            self._members.pop(id(acq), None)
            self._snapshot = tuple(self._members.values())
        deadline = time.monotonic() + timeout
        while self._stepping(acq) and time.monotonic() < deadline:
            time.sleep(0.001)

    def holds(self, acq: StreamAcquirer) -> bool:
        return id(acq) in self._members

    def _stepping(self, acq: StreamAcquirer) -> bool:
        w = self._worker
        return w is not None and w.current is acq and w.thread is not threading.current_thread()

    @property
    def alive(self) -> bool:
        w = self._worker
        return w is not None and w.thread is not None and w.thread.is_alive()

    # -- the threads ----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start a new stepping thread (caller holds the lock)."""
        w = _Worker()
        w.thread = threading.Thread(target=self._run, args=(w,), name="acquire", daemon=True)
        self._worker = w
        w.thread.start()

    def _run(self, w: _Worker) -> None:
        name_os_thread()
        while not w.retired.is_set():
            started = time.perf_counter()
            members = self._snapshot
            if not members:
                self._changed.clear()
                if not self._snapshot:
                    self._changed.wait(1.0)
                continue
            now = local_clock()  # the round's time: for the silence rules and reconnection
            for acq in members:
                if now < acq.sleep_until:
                    continue  # holding samples nobody waits for yet (StreamAcquirer.want)
                w.since = time.monotonic()
                w.current = acq
                try:
                    acq.step(now)
                finally:
                    w.current = None
                if w.retired.is_set():  # this step hung and the watchdog replaced us
                    acq._after_hang(self)
                    return
            # an Event's wait, not time.sleep: a sampling profiler sees a thread waiting (#16)
            w.retired.wait(max(0.0, self.period_s - (time.perf_counter() - started)))

    def _watch(self) -> None:
        name_os_thread()
        idle = threading.Event()  # never set: its wait is the watchdog's sleep
        while True:
            idle.wait(self.hang_s / 5)
            with self._lock:
                w = self._worker
                hung = None if w is None else w.current
                if w is None or hung is None or time.monotonic() - w.since <= self.hang_s:
                    continue
                w.retired.set()
                self.replaced += 1
                self._members.pop(id(hung), None)
                self._snapshot = tuple(self._members.values())
                self._start_worker()
            hung._on_hang(self.hang_s)


class StreamAcquirer:
    """Acquire one stream into a ring buffer, stepped by an :class:`AcquisitionLoop`.

    The clock offset (outlet clock → ours, from liblsl's time correction) is refreshed every
    :attr:`CLOCK_CHECK_S` seconds into ``health.clock_offset``.

    ``stream`` is the stream as its outlet describes it; ``channels`` (a :class:`ChannelPlan`)
    says how the data are delivered: :attr:`channel_labels` are the labels a consumer uses (a
    one-channel GSR/PPG/RESP/ECG stream is labelled by its type, the session may supply labels),
    ``channels.units`` the units of the values in :attr:`buffer` (GSR in µS).

    Parameters
    ----------
    stream : a stream description (as resolved, or the full one from :meth:`Inlet.describe`)
    buffer_s : seconds of data kept in the ring buffer (at the nominal rate)
    find_stream : used to find the stream again after it was lost
    policy : health thresholds
    on_state : called (from the acquisition loop's thread, or a helper thread of this stream)
        with (acquirer, new state) on every change
    poll_s : how often health is re-checked while no data come (silence rules), seconds
    channels : labels, units and conversion; by default :func:`plan_channels` without overrides
        (which raises ``ValueError`` for a GSR unit it does not know)
    dejitter : the timestamp smoothing of regular numeric streams; by default
        :class:`DejitterPolicy` with the health policy's ``gap_intervals``
    loop : the loop that pulls this stream; by default :meth:`AcquisitionLoop.shared`
    replan : the channel plan of the stream as it comes back with another channel count (a
        device reconfigured), from its full description; raises ``ValueError`` when it cannot be
        taken (e.g. the session's channel map has another length). By default
        :func:`plan_channels` without overrides. A new plan means a new buffer (samples of the
        old layout are not mixed with the new ones), counted in ``health.channel_changes``;
        consumers see it in :attr:`channel_labels`. A refused one leaves the stream ``refused``
        with the reason, and it is tried again every :attr:`REFUSED_RETRY_S`.
    on_data : called (from the acquisition loop's thread) after each chunk of a regular numeric
        stream was stored, with the time up to which the stream is now complete (the newest
        timestamp plus one nominal interval); it must return at once (the service uses it to
        wake its scheduler when a window may be complete)
    hold_s : the longest queued samples of a regular stream stay in liblsl while they cannot
        reach the time given to :meth:`want`; default half the stream's stale time, at most
        :data:`HOLD_MAX_S`; 0 never holds
    """

    CLOCK_CHECK_S = 5.0
    REFUSED_RETRY_S = 5.0

    def __init__(
        self,
        stream: StreamDescription,
        *,
        buffer_s: float = 30.0,
        find_stream: FindStream | None = None,
        policy: HealthPolicy | None = None,
        on_state: Callable[[StreamAcquirer, StreamState], None] | None = None,
        poll_s: float = 0.05,
        reconnect_every_s: float = 0.5,
        marker_capacity: int = 1024,
        channels: ChannelPlan | None = None,
        dejitter: DejitterPolicy | None = None,
        loop: AcquisitionLoop | None = None,
        replan: Callable[[StreamDescription], ChannelPlan] | None = None,
        on_data: Callable[[float], None] | None = None,
        hold_s: float | None = None,
    ) -> None:
        self.stream = stream
        self._replan = replan or plan_channels
        self.channels = plan_channels(stream) if channels is None else channels
        self.health = StreamHealth(stream.nominal_srate, policy or HealthPolicy())
        self.is_marker = stream.channel_format == "string"
        capacity = (
            marker_capacity if not stream.is_regular else int(buffer_s * stream.nominal_srate)
        )
        self.buffer: RingBuffer | None = None
        if not self.is_marker:
            self.buffer = RingBuffer(max(capacity, 16), stream.channel_count, np.float64)
        self._dejitter_policy = dejitter or DejitterPolicy(
            gap_intervals=self.health.policy.gap_intervals
        )
        self._dejitter = self._new_dejitter()
        self.markers: list[tuple[float, str]] = []  # (timestamp, text) for string streams
        self._markers_lock = threading.Lock()
        self._marker_capacity = marker_capacity
        self._find = find_stream
        self._on_state = on_state
        self._on_data = on_data
        self._poll_s = poll_s
        self._reconnect_every_s = reconnect_every_s
        self._loop = loop
        self._stopped = False
        self._inlet: Inlet | None = None
        self._helper: threading.Thread | None = None  # connecting or correcting the clock
        self._next_connect = -float("inf")
        self._next_tick = -float("inf")
        self._last_state = self.health.state
        self._last_clock_check = -float("inf")
        self.error: str | None = None
        self._hold_s = hold_s
        self._wanted = math.inf  # no wish: pull whatever is queued
        self._last_pull = -float("inf")
        # the hold worked out at the last pull (or wish) for the loop's rounds: queued samples
        # fewer than _hold_below are left in liblsl until _hold_until; planned for _hold_for
        self._hold_for = math.inf
        self._hold_below = 0
        self._hold_until = -float("inf")
        self._counts = True  # liblsl reports a count (old versions said only 0 or 1)
        self._count_misses = 0
        self.held = 0
        """Rounds in which queued samples were left in liblsl (:meth:`want`)."""
        self.sleep_until = -float("inf")
        """The loop leaves this stream alone until then (local clock): it holds samples that no
        wish needs before (:meth:`want`)."""

    # -- life cycle -----------------------------------------------------------------------------

    def start(self, inlet: Inlet | None = None) -> None:
        """Start acquiring; pass an already opened inlet to reuse it."""
        if self._loop is None:
            self._loop = AcquisitionLoop.shared()
        if inlet is not None:  # the loop takes it once it is ready (_ready, in a helper thread)
            self._next_connect = float("inf")
            self._help(lambda: self._use(inlet))
        self._loop.add(self)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped = True
        if self._loop is not None:
            self._loop.remove(self, timeout)
        if self._helper is not None:
            self._helper.join(timeout)
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            inlet.close()

    def _new_dejitter(self) -> Dejitter | None:
        if self.is_marker or not self.stream.is_regular:
            return None  # irregular timestamps are passed on as received
        return Dejitter(self.stream.nominal_srate, self._dejitter_policy)

    @property
    def hold_s(self) -> float:
        """The longest queued samples are left in liblsl while no consumer waits for them."""
        if self._hold_s is not None:
            return self._hold_s
        stale = self.health.policy.stale_after_s(self.stream.nominal_srate)
        return 0.0 if stale is None else min(HOLD_MAX_S, stale / 2)

    def want(self, until: float | None) -> None:
        """A consumer waits for this stream's data up to ``until`` (LSL s; ``None``: it reads
        whatever comes, the default): samples queued for a regular stream that cannot reach it
        may stay in liblsl for up to :attr:`hold_s` (any thread; takes effect at the next
        round)."""
        self._wanted = math.inf if until is None or not math.isfinite(until) else until
        self.sleep_until = -float("inf")  # look again at the next round, for the new wish

    def _plan_hold(self, inlet: Inlet) -> None:
        """Work out, after a pull or a new wish, how many queued samples the loop's rounds leave
        in liblsl, and until when (see :meth:`want`): those whose estimated reach — the newest
        stored timestamp plus the queued count and one interval at the nominal rate, as
        ``on_data`` will say — falls short of the wish by more than :data:`HOLD_AHEAD_S` or two
        intervals, fewer than half the inlet's chunk array, for ``hold_s`` from the last pull."""
        wanted = self._wanted
        self._hold_for = wanted
        self._hold_below = 0
        self.sleep_until = -float("inf")
        last = self.health.last_timestamp
        if wanted == math.inf or self._dejitter is None or last is None or not self._counts:
            return
        interval = 1.0 / self.stream.nominal_srate
        # last + (queued + 1) * interval < wanted - ahead  <=>  queued < x  <=>  queued < ceil(x)
        x = (wanted - max(HOLD_AHEAD_S, 2 * interval) - last) / interval - 1
        half = (inlet.max_chunk + 1) // 2
        self._hold_below = max(0, min(math.ceil(x), half))
        # at most half the chunk array arrives while the loop does not look
        self._hold_until = self._last_pull + min(self.hold_s, half * interval)
        if self._hold_below > 1:  # (a count below 1 holds nothing: one sample is queued)
            self.sleep_until = min(self._hold_until, wanted - WAKE_AHEAD_S)
            if self._wanted != wanted:  # want() ran meanwhile: look again at the next round
                self.sleep_until = -float("inf")

    def complete_to(self) -> float | None:
        """The time up to which this stream's stored samples are complete — the newest stored
        timestamp plus one interval at the nominal rate, as ``on_data`` says — or ``None``
        before the first sample (any thread; no lock: read from the health, which the
        acquisition thread updates right after it stores a chunk and before ``on_data``)."""
        last = self.health.last_timestamp
        if last is None or self.stream.nominal_srate <= 0:  # (irregular: its newest stamp)
            return last
        return last + 1.0 / self.stream.nominal_srate

    @property
    def channel_labels(self) -> tuple[str, ...]:
        """The labels of the buffer's columns as a consumer should use them; ``()`` if unknown."""
        return self.channels.labels

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.holds(self) and self._loop.alive

    # -- one step (the loop's thread) -----------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """Pull what the inlet holds, without waiting, and store it; (re)connect in a helper
        thread when there is no inlet; apply the silence rules at ``now`` (the LSL clock, read
        here if not given; a chunk's arrival is read when it is pulled: up to ``hold_s`` after it
        came for samples held, see :meth:`want`). Never raises: a
        failure is logged, kept in :attr:`error`, and ends this stream's acquisition (not the
        others')."""
        try:
            self._step(local_clock() if now is None else now)
        except Exception as e:  # never die silently: log, mark, keep the others running
            log.exception("acquisition of %s failed", self.stream.key)
            self.error = f"{type(e).__name__}: {e}"
            if self._loop is not None:
                self._loop.remove(self, 0.0)
            self._set_state(self.health.on_lost(local_clock(), f"acquisition failed: {self.error}"))

    def _step(self, now: float) -> None:
        inlet = self._inlet
        if inlet is None:
            helper = self._helper
            if (helper is None or not helper.is_alive()) and now >= self._next_connect:
                self._next_connect = now + self._reconnect_every_s
                self._help(self._connect)
            if now >= self._next_tick:
                self._next_tick = now + self._poll_s
                self._set_state(self.health.tick(now))
            return
        queued = inlet.queued()
        if queued:
            if self._hold_for != self._wanted:
                self._plan_hold(inlet)
            if queued < self._hold_below and now < self._hold_until:
                self.held += 1  # nobody waits for these yet: pulled later, together (want)
                return
        elif now < self._next_tick:
            # nothing queued: no pull (~0.5 µs instead of ~7 µs per empty poll, #16); a real pull
            # still runs at least every poll_s of silence (below), so a lost outlet is caught
            # even if liblsl did not report it as queued news
            if now - self._last_clock_check >= self.CLOCK_CHECK_S:
                self._check_clock(now)
            return
        self._last_pull = now
        try:
            data, ts = inlet.pull(timeout=0.0)
        except StreamLostError as e:
            inlet.close()
            self._inlet = None
            self._next_connect = -float("inf")
            self._set_state(self.health.on_lost(local_clock(), str(e)))
            return
        if len(ts) > 1 and queued == 1 and self._counts:
            # a liblsl that reports 0 or 1 instead of the count (before 1.16) would hold every
            # chunk completing a window: three such pulls and this stream never holds
            self._count_misses += 1
            if self._count_misses >= 3:
                self._counts = False
                log.info("stream %s: liblsl reports no queue count; not holding", self.stream.key)
        if len(ts):
            now = local_clock()  # the chunk's arrival (the dejitter compares it with its stamps)
            self._accept(data, ts, now)
            self._next_tick = now + self._poll_s
        elif now >= self._next_tick:
            self._next_tick = now + self._poll_s
            self._set_state(self.health.tick(now))
        self._plan_hold(inlet)
        self._check_clock(now)

    def _check_clock(self, now: float) -> None:
        if now - self._last_clock_check >= self.CLOCK_CHECK_S:
            helper = self._helper
            if helper is None or not helper.is_alive():
                self._last_clock_check = now
                self._help(self._correct_clock)

    def _help(self, target: Callable[[], None]) -> None:
        """Run ``target`` (which may block inside liblsl) in a helper thread of this stream."""
        self._helper = threading.Thread(
            target=self._helping,
            args=(target,),
            name=f"acquire-help {self.stream.key}",
            daemon=True,
        )
        self._helper.start()

    def _helping(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            log.exception("acquisition helper of %s failed", self.stream.key)

    def _correct_clock(self) -> None:
        inlet = self._inlet
        if inlet is not None:
            offset = inlet.time_correction(timeout=0.5)
            if offset is not None:
                self.health.clock_offset = offset

    def _connect(self) -> None:
        """(Re)open an inlet on the stream with our key (a helper thread)."""
        stream = self.stream if self._find is None else self._find(self.stream.key)
        if stream is None:
            return
        try:
            inlet = Inlet(stream)
            inlet.open(timeout=2.0)
        except LslError as e:
            log.info("could not (re)open %s: %s", self.stream.key, e)
            return
        if not self._ready(inlet):
            return
        if stream.channel_count != self.stream.channel_count and not self._take_new_channels(
            inlet, stream
        ):
            inlet.close()
            self._next_connect = local_clock() + self.REFUSED_RETRY_S
            return
        if self.health.state in (StreamState.LOST, StreamState.STALE, StreamState.REFUSED):
            self.health.on_reconnect()
        if stream.nominal_srate != self.stream.nominal_srate:
            self._take_new_rate(stream.nominal_srate, stream.uid)
        self._hold_for = math.nan  # a new inlet: plan the hold anew
        self._inlet = inlet  # last: the loop pulls from it from now on

    def _take_new_channels(self, inlet: Inlet, stream: StreamDescription) -> bool:
        """The outlet came back with ``stream.channel_count`` channels (a device reconfigured):
        plan them from its full description and start a buffer of as many seconds for them
        (the rate is taken afterwards, as for any reconnection); ``False`` (refused, with the
        reason in health) when they cannot be planned."""
        was = self.stream.channel_count
        try:
            full = inlet.describe(timeout=2.0)
            plan = self._replan(full)
        except (LslError, ValueError) as e:
            reason = f"came back with {stream.channel_count} channel(s) (was {was}): {e}"
            if reason != self.health.reason:
                log.warning("stream %s refused: %s", self.stream.key, reason)
            self.health.refuse(local_clock(), reason)
            self._set_state(self.health.state)
            return False
        log.info("stream %s: now %d channel(s) (was %d)", self.stream.key, full.channel_count, was)
        seconds = (
            self.buffer.capacity / self.stream.nominal_srate
            if self.buffer is not None and self.stream.nominal_srate > 0
            else None
        )
        self.channels = plan  # first: a consumer that sees the new labels rebuilds its pipeline
        self.stream = replace(
            self.stream,
            channel_count=full.channel_count,
            uid=full.uid,
            channel_labels=full.channel_labels,
            channel_units=full.channel_units,
        )
        if self.buffer is not None:
            capacity = max(16, round(seconds * self.stream.nominal_srate)) if seconds else 16
            self.buffer = RingBuffer(capacity, full.channel_count, np.float64)
        self._dejitter = self._new_dejitter()
        self.health.channel_changes += 1
        return True

    def _use(self, inlet: Inlet) -> None:
        """Take an inlet opened elsewhere (a helper thread); reconnect if it is not ready."""
        if self._ready(inlet):
            self._inlet = inlet
        self._next_connect = local_clock() + self._reconnect_every_s

    def _ready(self, inlet: Inlet) -> bool:
        """Whether a new inlet can be pulled without blocking: liblsl's clock synchronisation
        waits for its first time correction inside the first pull, so it is obtained here, in
        the helper thread. A failed one closes the inlet (the stream is tried again later)."""
        offset = None if self._stopped else inlet.time_correction(timeout=2.0)
        if offset is None:
            if not self._stopped:
                log.info("no time correction from %s yet; trying again", self.stream.key)
            inlet.close()
            return False
        self.health.clock_offset = offset
        self._last_clock_check = local_clock()
        return True

    def _on_hang(self, hang_s: float) -> None:
        """The watchdog found this stream's step blocked for over ``hang_s`` (its thread was
        replaced): the stream is lost until the step returns and it reconnects."""
        log.warning("stream %s: a pull blocked for over %g s", self.stream.key, hang_s)
        self._set_state(
            self.health.on_lost(
                local_clock(), f"a pull blocked inside liblsl for over {hang_s:g} s"
            )
        )

    def _after_hang(self, loop: AcquisitionLoop) -> None:
        """The hung step returned (in the retired thread): drop the inlet, reconnect."""
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            inlet.close()
        if not self._stopped and self.error is None:
            self._next_connect = -float("inf")
            loop.add(self)

    def _take_new_rate(self, srate: float, uid: str) -> None:
        """The outlet came back at another nominal rate (a device reconfigured): describe the
        stream at that rate, so that consumers re-plan, and start a buffer holding as many
        seconds at the new rate (samples at the old rate are not mixed with the new ones)."""
        log.info(
            "stream %s: now at %g Hz (was %g Hz)", self.stream.key, srate, self.stream.nominal_srate
        )
        old = self.stream.nominal_srate
        self.stream = replace(self.stream, nominal_srate=srate, uid=uid)
        self.health.nominal_srate = srate
        self._dejitter = self._new_dejitter()
        if self.buffer is not None and old > 0 and srate > 0:
            capacity = max(16, round(self.buffer.capacity * srate / old))
            self.buffer = RingBuffer(capacity, self.stream.channel_count, np.float64)

    def _accept(self, data: NDArray[Any], ts: NDArray[np.float64], now: float) -> None:
        if self.is_marker:
            with self._markers_lock:
                self.markers.extend(zip(ts.tolist(), map(str, data), strict=True))
                del self.markers[: max(0, len(self.markers) - self._marker_capacity)]
            self._set_state(self.health.on_samples(len(ts), float(ts[0]), float(ts[-1]), now))
            return
        assert self.buffer is not None
        if not math.isfinite(ts.sum()):  # a NaN or infinite time is never after the previous one
            stamped = np.isfinite(ts)
            self.health.on_backwards(int((~stamped).sum()))
            data, ts = data[stamped], ts[stamped]
            if len(ts) == 0:
                self.health.on_arrival(now)
                return
        if self._dejitter is not None:
            dj = self._dejitter.process(ts, arrival=now)
            ts = dj.timestamps
            if dj.gaps:
                self.health.on_gaps(dj.gaps, dj.missing)
            if dj.steps_back or dj.steps_ahead:
                self.health.on_clock_steps(dj.steps_back + dj.steps_ahead)
        # drop timestamps that do not increase (against the newest stored and within the chunk)
        last = self.health.last_timestamp
        increasing = (last is None or ts[0] > last) and (len(ts) == 1 or (ts[1:] > ts[:-1]).all())
        if not increasing:
            prev = np.concatenate(([-np.inf if last is None else last], ts[:-1]))
            keep = ts > np.maximum.accumulate(prev)
            self.health.on_backwards(int((~keep).sum()))
            data, ts = data[keep], ts[keep]
            if len(ts) == 0:
                self.health.on_arrival(now)
                return
        values = data  # stored as float64 by the buffer's own copy (no conversion before it)
        if self.channels.conversion is not None:
            values = self.channels.conversion.apply(np.asarray(data, dtype=np.float64))
        if not math.isfinite(values.sum()):  # one sum tells whether any value is NaN or ±Inf
            values = np.asarray(values, dtype=np.float64)  # (a float32 sum may overflow: check)
            finite = np.isfinite(values)
            if not finite.all():
                values = np.where(finite, values, np.nan)
                self.health.on_nonfinite(int((~finite.all(axis=1)).sum()))
        # timestamps: strictly increasing and after the newest stored one (made so above)
        self.buffer.write(values, ts, checked=True)
        self._set_state(self.health.on_samples(len(ts), float(ts[0]), float(ts[-1]), now))
        if self._on_data is not None:
            self._on_data(float(ts[-1]) + 1.0 / self.stream.nominal_srate)

    def _set_state(self, state: StreamState) -> None:
        if state != self._last_state:
            self._last_state = state
            log.info("stream %s: %s %s", self.stream.key, state, self.health.reason)
            if self._on_state is not None:
                self._on_state(self, state)

    # -- reading (any thread) -------------------------------------------------------------------

    def markers_between(self, t_start: float, t_end: float) -> list[tuple[float, str]]:
        with self._markers_lock:
            return [(t, m) for t, m in self.markers if t_start <= t < t_end]
