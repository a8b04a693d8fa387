"""The LSL boundary on the receiving side: resolve streams and pull from them.

With :mod:`streaming.replay` (the outlet side), this is the only module that imports ``pylsl``;
the rest of the code sees :class:`StreamDescription`, numpy arrays and :class:`LslError`.

Pitfalls handled here (DESIGN.md §7): a blocking ``pull_chunk`` without ``min_samples`` waits for
``max_samples``, so :meth:`Inlet.pull` polls with ``timeout=0``; samples are pulled into one
preallocated array per inlet (no Python list per sample).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

__all__ = ["Inlet", "LslError", "StreamDescription", "local_clock", "resolve_streams"]


class LslError(RuntimeError):
    """An error from liblsl, translated (lost stream, timeout, bad argument)."""


def local_clock() -> float:
    """The LSL clock (seconds, monotonic, shared by all LSL programs on this machine)."""
    return float(pylsl.local_clock())


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """What a resolver knows about a stream before an inlet is opened."""

    name: str
    type: str
    source_id: str
    hostname: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    uid: str
    _info: Any = None  # the pylsl.StreamInfo, kept to open an inlet

    @property
    def is_regular(self) -> bool:
        return self.nominal_srate > 0

    @classmethod
    def _from_info(cls, info: pylsl.StreamInfo) -> StreamDescription:
        fmt = {
            pylsl.cf_float32: "float32",
            pylsl.cf_double64: "float64",
            pylsl.cf_string: "string",
            pylsl.cf_int32: "int32",
            pylsl.cf_int16: "int16",
            pylsl.cf_int8: "int8",
            pylsl.cf_int64: "int64",
        }.get(info.channel_format(), "unknown")
        return cls(
            name=info.name(),
            type=info.type(),
            source_id=info.source_id(),
            hostname=info.hostname(),
            channel_count=info.channel_count(),
            nominal_srate=info.nominal_srate(),
            channel_format=fmt,
            uid=info.uid(),
            _info=info,
        )


def resolve_streams(
    *,
    timeout: float = 1.0,
    type: str | None = None,
    source_id_prefix: str | None = None,
    hostname: str | None = None,
) -> list[StreamDescription]:
    """All streams visible within ``timeout`` seconds that satisfy every given condition."""
    infos = pylsl.resolve_streams(wait_time=timeout)
    out = []
    for info in infos:
        d = StreamDescription._from_info(info)
        if type is not None and d.type != type:
            continue
        if source_id_prefix is not None and not d.source_id.startswith(source_id_prefix):
            continue
        if hostname is not None and d.hostname != hostname:
            continue
        out.append(d)
    return sorted(out, key=lambda d: (d.type, d.source_id))


class Inlet:
    """One open inlet with a preallocated pull buffer.

    Parameters
    ----------
    stream : the stream to open
    max_chunk : the most samples one :meth:`pull` returns
    """

    def __init__(self, stream: StreamDescription, max_chunk: int = 1024) -> None:
        self.stream = stream
        self.max_chunk = max_chunk
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize
        if stream.is_regular:
            flags |= pylsl.proc_dejitter  # dejitter only makes sense at a regular rate
        self._inlet = pylsl.StreamInlet(
            stream._info, max_buflen=60, max_chunklen=0, recover=True, processing_flags=flags
        )
        self._is_string = stream.channel_format == "string"
        self._buf: NDArray[Any] | None = None
        if not self._is_string:  # liblsl writes straight into it, in the stream's own dtype
            dtype = np.dtype(stream.channel_format)
            self._buf = np.empty((max_chunk, stream.channel_count), dtype=dtype)

    def open(self, timeout: float = 5.0) -> None:
        try:
            self._inlet.open_stream(timeout=timeout)
        except pylsl.util.TimeoutError as e:
            raise LslError(f"{self.stream.source_id}: could not open the stream ({e})") from None

    def channel_labels(self, timeout: float = 5.0) -> list[str]:
        """Channel labels from the stream's full description (``<channels><channel><label>``)."""
        info = self._inlet.info(timeout=timeout)
        ch = info.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        return labels

    def pull(self) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Whatever is available now, without waiting.

        Returns
        -------
        data : ndarray, shape (n, channel_count), in the stream's dtype — a view into the
            inlet's buffer, valid until the next pull; for string streams an object array of
            shape (n,) holding ``str``.
        timestamps : ndarray, shape (n,), float64, on the LSL clock with time correction applied
        """
        try:
            if self._is_string:
                samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=self.max_chunk)
                return np.array([s[0] for s in samples], dtype=object), np.asarray(ts, np.float64)
            assert self._buf is not None
            data, ts = self._inlet.pull_chunk(
                timeout=0.0, max_samples=self.max_chunk, dest_obj=self._buf, as_numpy=True
            )
        except (pylsl.util.LostError, pylsl.util.TimeoutError) as e:
            # with recover=True a vanished outlet surfaces as a timeout from liblsl
            raise LslError(f"{self.stream.source_id}: stream lost ({e})") from None
        return data, ts

    def close(self) -> None:
        self._inlet.close_stream()


def decode_marker(text: str) -> dict[str, Any] | None:
    """A marker sample as a dict if it is a JSON object, else ``None``."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
