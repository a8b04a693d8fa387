"""XDF (Extensible Data Format, LabRecorder's files): read with pyxdf, write for tests and tools.

:func:`read_xdf` loads a file with ``pyxdf.load_xdf`` and returns its streams as
:class:`XdfStream` values: name, type, ``source_id``, hostname, nominal rate, channel format, the
channels' labels/units/types from ``<desc><channels>``, the flat text fields of ``<desc>``, the
timestamps and the samples.

Timestamps. Clocks are synchronised (``synchronize_clocks=True``): each stream's ClockOffset chunks
map its timestamps onto the recording computer's clock, so every stream of the file is on one
clock. They are *not* dejittered (``dejitter_timestamps=False``): a sample keeps the time it was
recorded with (after the clock correction), so what is replayed is what was recorded, gaps and
jitter included.

:func:`write_xdf` writes :class:`XdfStream` values as an XDF 1.0 file (magic ``XDF:``, then chunks
``[NumLengthBytes][Length][Tag][Content]``): a FileHeader, one StreamHeader per stream (``<info>``
XML with ``<desc><channels><channel><label/><unit/><type/>``), Samples chunks in time order with
an explicit timestamp on every sample, the streams' ClockOffset chunks and a StreamFooter each.
The timestamps written are the stream's as given, i.e. on the stream's own clock, and its
``clock_offsets`` ``(collection_time, offset)`` say how to correct them (``offset`` is added), as
LabRecorder writes them; :func:`read_xdf` of that file applies them.
"""

from __future__ import annotations

import gzip
import logging
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree as ET

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "NUMERIC_FORMATS",
    "XdfChannel",
    "XdfFormatError",
    "XdfRecording",
    "XdfStream",
    "read_xdf",
    "write_xdf",
]

NUMERIC_FORMATS: Mapping[str, type[np.generic]] = {
    "float32": np.float32,
    "double64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}
"""XDF channel formats (LSL's spelling) besides ``string``, with their numpy types."""


class XdfFormatError(ValueError):
    """A file that cannot be read as XDF, or streams that cannot be written; says which and why."""


@dataclass(frozen=True, slots=True)
class XdfChannel:
    """One channel of ``<desc><channels>``; empty strings where the file has nothing."""

    label: str
    unit: str = ""
    type: str = ""


@dataclass(frozen=True)
class XdfStream:
    """One stream of an XDF file.

    ``values``: ``(n_samples, channel_count)``, of the format's numpy type, or of ``object``
    holding ``str`` for ``string`` streams. ``time_stamps``: ``(n_samples,)`` seconds. ``srate``:
    the nominal rate, 0 for an irregular stream. ``desc``: the flat text fields of ``<desc>``
    (e.g. ``manufacturer``, ``session``). ``clock_offsets``: ``(collection_time, offset)`` pairs
    — written by :func:`write_xdf`; :func:`read_xdf` has already applied them.
    """

    name: str
    type: str
    srate: float
    fmt: str
    channels: tuple[XdfChannel, ...]
    time_stamps: NDArray[np.float64]
    values: NDArray[Any]
    source_id: str = ""
    hostname: str = ""
    desc: Mapping[str, str] = field(default_factory=dict)
    clock_offsets: tuple[tuple[float, float], ...] = ()
    stream_id: int = 0

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    @property
    def is_string(self) -> bool:
        return self.fmt == "string"

    @property
    def n_samples(self) -> int:
        return len(self.time_stamps)


@dataclass(frozen=True)
class XdfRecording:
    """A file's streams, in the file's order, and the flat text fields of its FileHeader."""

    path: Path | None
    streams: list[XdfStream]
    header: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.streams]


# -- reading -----------------------------------------------------------------------------------


def _text(d: Mapping[str, Any] | None, key: str, default: str = "") -> str:
    """The text of ``key`` in a pyxdf XML dict (``{key: [text or dict or None]}``)."""
    if not isinstance(d, Mapping):
        return default
    v = d.get(key)
    if not v:
        return default
    first = v[0]
    return first.strip() if isinstance(first, str) else default


