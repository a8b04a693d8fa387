"""The DEAP ``data_preprocessed_python`` format: channel table, reader and writer.

This module is the one owner of DEAP's channel table (names, kinds, 0-based indices, units) and of
the file format. Everything else (replay, training datasets, the synthetic generator) goes
through it.

Format (docs/datasets.md#deap-files): each ``sNN.dat`` is a Python-2 pickle of a dict with

- ``data``: ndarray, shape (n_trials, 40, 8064), float64: trial × channel × sample at 128 Hz; the
  first 384 samples of every trial are the 3 s pre-trial baseline, the other 7680 the 60 s trial;
- ``labels``: ndarray, shape (n_trials, 4), float64: valence, arousal, dominance, liking on 1–9.

The real archive has 40 trials per file; the reader accepts any number ≥ 1 so that small synthetic
files (tests, demo) are the same format. GSR (channel 37, 0-based 36) is skin *resistance* in Ohm.

Loading uses a restricted unpickler: a DEAP file only ever holds numpy arrays, so any other global
in the pickle (``os.system`` …) is refused instead of executed.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BASELINE_SAMPLES",
    "CHANNELS",
    "EEG_INDICES",
    "EEG_NAMES",
    "GSR_INDEX",
    "LABEL_NAMES",
    "N_CHANNELS",
    "N_SAMPLES",
    "RATING_RANGE",
    "SFREQ",
    "Channel",
    "ChannelKind",
    "DeapFormatError",
    "DeapSubject",
    "channel",
    "gsr_ohm_to_microsiemens",
    "indices_of_kind",
    "read_deap",
    "subject_number",
    "validate_deap",
    "write_deap",
]

SFREQ = 128.0
"""Sampling rate of every channel, Hz."""
N_CHANNELS = 40
N_SAMPLES = 8064
"""63 s at 128 Hz: 3 s baseline + 60 s trial."""
BASELINE_SAMPLES = 384
"""The first 3 s (3 × 128 samples) of each trial are the pre-trial baseline."""
LABEL_NAMES = ("valence", "arousal", "dominance", "liking")
RATING_RANGE = (1.0, 9.0)
"""Self-assessment ratings are continuous on 1–9 (SAM, rated with a mouse)."""


class ChannelKind(StrEnum):
    EEG = "EEG"
    EOG = "EOG"
    EMG = "EMG"
    GSR = "GSR"
    RESP = "RESP"
    PPG = "PPG"
    TEMP = "TEMP"


@dataclass(frozen=True, slots=True)
class Channel:
    """One row of the DEAP channel table.

    ``index`` is 0-based (the DEAP readme numbers channels from 1). ``unit`` is ``None`` where the
    DEAP documentation does not state one (EEG and most peripheral channels: device units).
    """

    index: int
    name: str
    kind: ChannelKind
    unit: str | None
    description: str


_EEG_GENEVA_ORDER = tuple(
    """
        Fp1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 Oz Pz Fp2 AF4 Fz F4 F8 FC6 FC2 Cz C4 T8 CP6
        CP2 P4 P8 PO4 O2
    """.split()
)

_PERIPHERAL = (
    ("hEOG", ChannelKind.EOG, None, "horizontal EOG (hEOG1 - hEOG2)"),
    ("vEOG", ChannelKind.EOG, None, "vertical EOG (vEOG1 - vEOG2)"),
    ("zEMG", ChannelKind.EMG, None, "zygomaticus major EMG (zEMG1 - zEMG2)"),
    ("tEMG", ChannelKind.EMG, None, "trapezius EMG (tEMG1 - tEMG2)"),
    ("GSR", ChannelKind.GSR, "Ohm", "skin resistance (Twente converted to Geneva format)"),
    ("Respiration", ChannelKind.RESP, None, "respiration belt"),
    ("Plethysmograph", ChannelKind.PPG, None, "plethysmograph (blood volume pulse)"),
    ("Temperature", ChannelKind.TEMP, None, "skin temperature"),
)

CHANNELS: tuple[Channel, ...] = tuple(
    Channel(i, name, ChannelKind.EEG, None, "EEG, Geneva order; band-pass 4-45 Hz, common average")
    for i, name in enumerate(_EEG_GENEVA_ORDER)
) + tuple(
    Channel(32 + i, name, kind, unit, desc)
    for i, (name, kind, unit, desc) in enumerate(_PERIPHERAL)
)

EEG_NAMES: tuple[str, ...] = _EEG_GENEVA_ORDER
EEG_INDICES: tuple[int, ...] = tuple(range(32))
_BY_NAME = {c.name: c for c in CHANNELS}
GSR_INDEX = _BY_NAME["GSR"].index


def channel(name: str) -> Channel:
    """The channel called ``name`` (case-sensitive, as in the DEAP readme)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no DEAP channel {name!r}; channels are {list(_BY_NAME)}") from None


