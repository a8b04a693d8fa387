"""Streams as real devices send them: type names, channel labels, units.

The rules are tabled in docs/lsl.md#types-labels-and-units.

- :func:`canonical_type` maps the many spellings of a modality's LSL ``type`` onto one name
  (``"eda"``, ``"SC"`` → ``GSR``; ``"BVP"`` → ``PPG`` …), case-insensitively.
- :func:`plan_channels` decides, once per stream when it is adopted, the channel labels a consumer
  sees and how the values are converted before they reach the ring buffer: a one-channel
  GSR/PPG/RESP/ECG stream is labelled by its type whatever label it carries; the session's
  :class:`StreamOverrides` label streams that carry no (or wrong) labels; skin conductance is
  stored in µS, converted from the unit in the stream's description or the session's override.
  A stream that cannot be served that way is refused with the reason (a ``ValueError``).

This layer stores override labels as given; checking EEG labels against the 10-20/10-10
vocabulary is the job of the layers above (``streaming/preprocess/montage.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.lsl.inlet import StreamDescription

__all__ = [
    "EMPTY_REPORT",
    "MICROSIEMENS",
    "SINGLE_CHANNEL_TYPES",
    "SKIN_UNITS",
    "TYPE_ALIASES",
    "ChannelPlan",
    "SkinUnit",
    "StreamOverrides",
    "UnitConversion",
    "canonical_type",
    "plan_channels",
    "skin_unit",
]

# -- types -----------------------------------------------------------------------------------------

TYPE_ALIASES: Mapping[str, tuple[str, ...]] = {
    "GSR": ("GSR", "EDA", "SC", "skin conductance", "electrodermal activity"),
    "PPG": ("PPG", "BVP", "blood volume pulse"),
    "RESP": ("RESP", "RSP", "respiration"),
    "ECG": ("ECG", "EKG"),
    "EEG": ("EEG",),
    "Markers": ("Markers",),
}
"""Canonical type → the spellings read as it (compared ignoring case, with ``_``/``-`` read as
spaces and runs of spaces as one); any other type is kept and compared exactly as spelt."""


def _fold(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()


_TYPE_BY_FOLDED: Mapping[str, str] = {
    _fold(alias): canonical for canonical, aliases in TYPE_ALIASES.items() for alias in aliases
}


@functools.lru_cache(maxsize=4096)  # a handful of distinct types, asked for on every window
def canonical_type(lsl_type: str) -> str:
    """``"eda"``, ``"SC"``, ``"Skin Conductance"`` → ``"GSR"``; ``"BVP"`` → ``"PPG"``;
    ``"respiration"`` → ``"RESP"``; ``"EKG"`` → ``"ECG"``; ``"markers"`` → ``"Markers"``; any type
    not in :data:`TYPE_ALIASES` unchanged."""
    return _TYPE_BY_FOLDED.get(_fold(lsl_type), lsl_type)


SINGLE_CHANNEL_TYPES = frozenset({"GSR", "PPG", "RESP", "ECG"})
"""Modalities whose one-channel stream is labelled by its canonical type, e.g. ``("GSR",)``."""

# -- skin-conductance units ------------------------------------------------------------------------

MICROSIEMENS = "µS"
"""The unit skin conductance is stored in."""


@dataclass(frozen=True, slots=True)
class SkinUnit:
    """A unit of skin conductance or resistance and how it becomes µS.

    Conductance: ``µS = value × scale``; resistance: ``µS = scale / value`` (values ≤ 0 → NaN).
    """

    symbol: str
    resistance: bool
    scale: float


_SKIN_UNITS: tuple[tuple[SkinUnit, tuple[str, ...]], ...] = (
    (SkinUnit("µS", False, 1.0), ("uS", "microsiemens", "umho", "micromho")),
    (SkinUnit("nS", False, 1e-3), ("nS", "nanosiemens")),
    (SkinUnit("mS", False, 1e3), ("mS", "millisiemens")),
    (SkinUnit("S", False, 1e6), ("S", "siemens", "mho")),
    (SkinUnit("Ω", True, 1e6), ("Ohm", "ohms")),
    (SkinUnit("kΩ", True, 1e3), ("kOhm", "kohms", "kiloohm", "kiloohms", "kilohm", "kilohms")),
    (SkinUnit("MΩ", True, 1.0), ("MOhm", "megaohm", "megaohms", "megohm", "megohms")),
)

SKIN_UNITS: Mapping[str, SkinUnit] = {u.symbol: u for u, _ in _SKIN_UNITS}
"""The accepted skin-conductance units by symbol (:func:`skin_unit` lists the spellings)."""


def _unit_key(text: str) -> str:
    for micro in ("µ", "μ"):  # micro sign, Greek mu
        text = text.replace(micro, "u")
    for omega in ("Ω", "Ω"):  # Greek capital omega, ohm sign
        text = text.replace(omega, "Ohm")
    return "".join(text.split()).casefold()


_UNIT_BY_KEY: Mapping[str, SkinUnit] = {
    _unit_key(spelling): unit
    for unit, spellings in _SKIN_UNITS
    for spelling in (unit.symbol, *spellings)
}


def skin_unit(text: str) -> SkinUnit | None:
    """The skin unit a ``<unit>`` string names, ``None`` if it names none we know.

    Case does not matter (``"microSiemens"``, ``"KOHM"``), ``µ``/``μ``/``u`` and ``Ω``/``Ohm`` are
    the same, spaces are ignored; the one exception is ``MΩ``/``MOhm``, whose capital ``M`` must be
    written (a lower-case ``mOhm`` would be milliohm, no skin resistance, so it is refused rather
    than guessed).
    """
    key = _unit_key(text)
    if key in ("mohm", "mohms") and not text.strip().startswith("M"):
        return None
    return _UNIT_BY_KEY.get(key)


@dataclass(frozen=True, slots=True)
class UnitConversion:
    """Per-channel conversion of a chunk to µS (see :class:`SkinUnit`)."""

    units: tuple[SkinUnit, ...]

    def apply(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """values : (n, n_channels) → a new array in µS; a resistance ≤ 0 or non-finite → NaN."""
        scale = np.array([u.scale for u in self.units])
        reciprocal = np.array([u.resistance for u in self.units])
        out: NDArray[np.float64] = values * scale
        if reciprocal.any():
            ok = np.isfinite(values) & (values > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                inverse = np.where(ok, scale / np.where(ok, values, 1.0), np.nan)
            out = np.where(reciprocal, inverse, out)
        return out


# -- session overrides ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamOverrides:
    """What the session says about its streams where the streams say nothing or the wrong thing.

    channels : canonical (or alias) type → channel labels in column order, for every stream of that
        type (e.g. ``{"EEG": ["Fp1", "AF3", …]}``); a stream with another channel count is refused.
        Labels are stored as given (stripped); empty or repeated labels are a ``ValueError`` here.
    units : type → unit of the values; only ``GSR`` (converted to µS), with a unit
        :func:`skin_unit` accepts (``ValueError`` otherwise). It wins over the stream's own
        ``<unit>``.

    Keys are canonicalised (``"eda"`` → ``"GSR"``); two keys naming the same type are an error.
    """

    channels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        channels: dict[str, tuple[str, ...]] = {}
        for key, labels in self.channels.items():
            kind = _unique_key(canonical_type(key), channels, "channels")
            if isinstance(labels, str):
                raise ValueError(f"channels[{key!r}]: expected a list of labels, got a string")
            clean = tuple(str(label).strip() for label in labels)
            if not clean:
                raise ValueError(f"channels[{key!r}]: no labels")
            if "" in clean:
                raise ValueError(f"channels[{key!r}]: empty label at position {clean.index('')}")
            repeated = sorted({label for label in clean if clean.count(label) > 1})
            if repeated:
                raise ValueError(f"channels[{key!r}]: label(s) given twice: {', '.join(repeated)}")
            channels[kind] = clean
        units: dict[str, str] = {}
        for key, unit in self.units.items():
            kind = _unique_key(canonical_type(key), units, "units")
            if kind != "GSR":
                raise ValueError(
                    f"units[{key!r}]: a unit can be set for GSR only (skin conductance is "
                    "converted to µS); other streams are passed on unconverted"
                )
            if skin_unit(unit) is None:
                raise ValueError(f"units[{key!r}]: {_unknown_unit(unit)}")
            units[kind] = unit.strip()
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "units", units)

    def __bool__(self) -> bool:
        return bool(self.channels or self.units)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"channels": {type: [labels]}, "units": {type: unit}}``."""
        return {
            "channels": {k: list(v) for k, v in self.channels.items()},
            "units": dict(self.units),
        }


