"""The LSL boundary on the receiving side: find streams and pull from them.

With :mod:`affectstream.streaming.replay.deap` (the outlet side), this is the only module that
imports ``pylsl``; the rest of the code sees :class:`StreamDescription`, numpy arrays and our own
exceptions (:class:`LslError`, :class:`StreamLostError`).

Choices, with the traps behind them (docs/lsl.md):

- Inlets are opened with ``recover=False``. With liblsl's own recovery a vanished outlet hides
  behind a long timeout, and ``pull_chunk`` was seen blocking for over 30 s inside liblsl while it
  tried to reconnect. Without it a lost outlet raises at once;
  :mod:`affectstream.streaming.ingest.acquisition` re-finds the stream by ``source_id`` itself and
  counts a reconnect.
- ``pull_chunk`` without ``min_samples`` waits for ``max_samples``: :meth:`Inlet.pull` waits for
  one sample at most ``timeout`` seconds, then drains what is there, into one preallocated array.
- Post-processing: clock synchronisation only (``proc_clocksync``), so timestamps are on this
  machine's LSL clock. Neither liblsl's dejitter nor its monotonic correction is used: both hide
  discontinuities (a dropped run, a clock step) that the ingest layer counts.
  :mod:`affectstream.streaming.ingest.dejitter` smooths regular streams instead, and the
  acquisition layer drops and counts timestamps that go backwards.
- Resolving by property is slow with many streams: :class:`StreamDirectory` keeps one continuous
  resolver running instead of resolving on demand.
- The acquisition loop's calls are direct (#16): a non-blocking pull of a numeric stream calls
  liblsl's ``lsl_pull_chunk_*`` with arguments built once per inlet (pylsl's ``pull_chunk``
  rebuilds them on every call, ~10 µs of Python per pull), and the two calls that return at
  once by construction, ``lsl_samples_available`` and ``lsl_local_clock``, go through the same
  library loaded as a :class:`ctypes.PyDLL`, which keeps the interpreter lock: a ``CDLL`` call
  releases and retakes it, and with a busy scheduler thread each retake can wait up to the
  interpreter's switch interval (5 ms). A pull still releases it (``CDLL``): should liblsl ever
  block inside one, the other threads run on (the acquisition loop's watchdog).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

__all__ = [
    "Inlet",
    "LslError",
    "StreamDescription",
    "StreamDirectory",
    "StreamLostError",
    "decode_marker",
    "local_clock",
]


class LslError(RuntimeError):
    """An error from liblsl, translated (timeout, bad argument …)."""


class StreamLostError(LslError):
    """The outlet of an open inlet has disappeared."""


# liblsl as pylsl loaded it, loaded again (the same library) so that these calls keep the GIL
_HOLDING = ctypes.PyDLL(pylsl.lib.lib._name)
_lsl_local_clock = _HOLDING.lsl_local_clock
_lsl_local_clock.restype = ctypes.c_double
_lsl_local_clock.argtypes = []
_lsl_samples_available = _HOLDING.lsl_samples_available
_lsl_samples_available.restype = ctypes.c_uint32
_lsl_samples_available.argtypes = [ctypes.c_void_p]


def local_clock() -> float:
    """The LSL clock (seconds, monotonic, shared by all LSL programs on this machine)."""
    return float(_lsl_local_clock())


_FORMATS = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "float64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """What is known about a stream. ``session``, ``channel_labels`` and ``channel_units`` come
    from the full description and are empty until an inlet fetched it (:meth:`Inlet.describe`)."""

    name: str
    type: str
    source_id: str
    hostname: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    uid: str
    session: str = ""
    channel_labels: tuple[str, ...] = ()
    channel_units: tuple[str, ...] = ()
    _info: Any = field(default=None, compare=False, repr=False)  # pylsl.StreamInfo

    @property
    def is_regular(self) -> bool:
        return self.nominal_srate > 0

    @property
    def key(self) -> str:
        """Identity across restarts of the same outlet: its ``source_id`` (else name@host)."""
        return self.source_id or f"{self.name}@{self.hostname}"

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo, *, full: bool = False) -> StreamDescription:
        session, labels, units = "", (), ()
        if full:
            desc = info.desc()
            session = desc.child_value("session")
            ch = desc.child("channels").child("channel")
            lab, uni = [], []
            while not ch.empty():
                lab.append(ch.child_value("label"))
                uni.append(ch.child_value("unit"))
                ch = ch.next_sibling()
            labels, units = tuple(lab), tuple(uni)
        return cls(
            name=info.name(),
            type=info.type(),
            source_id=info.source_id(),
            hostname=info.hostname(),
            channel_count=info.channel_count(),
            nominal_srate=info.nominal_srate(),
            channel_format=_FORMATS.get(info.channel_format(), "unknown"),
            uid=info.uid(),
            session=session,
            channel_labels=labels,
            channel_units=units,
            _info=info,
        )


class StreamDirectory:
    """A continuous resolver: the streams currently visible, refreshed in liblsl's background.

    ``forget_after`` seconds after a stream stops answering it leaves :meth:`streams`.
    """

    def __init__(self, forget_after: float = 3.0) -> None:
        self._resolver = pylsl.ContinuousResolver(forget_after=forget_after)
        self._known: dict[str, StreamDescription] = {}

    def streams(self) -> list[StreamDescription]:
        """The visible streams. A stream seen before (same ``uid``: the same outlet, whose short
        description cannot change) keeps its :class:`StreamDescription`: converting one costs
        eight calls into liblsl, and with a hundred streams visible the listing cost ~5 ms, half of
        it those conversions (#16)."""
        known, seen = self._known, {}
        for info in self._resolver.results():
            uid = info.uid()
            d = known.get(uid)
            seen[uid] = d if d is not None else StreamDescription.from_info(info)
        self._known = seen
        return list(seen.values())

    def close(self) -> None:
        del self._resolver


class Inlet:
    """One open inlet with a preallocated pull buffer.

    Parameters
    ----------
    stream : the stream to open
    max_chunk : the most samples one :meth:`pull` returns
    buffer_s : how much liblsl may queue for us while we are not pulling, seconds
    """

    def __init__(
        self, stream: StreamDescription, max_chunk: int = 1024, buffer_s: int = 30
    ) -> None:
        self.stream = stream
        self.max_chunk = max_chunk
        # clock synchronisation only: liblsl's proc_dejitter smears holes and clock steps over the
        # following samples (streaming/ingest/dejitter.py smooths without hiding them)
        self._inlet = pylsl.StreamInlet(
            stream._info,
            max_buflen=buffer_s,
            max_chunklen=0,
            recover=False,
            processing_flags=pylsl.proc_clocksync,
        )
        self._is_string = stream.channel_format == "string"
        self._buf: NDArray[Any] | None = None
        self._pull_args: tuple[Any, ...] = ()
        self._width = max(1, stream.channel_count)  # values per sample in the buffer
        self._error = ctypes.c_int(0)
        if not self._is_string:  # liblsl writes straight into it, in the stream's own dtype
            dtype = np.dtype(stream.channel_format)
            self._buf = np.empty((max_chunk, stream.channel_count), dtype=dtype)
            self._ts = np.empty(max_chunk, dtype=np.float64)
            self._pull_fn = self._inlet.do_pull_chunk
            self._pull_args = (  # what pylsl's pull_chunk builds on every call, built once
                self._inlet.obj,
                ctypes.c_void_p(self._buf.ctypes.data),
                ctypes.c_void_p(self._ts.ctypes.data),
                ctypes.c_size_t(self._buf.size),
                ctypes.c_size_t(max_chunk),
                ctypes.c_double(0.0),
                ctypes.byref(self._error),
            )

    def open(self, timeout: float = 5.0) -> None:
        try:
            self._inlet.open_stream(timeout=timeout)
        except pylsl.util.TimeoutError:
            raise LslError(
                f"{self.stream.key}: could not open the stream in {timeout:g} s"
            ) from None
        except pylsl.util.LostError:
            raise StreamLostError(
                f"{self.stream.key}: the stream went away while opening"
            ) from None

    def describe(self, timeout: float = 5.0) -> StreamDescription:
        """The full description (session, channel labels and units) from the outlet."""
        try:
            info = self._inlet.info(timeout=timeout)
        except pylsl.util.TimeoutError:
            raise LslError(f"{self.stream.key}: no description within {timeout:g} s") from None
        except pylsl.util.LostError:
            raise StreamLostError(f"{self.stream.key}: the stream went away") from None
        self.stream = StreamDescription.from_info(info, full=True)
        return self.stream

    def time_correction(self, timeout: float = 2.0) -> float | None:
        """Current estimate of (outlet clock → our clock) offset, seconds; ``None`` if unknown."""
        try:
            return float(self._inlet.time_correction(timeout=timeout))
        except (pylsl.util.TimeoutError, pylsl.util.LostError):
            return None

    def queued(self) -> int:
        """How many samples liblsl holds for us (> 0 also when there is news for the next pull,
        such as a lost connection: it then reports samples so that the pull raises). One C call,
        ~0.5 µs against ~7 µs for an empty :meth:`pull` (measured here, #16): a poller asks
        first."""
        return int(_lsl_samples_available(self._inlet.obj))

    def pull(self, timeout: float = 0.0) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Wait up to ``timeout`` s for a first sample, then return all that is available.

        Returns
        -------
        data : ndarray, shape (n, channel_count), in the stream's dtype — a view into the
            inlet's buffer, valid until the next pull; for string streams an object array of
            shape (n,) holding ``str``.
        timestamps : ndarray, shape (n,), float64, on the LSL clock with time correction applied
            (not smoothed)

        Raises
        ------
        StreamLostError if the outlet has gone.
        """
        min_samples = 1 if timeout > 0 else None
        try:
            if timeout <= 0 and self._pull_args:  # the acquisition loop's pull: direct
                self._error.value = 0
                n = self._pull_fn(*self._pull_args) // self._width
                if self._error.value:
                    pylsl.util.handle_error(self._error)
                assert self._buf is not None
                return self._buf[:n], self._ts[:n].copy()
            if self._is_string:
                samples, ts = self._inlet.pull_chunk(
                    timeout=timeout, max_samples=self.max_chunk, min_samples=min_samples
                )
                return np.array([s[0] for s in samples], dtype=object), np.asarray(ts, np.float64)
            assert self._buf is not None
            data, ts = self._inlet.pull_chunk(
                timeout=timeout,
                max_samples=self.max_chunk,
                dest_obj=self._buf,
                min_samples=min_samples,
                as_numpy=True,
            )
        except pylsl.util.LostError:
            raise StreamLostError(f"{self.stream.key}: stream lost") from None
        except pylsl.util.TimeoutError:
            # liblsl reports a connection that broke off mid-pull as a timeout
            raise StreamLostError(
                f"{self.stream.key}: stream lost (connection broke off)"
            ) from None
        return data, ts

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead inlet must never raise
            self._inlet.close_stream()


def decode_marker(text: str) -> dict[str, Any] | None:
    """A marker sample as a dict if it is a JSON object, else ``None``."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
