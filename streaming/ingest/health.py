"""Stream health: a small state machine plus counters, one per stream.

States (docs/architecture.md#stream-health):

``connecting``  resolved, no sample yet
``ok``          samples arrive
``stale``       no sample for ``stale_after_s`` (a few expected sample intervals, bounded below so
                that normal chunking does not flap; far shorter than liblsl's recovery timeout)
``lost``        the outlet is gone (liblsl said so) or the stream was stale for ``lost_after_s``
``recovered``   samples arrive again after ``stale``/``lost``; becomes ``ok`` after
                ``recovered_hold_s`` of uninterrupted data, so subscribers see the event
``refused``     the stream does not match what the session expects (channel count, format), or
                cannot be served as it is (the session's labels name another channel count, a
                skin-conductance unit that is not known); no data is taken from it

All times are seconds on the LSL clock of this machine (``now`` is passed in, which keeps the logic
pure and testable). The object is updated from one acquisition thread and read from others; the
counters are plain ints/floats whose individual reads are atomic in CPython, and :meth:`snapshot`
returns a consistent copy under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

__all__ = ["HealthPolicy", "StreamHealth", "StreamState"]


class StreamState(StrEnum):
    CONNECTING = "connecting"
    OK = "ok"
    STALE = "stale"
    LOST = "lost"
    RECOVERED = "recovered"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When a silent stream becomes ``stale`` and ``lost``.

    stale after ``max(stale_min_s, stale_intervals / nominal_srate)`` without a sample; irregular
    streams (markers) never go stale by silence.
    """

    stale_intervals: float = 8.0
    stale_min_s: float = 0.25
    lost_after_s: float = 10.0
    recovered_hold_s: float = 2.0
    gap_intervals: float = 2.5
    """A timestamp more than this many nominal intervals (or more than the stream's own jitter
    allows) ahead of the fitted timeline counts as a gap (:mod:`.dejitter`)."""

    def stale_after_s(self, nominal_srate: float) -> float | None:
        if nominal_srate <= 0:
            return None
        return max(self.stale_min_s, self.stale_intervals / nominal_srate)


@dataclass
class StreamHealth:
    """Health and counters of one stream (see the module docstring)."""

    nominal_srate: float
    policy: HealthPolicy = field(default_factory=HealthPolicy)
    state: StreamState = StreamState.CONNECTING
    reason: str = ""
    samples: int = 0
    chunks: int = 0
    gaps: int = 0
    """Holes in time: forward jumps of the timestamps beyond the dejitter's tolerance."""
    missing: int = 0
    """Samples missing over those gaps (the jump in fitted sample intervals)."""
    clock_steps: int = 0
    """Clock steps (backwards, or forwards beyond the arrival time) the timeline re-anchored on."""
    nonfinite: int = 0
    """Samples holding at least one NaN/Inf value."""
    backwards: int = 0
    """Samples dropped because their timestamp was not after the previous one."""
    reconnects: int = 0
    channel_changes: int = 0
    """Times the stream came back with another channel count and was taken with a new channel
    plan and buffer (refused instead when the new channels cannot be planned)."""
    clock_offset: float | None = None
    measured_srate: float | None = None
    last_timestamp: float | None = None
    last_arrival: float | None = None
    _since: float | None = None  # when the current state was entered
    _rate_anchor: tuple[float, int] | None = None  # (timestamp, samples) to measure the rate
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- events from the acquisition thread ----------------------------------------------------

    def on_samples(self, n: int, first_ts: float, last_ts: float, now: float) -> StreamState:
        """``n`` good samples arrived (already stored); returns the new state."""
        with self._lock:
            self.samples += n
            self.chunks += 1
            self.last_timestamp = last_ts
            self.last_arrival = now
            self._update_rate(last_ts)
            if self.state in (StreamState.CONNECTING,):
                self._enter(StreamState.OK, now)
            elif self.state in (StreamState.STALE, StreamState.LOST, StreamState.REFUSED):
                self._enter(StreamState.RECOVERED, now)  # refused: came back as it can be taken
            else:
                self._settle(now)
            return self.state

    def _update_rate(self, last_ts: float) -> None:
        if self._rate_anchor is None:
            self._rate_anchor = (last_ts, self.samples)
            return
        t0, n0 = self._rate_anchor
        if last_ts - t0 >= 2.0:  # measure over ≥ 2 s, then slide the anchor
            self.measured_srate = (self.samples - n0) / (last_ts - t0)
            self._rate_anchor = (last_ts, self.samples)

    def on_arrival(self, now: float) -> None:
        """Samples arrived but none was stored (all stamped before the newest stored one, after
        a clock step backwards): the stream is not silent, so it does not go ``stale``."""
        with self._lock:
            self.last_arrival = now

    def on_gaps(self, gaps: int, missing: int) -> None:
        """``gaps`` holes in time were found, ``missing`` samples in all (:mod:`.dejitter`)."""
        with self._lock:
            self.gaps += gaps
            self.missing += missing

    def on_clock_steps(self, n: int) -> None:
        with self._lock:
            self.clock_steps += n

    def on_nonfinite(self, n_samples: int) -> None:
        with self._lock:
            self.nonfinite += n_samples

    def on_backwards(self, n_samples: int) -> None:
        with self._lock:
            self.backwards += n_samples

    def on_lost(self, now: float, reason: str) -> StreamState:
        with self._lock:
            if self.state != StreamState.LOST:
                self._enter(StreamState.LOST, now, reason)
                self._rate_anchor = None
            return self.state

    def on_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1

    def refuse(self, now: float, reason: str) -> None:
        with self._lock:
            self._enter(StreamState.REFUSED, now, reason)

    def tick(self, now: float) -> StreamState:
        """Apply the silence rules at time ``now``; returns the (possibly new) state."""
        with self._lock:
            stale_after = self.policy.stale_after_s(self.nominal_srate)
            if stale_after is None or self.last_arrival is None:
                return self.state
            silent = now - self.last_arrival
            if self.state in (StreamState.OK, StreamState.RECOVERED) and silent > stale_after:
                self._enter(StreamState.STALE, now, f"no sample for {silent:.2f} s")
            elif self.state == StreamState.STALE and silent > self.policy.lost_after_s:
                self._enter(StreamState.LOST, now, f"no sample for {silent:.1f} s")
                self._rate_anchor = None
            else:
                self._settle(now)
            return self.state

    def _settle(self, now: float) -> None:
        """``recovered`` becomes ``ok`` after ``recovered_hold_s`` of steady data."""
        if (
            self.state == StreamState.RECOVERED
            and self._since is not None
            and now - self._since >= self.policy.recovered_hold_s
        ):
            self._enter(StreamState.OK, now)

    def _enter(self, state: StreamState, now: float, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self._since = now

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of state and counters (JSON-serialisable)."""
        with self._lock:
            d = {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if not f.name.startswith("_") and f.name != "policy"
            }
        d["state"] = str(d["state"])
        return d
