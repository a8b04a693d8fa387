"""One acquisition thread per stream: pull, check, store; never model code.

Each :class:`StreamAcquirer` owns an :class:`~affectstream.streaming.lsl.inlet.Inlet`, a
:class:`~affectstream.streaming.ingest.ring_buffer.RingBuffer` and a
:class:`~affectstream.streaming.ingest.health.StreamHealth`. Its thread pulls chunks (waiting at
most ``poll_s`` for the first sample), applies the bad-input rules below, writes to the ring buffer
and updates health. One thread per inlet, because a pull on a lost stream may block inside liblsl
(docs/lsl.md#one-thread-per-inlet); a dead stream stops only its own thread's data.

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
- **Lost outlet**: health goes ``lost``; the thread then looks for a stream with the same
  ``source_id`` every ``reconnect_every_s`` and, when the outlet is back, opens a new inlet,
  counts a reconnect, and data (and health ``recovered``) flow again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

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

__all__ = ["StreamAcquirer"]

log = logging.getLogger(__name__)

FindStream = Callable[[str], StreamDescription | None]
"""Look a stream up by :attr:`StreamDescription.key` (for reconnection); ``None`` if not visible."""


class StreamAcquirer:
    """Acquire one stream into a ring buffer in a background thread.

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
    on_state : called (from the acquisition thread) with (acquirer, new state) on every change
    channels : labels, units and conversion; by default :func:`plan_channels` without overrides
        (which raises ``ValueError`` for a GSR unit it does not know)
    dejitter : the timestamp smoothing of regular numeric streams; by default
        :class:`DejitterPolicy` with the health policy's ``gap_intervals``
    """

    CLOCK_CHECK_S = 5.0

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
    ) -> None:
        self.stream = stream
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
        self._poll_s = poll_s
        self._reconnect_every_s = reconnect_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inlet: Inlet | None = None
        self._last_state = self.health.state
        self._last_clock_check = -float("inf")
        self.error: str | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self, inlet: Inlet | None = None) -> None:
        """Start the thread; pass an already opened inlet to reuse it."""
        self._inlet = inlet
        self._thread = threading.Thread(
            target=self._run, name=f"acquire {self.stream.key}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._inlet is not None:
            self._inlet.close()

    def _new_dejitter(self) -> Dejitter | None:
        if self.is_marker or not self.stream.is_regular:
            return None  # irregular timestamps are passed on as received
        return Dejitter(self.stream.nominal_srate, self._dejitter_policy)

    @property
    def channel_labels(self) -> tuple[str, ...]:
        """The labels of the buffer's columns as a consumer should use them; ``()`` if unknown."""
        return self.channels.labels

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._inlet is None and not self._connect():
                    self._stop.wait(self._reconnect_every_s)
                    continue
                assert self._inlet is not None
                try:
                    data, ts = self._inlet.pull(timeout=self._poll_s)
                except StreamLostError as e:
                    self._inlet.close()
                    self._inlet = None
                    self._set_state(self.health.on_lost(local_clock(), str(e)))
                    continue
                now = local_clock()
                if len(ts):
                    self._accept(data, ts, now)
                if now - self._last_clock_check >= self.CLOCK_CHECK_S:
                    self._last_clock_check = now
                    offset = self._inlet.time_correction(timeout=0.5)
                    if offset is not None:
                        self.health.clock_offset = offset
                self._set_state(self.health.tick(now))
        except Exception as e:  # never die silently: log, mark, keep the others running
            log.exception("acquisition of %s failed", self.stream.key)
            self.error = f"{type(e).__name__}: {e}"
            self._set_state(self.health.on_lost(local_clock(), f"acquisition failed: {self.error}"))

    def _connect(self) -> bool:
        """(Re)open an inlet on the stream with our key; ``True`` on success."""
        stream = self.stream if self._find is None else self._find(self.stream.key)
        if stream is None:
            self._set_state(self.health.tick(local_clock()))
            return False
        try:
            inlet = Inlet(stream)
            inlet.open(timeout=2.0)
        except LslError as e:
            log.info("could not (re)open %s: %s", self.stream.key, e)
            return False
        if self.health.state in (StreamState.LOST, StreamState.STALE):
            self.health.on_reconnect()
        if stream.nominal_srate != self.stream.nominal_srate:
            self._take_new_rate(stream.nominal_srate, stream.uid)
        self._inlet = inlet
        self._last_clock_check = -float("inf")
        return True

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
        stamped = np.isfinite(ts)
        if not stamped.all():  # a NaN or infinite time is never after the previous one
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
        prev = np.concatenate(([-np.inf if last is None else last], ts[:-1]))
        keep = ts > np.maximum.accumulate(prev)
        if not keep.all():
            self.health.on_backwards(int((~keep).sum()))
            data, ts = data[keep], ts[keep]
            if len(ts) == 0:
                self.health.on_arrival(now)
                return
        values = np.asarray(data, dtype=np.float64)
        if self.channels.conversion is not None:
            values = self.channels.conversion.apply(values)
        finite = np.isfinite(values)
        if not finite.all():
            values = np.where(finite, values, np.nan)
            self.health.on_nonfinite(int((~finite.all(axis=1)).sum()))
        self.buffer.write(values, ts)
        self._set_state(self.health.on_samples(len(ts), float(ts[0]), float(ts[-1]), now))

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
