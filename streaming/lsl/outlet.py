"""LSL outlets described by value: the one place (with :mod:`.inlet`) that talks to pylsl.

An :class:`OutletSpec` says everything a consumer sees of a stream before its first sample — name,
type, ``source_id``, rate, format, channel labels/types/units and a few description fields — and
:func:`open_outlet` turns it into a live ``pylsl.StreamOutlet``. The replays build specs; they
never import pylsl themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pylsl

__all__ = ["IRREGULAR_RATE", "ChannelDesc", "Outlet", "OutletSpec", "open_outlet"]

IRREGULAR_RATE = float(pylsl.IRREGULAR_RATE)
"""The nominal rate of an irregular stream (markers): 0."""

Outlet = pylsl.StreamOutlet
"""A live outlet: ``push_chunk(data, timestamp)``, ``push_sample(values, timestamp)``,
``wait_for_consumers(timeout)``."""


@dataclass(frozen=True, slots=True)
class ChannelDesc:
    """One channel of an outlet as it appears in the stream's ``<channels>`` description."""

    label: str
    type: str
    unit: str


@dataclass(frozen=True, slots=True)
class OutletSpec:
    """An outlet by value.

    ``desc`` holds top-level description values (e.g. ``session``); ``groups`` holds named child
    elements with their values (e.g. ``{"replay": {"speed": "1"}}``), written in order.
    """

    name: str
    type: str
    source_id: str
    srate: float
    fmt: str
    channels: tuple[ChannelDesc, ...]
    desc: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def open_outlet(spec: OutletSpec) -> Any:
    """Create the outlet of ``spec``; it becomes visible to resolvers now."""
    info = pylsl.StreamInfo(
        name=spec.name,
        type=spec.type,
        channel_count=len(spec.channels),
        nominal_srate=spec.srate,
        channel_format=spec.fmt,
        source_id=spec.source_id,
    )
    desc = info.desc()
    for key, value in spec.desc.items():
        desc.append_child_value(key, value)
    for group, values in spec.groups.items():
        child = desc.append_child(group)
        for key, value in values.items():
            child.append_child_value(key, value)
    chans = desc.append_child("channels")
    for c in spec.channels:
        ch = chans.append_child("channel")
        ch.append_child_value("label", c.label)
        ch.append_child_value("type", c.type)
        ch.append_child_value("unit", c.unit)
    return pylsl.StreamOutlet(info)