def indices_of_kind(*kinds: ChannelKind) -> tuple[int, ...]:
    """0-based indices of the channels of the given kinds, in file order."""
    return tuple(c.index for c in CHANNELS if c.kind in kinds)


def gsr_ohm_to_microsiemens(resistance_ohm: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Skin resistance (Ohm, DEAP channel 37) → skin conductance (µS): G = 1e6 / R.

    Raises ``ValueError`` if any resistance is not strictly positive and finite: conductance is
    undefined there and passing such a value on would hide a sensor fault.
    """
    r = np.asarray(resistance_ohm, dtype=np.float64)
    bad = ~(np.isfinite(r) & (r > 0))
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"skin resistance must be finite and > 0 Ohm; {int(bad.sum())} value(s) are not "
            f"(first at flat index {first}: {r.ravel()[first]!r})"
        )
    return 1e6 / r


class DeapFormatError(ValueError):
    """Not a valid DEAP ``data_preprocessed_python`` file; the message names file and problem."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        where = "<memory>" if path is None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class DeapSubject:
    """One participant's file.

    data : ndarray, shape (n_trials, 40, 8064), float64
    labels : ndarray, shape (n_trials, 4), float64 — valence, arousal, dominance, liking (1–9)
    """

    data: NDArray[np.float64]
    labels: NDArray[np.float64]
    path: Path | None = None

    @property
    def n_trials(self) -> int:
        return int(self.data.shape[0])

    @property
    def subject(self) -> int | None:
        """Participant number from the file name ``sNN.dat`` (1-based), if it has that form."""
        return None if self.path is None else subject_number(self.path)


def subject_number(path: Path | str) -> int | None:
    """``s07.dat`` → 7; ``None`` for names not of the form ``sNN.dat``."""
    m = re.fullmatch(r"s(\d+)\.dat", Path(path).name)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------------------------
# Validation


def validate_deap(data: Any, labels: Any, path: Path | str | None = None) -> None:
    """Check arrays against the format; raise :class:`DeapFormatError` naming the first problem."""
    for key, arr, ndim in (("data", data, 3), ("labels", labels, 2)):
        if not isinstance(arr, np.ndarray):
            raise DeapFormatError(
                path, f"{key!r} is a {type(arr).__name__}, expected a numpy array"
            )
        if arr.dtype != np.float64:
            raise DeapFormatError(path, f"{key!r} has dtype {arr.dtype}, expected float64")
        if arr.ndim != ndim:
            raise DeapFormatError(
                path, f"{key!r} has shape {arr.shape} ({arr.ndim}-D), expected a {ndim}-D array"
            )
    n_trials = data.shape[0]
    if n_trials < 1:
        raise DeapFormatError(path, "'data' holds no trial (shape[0] == 0)")
    if data.shape[1:] != (N_CHANNELS, N_SAMPLES):
        raise DeapFormatError(
            path,
            f"'data' has shape {data.shape}, expected (trials, {N_CHANNELS}, {N_SAMPLES}) "
            f"= 40 channels × 63 s at 128 Hz",
        )
    if labels.shape != (n_trials, len(LABEL_NAMES)):
        raise DeapFormatError(
            path,
            f"'labels' has shape {labels.shape}, expected ({n_trials}, 4) "
            f"(one row of {', '.join(LABEL_NAMES)} per trial)",
        )
    for key, arr in (("data", data), ("labels", labels)):
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            where = _describe_position(key, first)
            raise DeapFormatError(
                path, f"{key!r} has {len(bad)} non-finite value(s) (NaN/Inf); first at {where}"
            )
    lo, hi = RATING_RANGE
    outside = (labels < lo) | (labels > hi)
    if outside.any():
        t, k = (int(i) for i in np.argwhere(outside)[0])
        raise DeapFormatError(
            path,
            f"'labels' has {int(outside.sum())} rating(s) outside {lo:g}-{hi:g}; "
            f"first: trial {t + 1} "
            f"{LABEL_NAMES[k]} = {float(labels[t, k])!r}",
        )


def _describe_position(key: str, pos: tuple[int, ...]) -> str:
    if key == "data":
        t, c, s = pos
        return f"trial {t + 1}, channel {c + 1} ({CHANNELS[c].name}), sample {s}"
    t, k = pos
    return f"trial {t + 1}, {LABEL_NAMES[k]}"


# --------------------------------------------------------------------------------------------
# Reading


# The only globals a pickled dict of float64 arrays refers to, in Python 2 or 3, numpy 1 or 2.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    (
        "_codecs",
        "encode",
    ),  # Python 3 pickles bytes with protocol < 3 as _codecs.encode(str, 'latin1')
    ("__builtin__", "bytes"),  # … and empty bytes as bytes()
    ("builtins", "bytes"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refers to {module}.{name}, which a DEAP file never contains; refusing to load it"
            )
        if module.startswith("numpy.core."):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy ≥ 2 location
        return super().find_class(module, name)


