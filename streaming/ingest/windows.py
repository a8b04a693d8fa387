"""Aligned sliding windows over several streams on the common LSL clock.

A window is ``[t_end - window_s, t_end)``. Window ends lie on a grid on the LSL clock,
``(k + phase) × hop_s`` for integer k, where ``phase`` (in [0, 1), default 0: multiples of
``hop_s``) is the consumer's: the service gives every session its own (derived from its id, the
same for all its models), so that sessions' windows fall due spread over the hop instead of all at
the same instant, and advance only up to the
**watermark**: the newest time covered by *every* stream the consumer needs (a sample stamped t
covers ``[t, t + 1/srate)``). A stream that is late or stale therefore holds windows back instead
of letting them mix fresh data from one stream with missing data from another; when it comes back,
windows over the span it missed are skipped (counted), never filled with invented data.

Each input is delivered at the rate the consumer asks for:

- at the stream's own nominal rate: the raw samples, untouched (exactly ``round(window_s × srate)``
  consecutive samples starting at the first one at or after ``t_start``);
- at another rate: **linear interpolation on the timestamps** (robust to jitter and irregular
  chunking, exact for the sample times it hits). It does not low-pass: a consumer that downsamples
  must filter first (the preprocessing layer's stateful filters do).

Non-finite values (stored as NaN by the acquisition layer) are linearly interpolated over runs of
at most ``max_fill_s``; a longer run, or a run touching the window's edge without a neighbour,
makes the window unavailable (counted) — a model never receives NaN.

**Tails** (``Windower(tails=True)``, the service's incremental consumers, #16): a window that
directly follows the previous one this windower handed out, and whose inputs are all delivered at
their nominal rate with a whole number ``k`` of samples per hop, is cut as its last ``k`` samples
only (:attr:`Window.tail`), not as the whole window again: the samples are read, checked and
filled over the tail plus a margin of ``max_fill_s`` + 2 samples before it (so that a short NaN run
across the hop's edge is interpolated from the same neighbours as in the whole window), and the
last ``k`` are exactly the last ``k`` of the whole window. Whatever the tail cannot settle (a gap,
a NaN run it cannot fill, a margin not covered) falls back to cutting the whole window, so a tail
is handed out where the whole window would have been, with one difference: a short NaN run that
the window's start cuts through (filled when it was new) makes the whole window unavailable (no
neighbour on that side) but not its tail. A consumer that re-reads the whole
window each hop (the incremental preprocessing reads only the new samples) copied and checked
``window_s / hop_s`` times the data it used: 80× for a 20 s window at 0.25 s hops.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.ingest.ring_buffer import RingBuffer

__all__ = [
    "InputSpec",
    "Unavailable",
    "Window",
    "WindowSpec",
    "Windower",
    "due_window_ends",
    "extract",
    "fill_short_nan_runs",
    "watermark",
]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One modality a consumer needs: LSL type, the rate it wants, optional channel subset."""

    type: str
    srate: float
    channels: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class WindowSpec:
    window_s: float
    hop_s: float
    inputs: tuple[InputSpec, ...]
    max_fill_s: float = 0.1

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.hop_s > 0):
            raise ValueError(f"window_s and hop_s must be > 0, got {self.window_s}, {self.hop_s}")
        if not self.inputs:
            raise ValueError("a window needs at least one input")
        for i in self.inputs:
            n = self.window_s * i.srate
            if i.srate <= 0 or abs(n - round(n)) > 1e-6:
                raise ValueError(
                    f"input {i.type}: window_s × srate = {n:g} must be a whole number of samples"
                )

    def n_samples(self, spec: InputSpec) -> int:
        return round(self.window_s * spec.srate)