def _flat(d: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> dict[str, str]:
    """The text children of a pyxdf XML dict (nested elements and ``skip`` left out)."""
    if not isinstance(d, Mapping):
        return {}
    skipped = set(skip)
    return {
        k: v[0].strip()
        for k, v in d.items()
        if k not in skipped and v and isinstance(v[0], str) and v[0].strip()
    }


def _channels(desc: Mapping[str, Any] | None, n: int) -> tuple[XdfChannel, ...]:
    chans: list[XdfChannel] = []
    if isinstance(desc, Mapping):
        group = desc.get("channels")
        if group and isinstance(group[0], Mapping):
            for ch in group[0].get("channel") or ():
                chans.append(
                    XdfChannel(_text(ch, "label"), _text(ch, "unit"), _text(ch, "type"))
                    if isinstance(ch, Mapping)
                    else XdfChannel("")
                )
    if len(chans) != n:  # none, or a description that does not fit: unlabelled channels
        chans = [XdfChannel("") for _ in range(n)]
    return tuple(chans)


def _stream(raw: Mapping[str, Any], path: Path) -> XdfStream:
    info = raw["info"]
    fmt = _text(info, "channel_format", "float32")
    n = int(_text(info, "channel_count", "0") or 0)
    name = _text(info, "name")
    if fmt != "string" and fmt not in NUMERIC_FORMATS:
        raise XdfFormatError(f"{path}: stream {name!r} has unknown channel format {fmt!r}")
    desc = info.get("desc", [None])[0] if info.get("desc") else None
    ts = np.asarray(raw["time_stamps"], dtype=np.float64).reshape(-1)
    if fmt == "string":
        values = np.empty((len(ts), n), dtype=object)
        for i, row in enumerate(raw["time_series"]):
            values[i, :] = ["" if v is None else str(v) for v in row]
    else:
        values = np.asarray(raw["time_series"], dtype=NUMERIC_FORMATS[fmt]).reshape(len(ts), n)
    return XdfStream(
        name=name,
        type=_text(info, "type"),
        srate=float(_text(info, "nominal_srate", "0") or 0.0),
        fmt=fmt,
        channels=_channels(desc, n),
        time_stamps=ts,
        values=values,
        source_id=_text(info, "source_id"),
        hostname=_text(info, "hostname"),
        desc=_flat(desc, skip=("channels",)),
        clock_offsets=tuple(
            zip(
                map(float, raw.get("clock_times", ())),
                map(float, raw.get("clock_values", ())),
                strict=True,
            )
        ),
        stream_id=int(info.get("stream_id", 0)),
    )


def _quiet_segments(record: logging.LogRecord) -> bool:
    """pyxdf warns "Segments and clock-segments differ" for every stream without ClockOffset
    chunks (e.g. a marker stream recorded on the recording computer): not a problem here."""
    return "clock-segments differ" not in record.getMessage()


def read_xdf(path: str | Path) -> XdfRecording:
    """Every stream of the XDF file at ``path``, clocks synchronised, not dejittered (module
    docstring). Raises :class:`XdfFormatError` (with the path) for a file that is missing or is
    not XDF, and ``OSError`` only for errors of the file system itself."""
    import pyxdf

    p = Path(path)
    if not p.is_file():
        raise XdfFormatError(f"{p}: no such file")
    try:
        compressed = p.suffix == ".xdfz" or p.suffixes[-2:] == [".xdf", ".gz"]
        with gzip.open(p, "rb") if compressed else p.open("rb") as f:
            if f.read(4) != b"XDF:":
                raise XdfFormatError(f"{p}: not an XDF file (no 'XDF:' magic)")
        pyxdf_log = logging.getLogger("pyxdf.pyxdf")
        pyxdf_log.addFilter(_quiet_segments)
        try:
            raw_streams, header = pyxdf.load_xdf(
                str(p), synchronize_clocks=True, dejitter_timestamps=False
            )
        finally:
            pyxdf_log.removeFilter(_quiet_segments)
        streams = [_stream(s, p) for s in raw_streams]
    except XdfFormatError:
        raise
    except (
        ET.ParseError,
        EOFError,
        struct.error,
        gzip.BadGzipFile,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
    ) as e:
        raise XdfFormatError(f"{p}: unreadable XDF file ({type(e).__name__}: {e})") from e
    return XdfRecording(
        path=p,
        streams=sorted(streams, key=lambda s: s.stream_id),
        header=_flat(header.get("info") if isinstance(header, Mapping) else None),
    )


# -- writing -----------------------------------------------------------------------------------

_FILE_HEADER, _STREAM_HEADER, _SAMPLES, _CLOCK_OFFSET, _STREAM_FOOTER = 1, 2, 3, 4, 6


def _varlen(n: int) -> bytes:
    """An XDF variable-length integer: 1 byte saying how many bytes follow (1, 4 or 8)."""
    if n < 0:
        raise ValueError(n)
    if n <= 0xFF:
        return b"\x01" + struct.pack("<B", n)
    if n <= 0xFFFFFFFF:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(f: BinaryIO, tag: int, content: bytes) -> None:
    f.write(_varlen(len(content) + 2))
    f.write(struct.pack("<H", tag))
    f.write(content)


def _xml(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0"?>' + body


def _child(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _header_xml(s: XdfStream) -> bytes:
    info = ET.Element("info")
    _child(info, "name", s.name)
    _child(info, "type", s.type)
    _child(info, "channel_count", str(s.channel_count))
    _child(info, "nominal_srate", repr(float(s.srate)))
    _child(info, "channel_format", s.fmt)
    _child(info, "source_id", s.source_id)
    _child(info, "version", "1.1")
    _child(info, "created_at", repr(float(s.time_stamps[0]) if s.n_samples else 0.0))
    _child(info, "uid", f"affectstream-{s.stream_id}-{s.name}")
    _child(info, "session_id", "default")
    _child(info, "hostname", s.hostname)
    desc = ET.SubElement(info, "desc")
    for key, value in s.desc.items():
        _child(desc, key, value)
    chans = ET.SubElement(desc, "channels")
    for c in s.channels:
        ch = ET.SubElement(chans, "channel")
        _child(ch, "label", c.label)
        _child(ch, "unit", c.unit)
        _child(ch, "type", c.type)
    return _xml(info)


def _footer_xml(s: XdfStream) -> bytes:
    info = ET.Element("info")
    ts = s.time_stamps
    _child(info, "first_timestamp", repr(float(ts[0])) if len(ts) else "0")
    _child(info, "last_timestamp", repr(float(ts[-1])) if len(ts) else "0")
    _child(info, "sample_count", str(len(ts)))
    offsets = ET.SubElement(info, "clock_offsets")
    for t, v in s.clock_offsets:
        o = ET.SubElement(offsets, "offset")
        _child(o, "time", repr(float(t)))
        _child(o, "value", repr(float(v)))
    return _xml(info)


def _samples(s: XdfStream, sid: bytes, a: int, b: int) -> bytes:
    parts = [sid, _varlen(b - a)]
    if s.is_string:
        for k in range(a, b):
            parts.append(b"\x08" + struct.pack("<d", float(s.time_stamps[k])))
            for v in s.values[k]:
                raw = str(v).encode("utf-8")
                parts.append(_varlen(len(raw)) + raw)
    else:
        dtype = np.dtype(NUMERIC_FORMATS[s.fmt]).newbyteorder("<")
        rows = np.ascontiguousarray(s.values[a:b], dtype=dtype)
        for k in range(a, b):
            parts.append(b"\x08" + struct.pack("<d", float(s.time_stamps[k])))
            parts.append(rows[k - a].tobytes())
    return b"".join(parts)


def _check(s: XdfStream) -> None:
    if s.fmt != "string" and s.fmt not in NUMERIC_FORMATS:
        raise XdfFormatError(f"stream {s.name!r}: unknown channel format {s.fmt!r}")
    if s.values.shape != (s.n_samples, s.channel_count):
        raise XdfFormatError(
            f"stream {s.name!r}: values of shape {s.values.shape}, expected "
            f"({s.n_samples}, {s.channel_count})"
        )
    if s.n_samples and not np.all(np.diff(s.time_stamps) >= 0):
        raise XdfFormatError(f"stream {s.name!r}: timestamps must not decrease")


def write_xdf(
    path: str | Path,
    streams: Sequence[XdfStream],
    *,
    header: Mapping[str, str] | None = None,
    chunk_s: float = 0.25,
) -> Path:
    """Write ``streams`` as an XDF file (module docstring); streams get ids 1, 2, … in order.

    Samples go out in chunks of ``chunk_s`` seconds of the streams' timestamps, interleaved in
    time order as a recorder writes them; each stream's ClockOffset chunks go out in the time
    order of their collection times among the sample chunks. ``header``: extra FileHeader fields.
    """
    p = Path(path)
    for s in streams:
        _check(s)
    # (time, order, stream index, what): what = ("samples", a, b) | ("offset", t, v)
    events: list[tuple[float, int, int, tuple[Any, ...]]] = []
    for i, s in enumerate(streams):
        ts = s.time_stamps
        a = 0
        while a < len(ts):
            b = int(np.searchsorted(ts, ts[a] + chunk_s, side="left"))
            b = max(b, a + 1)
            events.append((float(ts[a]), 1, i, ("samples", a, b)))
            a = b
        for t, v in s.clock_offsets:
            events.append((float(t), 0, i, ("offset", t, v)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    with p.open("wb") as f:
        f.write(b"XDF:")
        fh = ET.Element("info")
        _child(fh, "version", "1.0")
        for key, value in (header or {}).items():
            _child(fh, key, value)
        _chunk(f, _FILE_HEADER, _xml(fh))
        sids = [struct.pack("<I", i + 1) for i in range(len(streams))]
        for i, s in enumerate(streams):
            _chunk(f, _STREAM_HEADER, sids[i] + _header_xml(replace(s, stream_id=i + 1)))
        for _, _, i, what in events:
            if what[0] == "samples":
                _chunk(f, _SAMPLES, _samples(streams[i], sids[i], what[1], what[2]))
            else:
                _chunk(f, _CLOCK_OFFSET, sids[i] + struct.pack("<dd", what[1], what[2]))
        for i, s in enumerate(streams):
            _chunk(f, _STREAM_FOOTER, sids[i] + _footer_xml(s))
    return p