def read_deap(path: Path | str) -> DeapSubject:
    """Read one ``sNN.dat`` file.

    Parameters
    ----------
    path : path of a DEAP ``data_preprocessed_python`` file (Python-2 pickle, loaded as latin-1).

    Returns
    -------
    DeapSubject with ``data`` (n_trials, 40, 8064) and ``labels`` (n_trials, 4), float64.

    Raises
    ------
    DeapFormatError
        for anything that is not exactly the format: not a pickle, a truncated pickle, a pickle
        referring to code, wrong keys, shapes, dtypes, non-finite values or ratings off 1–9.
    FileNotFoundError
        if there is no such file.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        obj = _load(f, path, size)
    if not isinstance(obj, dict):
        raise DeapFormatError(
            path,
            f"top-level object is a {type(obj).__name__}, "
            "expected a dict with keys 'data' and 'labels'",
        )
    keys = {(k.decode("latin1") if isinstance(k, bytes) else k) for k in obj}
    obj = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    missing = sorted({"data", "labels"} - keys)
    extra = sorted(map(str, keys - {"data", "labels"}))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing key(s) " + ", ".join(repr(k) for k in missing))
        if extra:
            parts.append("unexpected key(s) " + ", ".join(repr(k) for k in extra))
        raise DeapFormatError(
            path, "; ".join(parts) + " (a DEAP file holds exactly 'data' and 'labels')"
        )
    data, labels = obj["data"], obj["labels"]
    validate_deap(data, labels, path)
    return DeapSubject(data=data, labels=labels, path=path)


def _load(f: BinaryIO, path: Path, size: int) -> Any:
    head = f.read(2)
    f.seek(0)
    if size == 0:
        raise DeapFormatError(path, "file is empty")
    if head[:1] != pickle.PROTO and head[:1] not in (b"(", b"}", b"]", b"c"):
        raise DeapFormatError(
            path, f"not a pickle (starts with {head!r}); expected a DEAP .dat file"
        )
    try:
        return _RestrictedUnpickler(f, encoding="latin1").load()
    except EOFError:
        raise DeapFormatError(path, f"truncated pickle: the file ends after {size} bytes") from None
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "truncated" in msg or "ran out of input" in msg.lower():
            raise DeapFormatError(
                path, f"truncated pickle: the file ends after {size} bytes"
            ) from None
        if msg.startswith("refers to"):
            raise DeapFormatError(path, f"pickle {msg}") from None
        raise DeapFormatError(path, f"not a valid pickle: {msg}") from None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        # numpy raises these when an array's pickled state is cut short or inconsistent
        raise DeapFormatError(path, f"corrupt pickle ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------------
# Writing


def write_deap(path: Path | str, data: NDArray[np.float64], labels: NDArray[np.float64]) -> Path:
    """Write ``data`` and ``labels`` as a DEAP file, byte-for-byte the way Python 2 pickled it.

    The arrays are validated first (the same rules as :func:`read_deap`), so this never writes a
    file the reader would refuse. The pickle is protocol 2 with Python-2 ``str`` opcodes for the
    keys and the raw array bytes and ``numpy.core.multiarray._reconstruct`` as the array
    constructor: what ``cPickle.dump(d, f, 2)`` under Python 2 produced.
    ``pickle.load(f, encoding="latin1")`` reads it under Python 3 (numpy 1 or 2), as every public
    DEAP loader does.
    """
    path = Path(path)
    data = np.ascontiguousarray(data)
    labels = np.ascontiguousarray(labels)
    validate_deap(data, labels, path)
    buf = io.BytesIO()
    _Py2Pickler(buf).dump({"labels": labels, "data": data})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getbuffer())
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


# The pure-Python pickler (typeshed has no stubs for its internals: write, memoize, dispatch).
_PurePickler: Any = pickle._Pickler


class _Py2Pickler(_PurePickler):  # type: ignore[misc]
    """Pure-Python pickler emitting what Python 2's cPickle (protocol 2) wrote for numpy arrays."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, protocol=2)
        self.dispatch = dict(_PurePickler.dispatch)
        self.dispatch[bytes] = _Py2Pickler._save_py2_str
        self.dispatch[str] = _Py2Pickler._save_py2_str

    def _save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + raw)
        else:
            self.write(pickle.BINSTRING + n.to_bytes(4, "little") + raw)
        self.memoize(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        qual = name or getattr(obj, "__qualname__", "")
        if qual == "_reconstruct" and module.startswith("numpy"):
            module = "numpy.core.multiarray"  # where Python 2's numpy kept it
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode("ascii"))
        self.memoize(obj)
