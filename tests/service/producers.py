"""Device-like LSL producers for end-to-end tests: outlets shaped as real devices describe
themselves (type spelling, channel count, labels or none, unit, rate), fed with synthetic but
plausible signals in real time from a background thread.

Every signal is a function of the LSL timestamp of its sample, and the samples of a stream at
``srate`` are stamped on the grid ``k / srate`` of the LSL clock: two devices that publish the
same signal at the same rate therefore publish the same values at the same times (one in µS, one
in kΩ, say), whatever moment each was started.

Typical use::

    with Device(session_name, [skin_conductance("gsr", "GSR", 50.0, label="GSR", unit="µS")]):
        ...  # outlets "<session_name>-gsr" publish until the block ends

Stream source ids are ``<prefix>-<key>``: a session matches them with
``{"source_id_prefix": prefix + "-"}``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEAP_EEG",
    "Device",
    "Signal",
    "StreamSpec",
    "eeg",
    "eeg_signal",
    "ppg",
    "ppg_signal",
    "resp",
    "resp_signal",
    "skin_conductance",
    "skin_conductance_us",
]

FloatArray = NDArray[np.float64]
Signal = Callable[[FloatArray], FloatArray]
"""LSL timestamps, shape (n,) → values, shape (n, n_channels)."""

DEAP_EEG = (
    "Fp1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 Oz Pz "
    "Fp2 AF4 Fz F4 F8 FC6 FC2 Cz C4 T8 CP6 CP2 P4 P8 PO4 O2"
).split()
"""The 32 electrodes of a lab (BioSemi, DEAP) cap in the lab's column order."""


# -- signals (functions of the LSL time, so two devices agree sample for sample) ----------------


def skin_conductance_us(t: FloatArray) -> FloatArray:
    """Skin conductance in µS, shape (n,): a tonic level of 4.5 µS drifting ±0.3 µS over 40 s,
    plus a skin-conductance response (0.4 µS, rise ~0.75 s, recovery ~2 s) every 7 s."""
    tonic = 4.5 + 0.3 * np.sin(2 * np.pi * t / 40.0)
    phasic = np.zeros_like(t)
    for back in (0, 1, 2):  # the latest responses overlap
        onset = (np.floor(t / 7.0) - back) * 7.0
        dt = t - onset
        phasic += 0.4 * (1 - np.exp(-dt / 0.75)) * np.exp(-dt / 2.0)
    out: FloatArray = tonic + phasic
    return out


def ppg_signal(t: FloatArray) -> FloatArray:
    """A photoplethysmogram at 72 beats/min, shape (n, 1): a systolic peak and a dicrotic
    notch (two harmonics)."""
    phase = 2 * np.pi * 1.2 * t
    return (0.6 * np.sin(phase) + 0.25 * np.sin(2 * phase + 0.8) + 1.0)[:, None]


def resp_signal(t: FloatArray) -> FloatArray:
    """A respiration belt at 15 breaths/min (0.25 Hz), shape (n, 1), arbitrary units."""
    return (np.sin(2 * np.pi * 0.25 * t) * 200.0 + 1000.0)[:, None]