def _unique_key(kind: str, seen: Mapping[str, object], what: str) -> str:
    if kind in seen:
        raise ValueError(f"{what}: type {kind} given twice (under different spellings)")
    return kind


def _unknown_unit(text: str) -> str:
    accepted = ", ".join(SKIN_UNITS)
    return f"unit {text!r} is no skin-conductance unit known here (accepted: {accepted})"


# -- the plan for one stream -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """How one stream's channels are presented: labels, units, conversion (see the module).

    labels : per column, ``()`` when the stream is unlabelled (and no override names them)
    labels_from : ``"stream"`` (its ``<channels>``), ``"override"`` (the session), ``"type"`` (a
        one-channel GSR/PPG/RESP/ECG stream), ``None`` (unlabelled)
    units : per column, the unit of the values as stored (``""`` when unknown)
    unit : for reports: ``"µS"``, ``"µS (assumed)"`` for GSR; else the stream's own unit if all
        channels share one, else ``None``
    unit_given : the unit string(s) as the stream or the session gave them (``"kOhm"``), ``None``
        if none
    unit_from : ``"description"``, ``"override"``, ``"assumed"`` or ``None``
    conversion : applied to every chunk before the ring buffer; ``None`` = values as they come
    """

    labels: tuple[str, ...] = ()
    labels_from: str | None = None
    units: tuple[str, ...] = ()
    unit: str | None = None
    unit_given: str | None = None
    unit_from: str | None = None
    conversion: UnitConversion | None = None

    def report(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels) if self.labels else None,
            "labels_from": self.labels_from,
            "unit": self.unit,
            "unit_given": self.unit_given,
            "unit_from": self.unit_from,
        }


EMPTY_REPORT: Mapping[str, Any] = ChannelPlan().report()
"""The report fields of a stream without a plan (a refused one)."""


def plan_channels(s: StreamDescription, overrides: StreamOverrides | None = None) -> ChannelPlan:
    """The :class:`ChannelPlan` of stream ``s`` (its full description) in a session with
    ``overrides``; ``ValueError`` with the reason if the stream cannot be served."""
    overrides = overrides or StreamOverrides()
    kind = canonical_type(s.type)
    n = s.channel_count
    labels, labels_from = _labels(s, kind, overrides)
    described_units = tuple(u.strip() for u in s.channel_units)
    if len(described_units) != n:
        described_units = ("",) * n
    if kind != "GSR" or s.channel_format in ("string", "unknown"):
        common = set(described_units)
        unit = common.pop() if len(common) == 1 else None
        return ChannelPlan(
            labels,
            labels_from,
            described_units,
            unit=unit or None,
            unit_given=unit or None,
            unit_from="description" if unit else None,
        )
    override = overrides.units.get(kind)
    given = (override,) * n if override is not None else described_units
    units: list[SkinUnit] = []
    for i, text in enumerate(given):
        if not text:
            units.append(SKIN_UNITS[MICROSIEMENS])
            continue
        parsed = skin_unit(text)
        if parsed is None:
            where = "the session's units" if override is not None else f"channel {i + 1}"
            raise ValueError(f"stream {s.key} ({s.type}): {where}: {_unknown_unit(text)}")
        units.append(parsed)
    assumed = any(not text for text in given)
    distinct = list(dict.fromkeys(text for text in given if text))
    identity = all(u.scale == 1.0 and not u.resistance for u in units)
    return ChannelPlan(
        labels,
        labels_from,
        (MICROSIEMENS,) * n,
        unit=f"{MICROSIEMENS} (assumed)" if assumed else MICROSIEMENS,
        unit_given=", ".join(distinct) or None,
        unit_from="override" if override is not None else "assumed" if assumed else "description",
        conversion=None if identity else UnitConversion(tuple(units)),
    )


def _labels(
    s: StreamDescription, kind: str, overrides: StreamOverrides
) -> tuple[tuple[str, ...], str | None]:
    n = s.channel_count
    given = overrides.channels.get(kind)
    if given is not None:
        if len(given) != n:
            raise ValueError(
                f"stream {s.key} ({s.type}) has {n} channel(s); the session's labels for {kind} "
                f"name {len(given)}: {', '.join(given)}"
            )
        return tuple(given), "override"
    if n == 1 and kind in SINGLE_CHANNEL_TYPES:
        return (kind,), "type"
    described = tuple(label.strip() for label in s.channel_labels)
    if len(described) == n and all(described):
        return described, "stream"
    return (), None
