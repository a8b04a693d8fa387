"""A preallocated ring buffer of samples and their LSL timestamps.

One buffer per stream. The acquisition thread writes chunks; the scheduler reads time ranges.
Writes copy each chunk once into place at a modulo write index (never the whole buffer, unlike
``np.roll``-based buffers); reads copy out only the requested range. A monotonic sample counter
tells readers how many samples were ever written, so they can detect what they missed.

Timestamps must be strictly increasing across writes (the inlet enforces it and counts the
offenders); :meth:`RingBuffer.write` checks and refuses otherwise, because every read relies on a
binary search over time.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["RingBuffer"]


class RingBuffer:
    """Fixed-capacity buffer of ``(sample, timestamp)`` pairs, oldest overwritten first.

    Parameters
    ----------
    capacity : number of samples kept
    n_channels : values per sample
    dtype : dtype of the stored values (timestamps are always float64)
    """

    def __init__(self, capacity: int, n_channels: int, dtype: DTypeLike = np.float64) -> None:
        if capacity < 1 or n_channels < 1:
            raise ValueError(f"capacity and n_channels must be ≥ 1, got {capacity}, {n_channels}")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._data: NDArray[Any] = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        self._count = 0  # samples ever written; write index = _count % capacity
        self._lock = threading.Lock()

    # -- writing ----------------------------------------------------------------------------

    def write(
        self, data: NDArray[Any], timestamps: NDArray[np.float64], *, checked: bool = False
    ) -> None:
        """Append a chunk.

        data : ndarray, shape (n, n_channels)
        timestamps : ndarray, shape (n,), strictly increasing and after the newest stored one
        checked : the caller has made sure the timestamps are so (the acquirer has: it drops
            and counts what does not increase), so they are not checked again
        """
        if not checked:
            data = np.asarray(data)
            timestamps = np.asarray(timestamps, dtype=np.float64)
        ts = timestamps
        n = len(ts)
        if data.shape != (n, self.n_channels):
            raise ValueError(f"chunk has shape {data.shape}, expected ({n}, {self.n_channels})")
        if not checked and n > 1 and not (ts[1:] > ts[:-1]).all():
            raise ValueError("timestamps within a chunk must be strictly increasing")
        if n == 0:
            return
        with self._lock:
            if not checked and self._count and ts[0] <= self._ts[(self._count - 1) % self.capacity]:
                raise ValueError("chunk starts at or before the newest stored timestamp")
            if n > self.capacity:  # only the newest `capacity` samples can be kept
                skipped = n - self.capacity
                data, ts = data[skipped:], ts[skipped:]
                self._count += skipped
                n = self.capacity
            start = self._count % self.capacity
            first = min(n, self.capacity - start)
            self._data[start : start + first] = data[:first]
            self._ts[start : start + first] = ts[:first]
            if first < n:  # wrap around
                self._data[: n - first] = data[first:]
                self._ts[: n - first] = ts[first:]
            self._count += n

    # -- reading ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Samples ever written (monotonic; includes samples since overwritten)."""
        return self._count

    def __len__(self) -> int:
        return min(self._count, self.capacity)

    def _ordered(self) -> tuple[int, int]:
        """(physical index of the oldest sample, number of samples held). Caller holds the lock."""
        held = min(self._count, self.capacity)
        return (self._count - held) % self.capacity, held

    def time_span(self) -> tuple[float, float] | None:
        """(oldest, newest) timestamp held, or ``None`` when empty."""
        with self._lock:
            oldest, held = self._ordered()
            if held == 0:
                return None
            return float(self._ts[oldest]), float(self._ts[(oldest + held - 1) % self.capacity])

    def _gather(self, oldest: int, lo: int, hi: int) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Copy logical samples lo..hi-1 (0 = oldest held). Caller holds the lock."""
        a = (oldest + lo) % self.capacity
        if a + (hi - lo) <= self.capacity:  # one run of memory: a slice copy, no index array
            return self._data[a : a + hi - lo].copy(), self._ts[a : a + hi - lo].copy()
        idx = (oldest + np.arange(lo, hi)) % self.capacity
        return self._data[idx], self._ts[idx]

    def _search(self, oldest: int, held: int, t: float) -> int:
        """Logical index of the first held sample with timestamp ≥ t. Caller holds the lock."""
        first = min(held, self.capacity - oldest)  # samples in the physical tail segment
        tail = self._ts[oldest : oldest + first]
        i = int(np.searchsorted(tail, t, side="left"))
        if i < first or first == held:
            return i
        head = self._ts[: held - first]
        return first + int(np.searchsorted(head, t, side="left"))

    def read_range(self, t_start: float, t_end: float) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Copies of the samples with ``t_start ≤ timestamp < t_end``, oldest first.

        Returns
        -------
        data : ndarray, shape (n, n_channels)
        timestamps : ndarray, shape (n,)
        """
        with self._lock:
            oldest, held = self._ordered()
            lo = self._search(oldest, held, t_start)
            hi = self._search(oldest, held, t_end)
            return self._gather(oldest, lo, max(lo, hi))

    def read_from(self, t_start: float, n: int) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Copies of (at most) ``n`` samples starting at the first one with timestamp ≥ t_start."""
        with self._lock:
            oldest, held = self._ordered()
            lo = self._search(oldest, held, t_start)
            return self._gather(oldest, lo, min(held, lo + n))

    def latest(self, n: int) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Copies of the newest ``n`` samples (fewer if fewer are held), oldest first."""
        with self._lock:
            oldest, held = self._ordered()
            return self._gather(oldest, max(0, held - n), held)