def eeg_signal(n_ch: int, seed: int = 0) -> Signal:
    """EEG in µV, shape (n, n_ch): 10 µV alpha (10 Hz, a phase per channel) over white noise
    (5 µV rms) and a slow 1 µV drift."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, n_ch)

    def signal(t: FloatArray) -> FloatArray:
        alpha = 10.0 * np.sin(2 * np.pi * 10.0 * t[:, None] + phases)
        drift = np.sin(2 * np.pi * 0.1 * t[:, None])
        noise = rng.normal(0.0, 5.0, (len(t), n_ch))
        out: FloatArray = alpha + drift + noise
        return out

    return signal


# -- stream shapes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSpec:
    """One outlet as a device describes it.

    key : source id suffix (``<prefix>-<key>``) and name
    type : the LSL type as the device spells it ("EDA", "gsr", "SC", "BVP", …)
    labels : channel labels written to ``<channels>``; ``None``: no labels (as many devices)
    unit : unit of every channel (``<unit>``); ``None``: none said
    channel_type : ``<type>`` of each channel (only written with labels or a unit)
    """

    key: str
    type: str
    n_channels: int
    srate: float
    signal: Signal
    labels: tuple[str, ...] | None = None
    unit: str | None = None
    channel_type: str | None = None

    def info(self, prefix: str) -> object:
        import pylsl

        info = pylsl.StreamInfo(
            f"{prefix} {self.key}",
            self.type,
            self.n_channels,
            self.srate,
            "float32",
            f"{prefix}-{self.key}",
        )
        if self.labels is not None or self.unit is not None:
            channels = info.desc().append_child("channels")
            for i in range(self.n_channels):
                ch = channels.append_child("channel")
                if self.labels is not None:
                    ch.append_child_value("label", self.labels[i])
                if self.unit is not None:
                    ch.append_child_value("unit", self.unit)
                if self.channel_type is not None:
                    ch.append_child_value("type", self.channel_type)
        return info


def skin_conductance(
    key: str,
    kind: str,
    srate: float,
    *,
    label: str | None = None,
    unit: str | None = None,
    kohm: bool = False,
) -> StreamSpec:
    """A one-channel skin conductance stream (µS), or with ``kohm`` the skin resistance in kΩ
    (1000 / µS) as some amplifiers send it."""

    def signal(t: FloatArray) -> FloatArray:
        us = skin_conductance_us(t)
        return (1000.0 / us if kohm else us)[:, None]

    labels = None if label is None else (label,)
    return StreamSpec(key, kind, 1, srate, signal, labels, unit, "EDA" if labels else None)


def ppg(key: str, kind: str, srate: float, *, label: str | None = None) -> StreamSpec:
    labels = None if label is None else (label,)
    return StreamSpec(key, kind, 1, srate, ppg_signal, labels, None, "PPG" if labels else None)


def resp(key: str, kind: str, srate: float, *, label: str | None = None) -> StreamSpec:
    labels = None if label is None else (label,)
    return StreamSpec(key, kind, 1, srate, resp_signal, labels, None, "RESP" if labels else None)


def eeg(
    key: str, kind: str, srate: float, labels: Sequence[str] | None, n_channels: int | None = None
) -> StreamSpec:
    """An EEG amplifier or headband: ``labels`` (then µV units are said too) or ``None`` with
    ``n_channels`` columns and no description."""
    n = len(labels) if labels is not None else n_channels
    assert n is not None, "give labels or n_channels"
    return StreamSpec(
        key,
        kind,
        n,
        srate,
        eeg_signal(n),
        None if labels is None else tuple(labels),
        None if labels is None else "microvolts",
        None if labels is None else "EEG",
    )


# -- the device ------------------------------------------------------------------------------------


class _Running:
    """One outlet and how far it has published (samples on the grid k / srate)."""

    def __init__(self, spec: StreamSpec, prefix: str) -> None:
        import pylsl

        self.spec = spec
        self.outlet = pylsl.StreamOutlet(spec.info(prefix), chunk_size=0, max_buffered=60)
        self.next_k = math.ceil(pylsl.local_clock() * spec.srate)  # first sample from now on

    def push_due(self, now: float) -> int:
        due = math.floor(now * self.spec.srate)  # samples stamped at or before now
        if due < self.next_k:
            return 0
        k = np.arange(self.next_k, due + 1, dtype=np.float64)
        t = k / self.spec.srate
        values = np.asarray(self.spec.signal(t), dtype=np.float32).reshape(len(t), -1)
        self.outlet.push_chunk(values, t.tolist())
        self.next_k = due + 1
        return len(t)


class Device:
    """Outlets ``<prefix>-<key>`` for ``streams``, fed in real time (every ``chunk_s``) from a
    background thread until :meth:`stop` (or the end of the ``with`` block).

    :meth:`restart` closes one outlet and opens it again under the same source id with another
    shape (e.g. another rate), as a device that is reconfigured or replugged.
    """

    def __init__(self, prefix: str, streams: Sequence[StreamSpec], chunk_s: float = 0.03) -> None:
        self.prefix = prefix
        self.specs = {s.key: s for s in streams}
        self.chunk_s = chunk_s
        self.pushed: dict[str, int] = dict.fromkeys(self.specs, 0)
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> Device:
        with self._lock:
            for key, spec in self.specs.items():
                self._running[key] = _Running(spec, self.prefix)
        self._thread = threading.Thread(target=self._run, name=f"device {self.prefix}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._running.clear()  # the outlets go away with their last reference

    def __enter__(self) -> Device:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def restart(self, key: str, gap_s: float = 0.5, **changes: object) -> None:
        """Close outlet ``key``, wait ``gap_s`` and open it again with ``changes`` applied to its
        spec (``srate=51.2``, …), under the same source id."""
        with self._lock:
            self._running.pop(key, None)  # closes the outlet: its inlets see it lost
        time.sleep(gap_s)
        spec = replace(self.specs[key], **changes)  # type: ignore[arg-type]
        self.specs[key] = spec
        running = _Running(spec, self.prefix)
        with self._lock:
            self._running[key] = running

    def _run(self) -> None:
        import pylsl

        try:
            while not self._stop.is_set():
                now = pylsl.local_clock()
                with self._lock:
                    for key, running in self._running.items():
                        self.pushed[key] += running.push_due(now)
                self._stop.wait(self.chunk_s)
        except BaseException as e:  # reported by the test, not lost in the thread
            self.error = e
            raise