@dataclass(frozen=True, slots=True)
class Window:
    """One aligned window: per input type an array of shape (n_samples, n_channels), float64.

    ``tail``: ``data`` holds only the samples newer than the previous window (one hop of each
    input), not the whole window (see the module docstring)."""

    t_start: float
    t_end: float
    data: dict[str, NDArray[np.float64]]
    tail: bool = False


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why a window could not be cut from one stream."""

    reason: str


# -- pure index arithmetic -------------------------------------------------------------------------


def watermark(newest: Sequence[float], srates: Sequence[float]) -> float:
    """Newest time covered by every stream: ``min(newest_i + 1/srate_i)``."""
    return min(t + 1.0 / r for t, r in zip(newest, srates, strict=True))


def due_window_ends(
    last_end: float | None,
    oldest_common: float,
    mark: float,
    window_s: float,
    hop_s: float,
    phase: float = 0.0,
) -> list[float]:
    """Window ends on the hop grid that are due: after ``last_end``, at most ``mark``, and whose
    window starts at or after ``oldest_common`` (data that every stream still holds).

    Ends are ``(k + phase) × hop_s`` for integer k (computed as such, so they do not drift)."""
    k_first = math.ceil((oldest_common + window_s) / hop_s - phase - 1e-9)
    if last_end is not None:
        k_first = max(k_first, round(last_end / hop_s - phase) + 1)
    k_last = math.floor(mark / hop_s - phase + 1e-9)
    return [(k + phase) * hop_s for k in range(k_first, k_last + 1)]


def fill_short_nan_runs(x: NDArray[np.float64], max_run: int) -> NDArray[np.float64] | None:
    """Linearly interpolate NaN runs of at most ``max_run`` samples per channel (in place on a
    copy). Returns ``None`` if a longer run exists or a run has no neighbour on one side.

    x : ndarray, shape (n, n_channels)
    """
    bad = np.isnan(x)
    if not bad.any():
        return x
    out = x.copy()
    n = len(x)
    t = np.arange(n)
    for c in np.flatnonzero(bad.any(axis=0)):
        col_bad = bad[:, c]
        edges = np.diff(np.concatenate(([0], col_bad.astype(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if (stops - starts).max() > max_run or starts[0] == 0 or stops[-1] == n:
            return None
        good = ~col_bad
        out[col_bad, c] = np.interp(t[col_bad], t[good], x[good, c])
    return out


def extract(
    buffer: RingBuffer,
    t_start: float,
    t_end: float,
    nominal_srate: float,
    target_srate: float,
    *,
    channels: tuple[int, ...] | None = None,
    max_fill_s: float = 0.1,
    gap_intervals: float = 2.5,
) -> NDArray[np.float64] | Unavailable:
    """Cut ``[t_start, t_end)`` from ``buffer`` at ``target_srate``; see the module docstring.

    Returns an array of shape (round((t_end - t_start) × target_srate), n_channels) or
    :class:`Unavailable` with the reason.
    """
    n_out = round((t_end - t_start) * target_srate)
    dt = 1.0 / nominal_srate
    if math.isclose(target_srate, nominal_srate, rel_tol=1e-9):
        data, ts = buffer.read_from(t_start - TIME_TOL_S, n_out)
        if len(ts) < n_out or ts[0] >= t_start + dt * 1.5 or ts[-1] >= t_end + dt * 0.5:
            return Unavailable("not enough samples in the window (gap or not yet received)")
    else:
        data, ts = buffer.read_range(t_start - 2 * dt, t_end + 2 * dt)
        if len(ts) < 2 or ts[0] > t_start + dt * 0.5 or ts[-1] < t_end - dt * 1.5:
            return Unavailable("the stream does not cover the window")
    if len(ts) > 1 and np.diff(ts).max() > gap_intervals * dt:
        return Unavailable("gap in the stream inside the window")
    if channels is not None:
        data = data[:, list(channels)]
    filled = fill_short_nan_runs(data, max(0, int(max_fill_s * nominal_srate)))
    if filled is None:
        return Unavailable("non-finite run longer than max_fill_s")
    if len(ts) == n_out and math.isclose(target_srate, nominal_srate, rel_tol=1e-9):
        return filled
    t_out = t_start + np.arange(n_out) / target_srate
    out = np.empty((n_out, filled.shape[1]))
    for c in range(filled.shape[1]):
        out[:, c] = np.interp(t_out, ts, filled[:, c])
    return out


TIME_TOL_S = 1e-6
"""A sample stamped within this of a window's start is its first sample. Timestamps computed as
``t0 + k / srate`` are not exact in binary (at 50 Hz, sample *k* may come out 1e-12 s before the
grid time it nominally equals); without the tolerance such a window would start one sample late."""


# -- the windower ----------------------------------------------------------------------------------


class _Rated(Protocol):
    @property
    def nominal_srate(self) -> float: ...


class BufferedStream(Protocol):
    """What the windower needs of a stream (a
    :class:`~affectstream.streaming.ingest.acquisition.StreamAcquirer`)."""

    @property
    def buffer(self) -> RingBuffer | None: ...

    @property
    def stream(self) -> _Rated: ...


@dataclass
class Windower:
    """Cut due windows for one consumer from a session's ring buffers.

    ``lookup`` maps an input type to its :class:`BufferedStream` (e.g.
    :meth:`~affectstream.streaming.ingest.session.IngestSession.by_type`), or ``None`` while it is
    not there yet.
    """

    spec: WindowSpec
    lookup: Callable[[str], BufferedStream | None]
    last_end: float | None = None
    emitted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    tails: bool = False
    """Cut a window that follows the previous one handed out as its tail (module docstring)."""
    tails_cut: int = 0
    """Windows handed out as tails."""
    phase: float = 0.0
    """Where this consumer's window ends fall within the hop: ``(k + phase) × hop_s``, in [0, 1)."""
    _emitted_end: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.phase < 1.0:
            raise ValueError(f"phase must be within [0, 1), got {self.phase}")

    def restart(self) -> None:
        """Cut the next window whole, not as its last hop (its consumer restarts its state)."""
        self._emitted_end = None

    def poll(self, max_windows: int | None = None) -> list[Window]:
        """All windows due now (oldest first); windows that cannot be cut are counted in
        :attr:`skipped` by reason and not returned.

        ``max_windows`` bounds the catch-up of a consumer that fell behind: only the newest
        ``max_windows`` due windows are cut, the older ones are counted as skipped (``behind``),
        so a slow round cannot make the next one slower. On the first poll the windows over the
        history already buffered are passed over without counting (the consumer starts now).
        """
        buffers: list[RingBuffer] = []
        srates: list[float] = []
        spans: list[tuple[float, float]] = []
        for inp in self.spec.inputs:
            src = self.lookup(inp.type)
            span = None if src is None or src.buffer is None else src.buffer.time_span()
            if src is None or src.buffer is None or span is None:
                return []
            buffers.append(src.buffer)
            srates.append(float(src.stream.nominal_srate))
            spans.append(span)
        mark = watermark([sp[1] for sp in spans], srates)
        oldest = max(sp[0] for sp in spans)
        out = []
        ends = due_window_ends(
            self.last_end, oldest, mark, self.spec.window_s, self.spec.hop_s, self.phase
        )
        if max_windows is not None and len(ends) > max_windows:
            if self.last_end is not None:
                self.skipped["behind: skipped to the newest windows"] += len(ends) - max_windows
            ends = ends[-max_windows:]
        for t_end in ends:
            self.last_end = t_end
            t_start = t_end - self.spec.window_s
            follows = self._emitted_end is not None and math.isclose(
                t_end - self.spec.hop_s, self._emitted_end, abs_tol=1e-9
            )
            tail = self._tail(t_end, buffers, srates) if self.tails and follows else None
            if tail is not None:
                self.tails_cut += 1
                self.emitted += 1
                self._emitted_end = t_end
                out.append(Window(t_start, t_end, tail, tail=True))
                continue
            data: dict[str, NDArray[np.float64]] = {}
            for inp, buf, nominal in zip(self.spec.inputs, buffers, srates, strict=True):
                cut = self._cut(inp, buf, nominal, t_start, t_end)
                if isinstance(cut, Unavailable):
                    self.skipped[f"{inp.type}: {cut.reason}"] += 1
                    break
                data[inp.type] = cut
            else:
                self.emitted += 1
                self._emitted_end = t_end
                out.append(Window(t_start, t_end, data))
        return out

    def _tail(
        self, t_end: float, buffers: Sequence[RingBuffer], srates: Sequence[float]
    ) -> dict[str, NDArray[np.float64]] | None:
        """The last hop of each input of the window ending at ``t_end``, or ``None`` where only
        the whole window can tell (see the module docstring)."""
        data: dict[str, NDArray[np.float64]] = {}
        for inp, buf, nominal in zip(self.spec.inputs, buffers, srates, strict=True):
            k = self.spec.hop_s * inp.srate
            if not math.isclose(inp.srate, nominal, rel_tol=1e-9) or abs(k - round(k)) > 1e-9:
                return None
            k = round(k)
            n = min(k + int(self.spec.max_fill_s * nominal) + 2, self.spec.n_samples(inp))
            cut = self._cut(inp, buf, nominal, t_end - n / inp.srate, t_end)
            if isinstance(cut, Unavailable):
                return None
            data[inp.type] = cut[n - k :]
        return data

    def _cut(
        self, inp: InputSpec, buf: RingBuffer, nominal: float, t_start: float, t_end: float
    ) -> NDArray[np.float64] | Unavailable:
        """:func:`extract` of ``[t_start, t_end)`` for one input, with this spec's fill limit."""
        return extract(
            buf,
            t_start,
            t_end,
            nominal,
            inp.srate,
            channels=inp.channels,
            max_fill_s=self.spec.max_fill_s,
        )
