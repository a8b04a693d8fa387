"""Fault injection for the replays: rehearse a bad day (docs/faults.md).

A :class:`FaultSpec` is parsed from a spec string such as
``"drop=0.01,jitter=5ms,nan=0.001,restart=30s,clock-step=0.5s"`` (:func:`parse_faults`) and handed
to the one player (:class:`affectstream.streaming.replay.player.Player`, attribute ``faults``), so
every adapter (DEAP, PMEmo, the benchmark's pusher) gets the same faults.

Grammar: comma-separated ``key=value`` items, each key at most once. Durations take a unit (``ms``,
``s``, ``min``; a bare number is seconds); probabilities are a number in [0, 1) or a percentage
(``1%``); ``clock-step`` may be negative.

=====================  =============================================================================
key                    fault
=====================  =============================================================================
``drop=P``             about a fraction P of each data stream's samples never leave the outlet, in
                       runs of ``drop-run`` (default 50 ms, ≥ 1 sample); streams independent
``nan=P``              about a fraction P of each data stream's samples are pushed as NaN (every
                       channel), in runs of ``nan-run`` (default one sample)
``jitter=T``           every data sample's timestamp moves by up to ±T: uniform on [−T, T]
                       (``jitter-dist=uniform``, default) or normal with standard deviation T
                       (``jitter-dist=normal``)
``clock-step=S``       every timestamp (data and markers) from ``clock-step-at`` (default 10 s) on
                       is shifted by S; with ``clock-step-every=T`` again every T (steps add up)
``restart=T``          every T every outlet is destroyed, and re-created ``restart-down`` (default
                       1 s) later, as a restarted producer would; samples due meanwhile are lost,
                       markers due meanwhile go out when the outlets are back
``stall=T``            every ``stall-every`` (default 30 s) nothing is pushed for T; the backlog
                       then goes out at once with its original timestamps (nothing is lost)
=====================  =============================================================================

Times (``clock-step-at``, the periods) are seconds of wall time since the replay's clock started.
Every random decision (which samples drop or turn NaN, each jitter) is a function of the seed
(``--faults-seed``), the stream and the sample's position in the played sequence, never of the push
timing, so one seed gives the same faults on every run. Markers are never dropped, jittered or
NaN'd: they are the ground truth a consumer scores against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FaultInjector", "FaultSpec", "FaultSpecError", "parse_faults"]


class FaultSpecError(ValueError):
    """A ``--faults`` spec string that cannot be used; the message says what and why."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """The faults to inject (all off by default); see the module docstring."""

    drop: float = 0.0
    drop_run: float = 0.05
    nan: float = 0.0
    nan_run: float = 0.0  # 0: one sample
    jitter: float = 0.0
    jitter_dist: str = "uniform"
    clock_step: float = 0.0
    clock_step_at: float = 10.0
    clock_step_every: float = 0.0  # 0: once
    restart: float = 0.0
    restart_down: float = 1.0
    stall: float = 0.0
    stall_every: float = 30.0

    @property
    def active(self) -> bool:
        """Whether any fault is on."""
        return bool(self.drop or self.nan or self.jitter or self.clock_step) or bool(
            self.restart or self.stall
        )

    def describe(self) -> str:
        """The spec in its canonical string form (only the keys that differ from the defaults)."""
        default = FaultSpec()
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                key = f.name.replace("_", "-")
                kind = _KEYS[key][0]
                if kind == "p":
                    parts.append(f"{key}={value:g}")
                elif kind == "word":
                    parts.append(f"{key}={value}")
                else:
                    parts.append(f"{key}={value:g}s")
        return ",".join(parts) or "none"


# key -> (kind, the fault it modifies or None). kind: p (probability), dur (duration ≥ 0),
# sdur (signed duration), word.
_KEYS: dict[str, tuple[str, str | None]] = {
    "drop": ("p", None),
    "drop-run": ("dur", "drop"),
    "nan": ("p", None),
    "nan-run": ("dur", "nan"),
    "jitter": ("dur", None),
    "jitter-dist": ("word", "jitter"),
    "clock-step": ("sdur", None),
    "clock-step-at": ("dur", "clock-step"),
    "clock-step-every": ("dur", "clock-step"),
    "restart": ("dur", None),
    "restart-down": ("dur", "restart"),
    "stall": ("dur", None),
    "stall-every": ("dur", "stall"),
}
_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z%]*)$")


def _duration(key: str, text: str, signed: bool) -> float:
    m = _NUMBER.match(text.strip().lower())
    if m is None or m.group(2) not in (*_UNITS, ""):
        raise FaultSpecError(
            f"{key}={text}: expected a duration such as 500ms, 2s or 1min"
            + (" (may be negative)" if signed else "")
        )
    value = float(m.group(1)) * _UNITS.get(m.group(2), 1.0)
    if not math.isfinite(value) or (value < 0 and not signed):
        raise FaultSpecError(f"{key}={text}: must be a finite duration ≥ 0")
    return value


def _probability(key: str, text: str) -> float:
    m = _NUMBER.match(text.strip().lower())
    if m is None or m.group(2) not in ("", "%"):
        raise FaultSpecError(f"{key}={text}: expected a probability such as 0.01 or 1%")
    value = float(m.group(1)) / (100.0 if m.group(2) == "%" else 1.0)
    if not 0.0 <= value < 1.0:
        raise FaultSpecError(f"{key}={text}: a probability must be within [0, 1)")
    return value


def parse_faults(text: str | None) -> FaultSpec:
    """Parse a ``--faults`` spec (see the module docstring); ``None``/empty → no fault.

    Raises :class:`FaultSpecError` naming the offending item for an unknown or repeated key, a
    missing ``=``, a malformed or out-of-range value, a modifier without its fault
    (``drop-run`` without ``drop``) and periods that cannot work (``restart-down`` ≥ ``restart``,
    ``stall`` ≥ ``stall-every``).
    """
    if text is None or not text.strip():
        return FaultSpec()
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise FaultSpecError(f"empty item in {text!r}")
        key, eq, raw = item.partition("=")
        key = key.strip().lower()
        if not eq or not raw.strip():
            raise FaultSpecError(f"{item!r}: expected key=value, e.g. drop=0.01")
        if key not in _KEYS:
            raise FaultSpecError(f"unknown fault {key!r}; known: {', '.join(_KEYS)}")
        if key in seen:
            raise FaultSpecError(f"{key} given twice")
        seen.add(key)
        kind, _ = _KEYS[key]
        name = key.replace("-", "_")
        if kind == "p":
            values[name] = _probability(key, raw)
        elif kind == "word":
            word = raw.strip().lower()
            if word not in ("uniform", "normal"):
                raise FaultSpecError(f"{key}={raw}: expected uniform or normal")
            values[name] = word
        else:
            values[name] = _duration(key, raw, signed=kind == "sdur")
    for key in seen:
        parent = _KEYS[key][1]
        if parent is not None and parent not in seen:
            raise FaultSpecError(f"{key} needs {parent}=… in the same spec")
    spec = FaultSpec(**values)
    if "restart" in seen and spec.restart <= 0:
        raise FaultSpecError("restart=T needs a period T > 0")
    if spec.restart and not 0 < spec.restart_down < spec.restart:
        raise FaultSpecError(
            f"restart-down ({spec.restart_down:g} s) must be > 0 and shorter than the restart "
            f"period ({spec.restart:g} s)"
        )
    if "stall" in seen and spec.stall <= 0:
        raise FaultSpecError("stall=T needs a duration T > 0")
    if spec.stall and not spec.stall < spec.stall_every:
        raise FaultSpecError(
            f"stall ({spec.stall:g} s) must be shorter than stall-every ({spec.stall_every:g} s)"
        )
    if "clock-step" in seen and spec.clock_step == 0:
        raise FaultSpecError("clock-step=S needs a step S ≠ 0")
    return spec


_BLOCK = 4096  # samples per random block: decisions depend on (seed, fault, stream, position)
_DROP, _NAN, _JITTER = 1, 2, 3


@dataclass
class FaultInjector:
    """Applies a :class:`FaultSpec` to the player's pushes (one injector per play).

    ``rate``: samples per second of wall time (the player's rate); positions are sample indices
    of the played sequence (across loops). Counters (``dropped``, ``nan``, ``restarts``,
    ``stalls``, ``clock_steps``) say what was injected, per data stream for samples.
    """

    spec: FaultSpec
    seed: int
    rate: float
    n_streams: int
    dropped: list[int] = field(init=False)
    nan: list[int] = field(init=False)
    restarts: int = field(default=0, init=False)
    stalls: int = field(default=0, init=False)
    clock_steps: int = field(default=0, init=False)
    _cache: dict[tuple[int, int, int], NDArray[np.float64]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.dropped = [0] * self.n_streams
        self.nan = [0] * self.n_streams

    # -- random blocks -----------------------------------------------------------------------

    def _block(self, tag: int, stream: int, block: int) -> NDArray[np.float64]:
        key = (tag, stream, block)
        out = self._cache.get(key)
        if out is None:
            rng = np.random.default_rng([self.seed, tag, stream, block])
            normal = tag == _JITTER and self._normal
            out = rng.standard_normal(_BLOCK) if normal else rng.random(_BLOCK)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = out
        return out

    @property
    def _normal(self) -> bool:
        return self.spec.jitter_dist == "normal"

    def _draws(self, tag: int, stream: int, a: int, b: int) -> NDArray[np.float64]:
        """The stream's random numbers for positions [a, b) (a ≥ 0)."""
        parts = []
        pos = a
        while pos < b:
            blk, off = divmod(pos, _BLOCK)
            take = min(b - pos, _BLOCK - off)
            parts.append(self._block(tag, stream, blk)[off : off + take])
            pos += take
        return np.concatenate(parts) if parts else np.empty(0)

    def _run_mask(self, tag: int, stream: int, a: int, b: int, p: float, run: int) -> NDArray[Any]:
        """Positions [a, b) inside a run of ``run`` samples starting where a draw < p / run."""
        lo = max(0, a - run + 1)
        starts = self._draws(tag, stream, lo, b) < p / run
        c = np.concatenate(([0], np.cumsum(starts)))
        idx = np.arange(a, b) - lo  # index into starts of each position
        first = np.maximum(idx - run + 1, 0)
        return (c[idx + 1] - c[first]) > 0

    def _run_samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.rate))

    # -- what the player asks ---------------------------------------------------------------

    def _steps(self, position: NDArray[np.float64]) -> NDArray[np.float64]:
        s = self.spec
        first = s.clock_step_at * self.rate
        after = position >= first
        if s.clock_step_every <= 0:
            return after.astype(np.float64)
        n = 1 + np.floor((position - first) / (s.clock_step_every * self.rate))
        return np.where(after, n, 0.0)

    def clock_offset(self, position: float) -> float:
        """The timestamp shift (s) of the sample (or marker) at ``position``."""
        if not self.spec.clock_step:
            return 0.0
        return self.spec.clock_step * float(self._steps(np.array([float(position)]))[0])

    def restart_phase(self, wall_s: float) -> tuple[int, bool]:
        """(number of the restart cycle, whether the outlets are down) at ``wall_s``."""
        s = self.spec
        if not s.restart or wall_s < s.restart:
            return 0, False
        n = int(wall_s // s.restart)
        return n, wall_s - n * s.restart < s.restart_down

    def stalled(self, wall_s: float) -> tuple[int, bool]:
        """(number of the stall, whether pushing is held) at ``wall_s``."""
        s = self.spec
        if not s.stall or wall_s < s.stall_every:
            return 0, False
        n = int(wall_s // s.stall_every)
        return n, wall_s - n * s.stall_every < s.stall

    def apply(
        self, stream: int, position: int, data: NDArray[np.float32], t0: float
    ) -> tuple[NDArray[np.float32], NDArray[np.float64]] | None:
        """The chunk of ``stream`` at ``position`` as it is pushed: (samples, per-sample
        timestamps), ``None`` if every sample is dropped. ``t0``: the clock's start; sample
        *k* is nominally stamped ``t0 + k / rate``."""
        s = self.spec
        n = len(data)
        a, b = position, position + n
        ts = t0 + np.arange(a, b, dtype=np.float64) / self.rate
        if s.clock_step:
            steps = self._steps(np.arange(a, b, dtype=np.float64))
            ts += s.clock_step * steps
            self.clock_steps = max(self.clock_steps, int(steps[-1]))
        if s.jitter:
            u = self._draws(_JITTER, stream, a, b)
            ts += u * s.jitter if self._normal else (2 * u - 1) * s.jitter
        if s.nan:
            run = self._run_samples(s.nan_run) if s.nan_run else 1
            mask = self._run_mask(_NAN, stream, a, b, s.nan, run)
            if mask.any():
                data = data.copy()
                data[mask] = np.nan
                self.nan[stream] += int(mask.sum())
        if s.drop:
            keep = ~self._run_mask(_DROP, stream, a, b, s.drop, self._run_samples(s.drop_run))
            if not keep.all():
                self.dropped[stream] += int((~keep).sum())
                if not keep.any():
                    return None
                data, ts = data[keep], ts[keep]
        return data, ts

    def report(self) -> dict[str, Any]:
        """What was injected so far (JSON-ready)."""
        return {
            "spec": self.spec.describe(),
            "seed": self.seed,
            "samples_dropped": list(self.dropped),
            "samples_nan": list(self.nan),
            "restarts": self.restarts,
            "stalls": self.stalls,
            "clock_steps": self.clock_steps,
        }
