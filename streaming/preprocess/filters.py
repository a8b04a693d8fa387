"""Stateful causal filters and decimation: the same output however the input is chunked.

:class:`CausalFilter` is an SOS (second-order sections) IIR filter that carries its state ``zi``
from one call to the next. Its state is initialised on the *first chunk's level*: the steady-state
response to a constant input equal to the first sample (``sosfilt_zi × x[0]``), so a signal with a
large DC level (skin conductance at 5–20 µS, an un-referenced PPG) does not start with a huge
step transient (the mne-lsl habit, made explicit). A band-pass or high-pass has no DC response, so
this choice only changes the start-up of low-pass filters and of filters on non-zero-mean signals.

:class:`Decimator` low-passes (anti-aliasing) and keeps every ``factor``-th sample, counting the
phase across calls, so decimating a stream chunk by chunk gives the samples of one batch call.

Filters are causal (``sosfilt``, not ``sosfiltfilt``): serving cannot look into the future, and
training must see the same thing.

The filtering itself is :func:`_sosfilt_df2t`, scipy's ``sosfilt`` recurrence (transposed direct
form II, section by section, the state carried in place) compiled with numba when this module is
imported (from numba's disk cache once warm). Serving filters one hop at a time (32 samples of 32
EEG channels, 32 samples of one GSR channel): ``scipy.signal.sosfilt`` cost 95-145 µs per such
chunk, almost all of it argument handling, the compiled loop a few µs (#16). Its output equals
scipy's to rounding (tested). Without numba, or if compiling fails, ``scipy.signal.sosfilt`` is
used: the same output, slower.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from affectstream.streaming.preprocess.spec import FilterSpec

__all__ = ["CausalFilter", "Decimator", "design_sos", "is_compiled"]

FloatArray = NDArray[np.float64]

log = logging.getLogger(__name__)


def _sosfilt_df2t(sos: FloatArray, x: FloatArray, zi: FloatArray) -> FloatArray:
    """Filter ``x`` (n_samples, n_channels) through the sections ``sos`` (n_sections, 6; a0 = 1)
    from the state ``zi`` (n_sections, 2, n_channels), which is updated in place: scipy's
    ``sosfilt`` recurrence, one sample at a time."""
    n, ch = x.shape
    y = np.empty((n, ch))
    for i in range(n):
        for c in range(ch):
            v = x[i, c]
            for s in range(sos.shape[0]):
                out = sos[s, 0] * v + zi[s, 0, c]
                zi[s, 0, c] = sos[s, 1] * v - sos[s, 4] * out + zi[s, 1, c]
                zi[s, 1, c] = sos[s, 2] * v - sos[s, 5] * out
                v = out
            y[i, c] = v
    return y


_Kernel = Callable[[FloatArray, FloatArray, FloatArray], FloatArray]


def _compile() -> tuple[_Kernel | None, bool]:
    """The kernel compiled with numba, or ``None`` (scipy's sosfilt is used) without numba or
    when compiling fails."""
    try:
        import numba
    except ImportError:
        log.info("numba is not installed: filters run with scipy.signal.sosfilt")
        return None, False
    f8 = numba.float64
    sos = numba.types.Array(f8, 2, "C", readonly=True)  # the designs are shared, read-only
    signature = f8[:, ::1](sos, f8[:, ::1], f8[:, :, ::1])
    try:
        compiled: Any = numba.njit(signature, cache=True)(_sosfilt_df2t)
    except Exception:  # e.g. no writable cache: compile without one
        try:
            compiled = numba.njit(signature)(_sosfilt_df2t)
        except Exception:
            log.exception("compiling the filter kernel failed; filters run with scipy")
            return None, False
    kernel: _Kernel = compiled
    return kernel, True


_kernel, _compiled = _compile()


def is_compiled() -> bool:
    """Whether :class:`CausalFilter` runs the compiled kernel, not ``scipy.signal.sosfilt``."""
    return _compiled


def design_sos(spec: FilterSpec, fs: float) -> FloatArray:
    """SOS coefficients of ``spec`` at sampling rate ``fs``; checks the frequencies fit."""
    return _designed(spec, float(fs))[0].copy()


@functools.lru_cache(maxsize=256)
def _designed(spec: FilterSpec, fs: float) -> tuple[FloatArray, FloatArray]:
    """:func:`design_sos` and its ``sosfilt_zi``, designed once per (spec, rate), read-only: a
    Butterworth design cost ~2.4 ms, and every pipeline reset (a gap, a window skipped by a
    consumer that fell behind) designed all of its filters again (#16)."""
    sos = _design(spec, fs)
    zi = np.asarray(signal.sosfilt_zi(sos), dtype=np.float64)
    sos.flags.writeable = False
    zi.flags.writeable = False
    return sos, zi


def _design(spec: FilterSpec, fs: float) -> FloatArray:
    nyq = fs / 2
    if any(not 0 < f < nyq for f in spec.freqs):
        raise ValueError(f"{spec.kind} at {spec.freqs} Hz does not fit below Nyquist ({nyq:g} Hz)")
    if spec.kind == "notch":
        b, a = signal.iirnotch(spec.freqs[0], spec.notch_q, fs)
        return np.asarray(signal.tf2sos(b, a), dtype=np.float64)
    wn = spec.freqs[0] if len(spec.freqs) == 1 else list(spec.freqs)
    sos = signal.butter(spec.order, wn, btype=spec.kind, fs=fs, output="sos")
    return np.asarray(sos, dtype=np.float64)


@dataclass
class CausalFilter:
    """An SOS filter with carried state, applied along axis 0 of (n_samples, n_channels) arrays.

    Use :meth:`from_spec` to design it. :meth:`process` may be called with chunks of any size
    (including 0); the concatenated outputs equal one call on the concatenated input.
    """

    sos: FloatArray
    _zi: FloatArray | None = field(default=None, init=False, repr=False)
    _zi_base: FloatArray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        sos = np.ascontiguousarray(self.sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6 or len(sos) == 0:
            raise ValueError(f"sos must have shape (n_sections, 6), got {list(sos.shape)}")
        if not (sos[:, 3] == 1).all():
            raise ValueError("sos[:, 3] (each section's a0) must be 1")
        if sos.flags.writeable:  # the kernel takes it read-only (a design may be shared)
            sos = sos.copy()
            sos.flags.writeable = False
        self.sos = sos

    @classmethod
    def from_spec(cls, spec: FilterSpec, fs: float) -> CausalFilter:
        sos, zi = _designed(spec, float(fs))  # shared, read-only: the filter never writes them
        f = cls(sos)
        f._zi_base = zi
        return f

    def reset(self) -> None:
        self._zi = None

    def process(self, x: FloatArray) -> FloatArray:
        """Filter a chunk.

        x : ndarray, shape (n_samples, n_channels) or (n_samples,)
        """
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return x.copy()
        if x.ndim > 2:
            raise ValueError(f"x must be (n_samples,) or (n_samples, n_channels), got {x.shape}")
        squeeze = x.ndim == 1
        x2 = x[:, None] if squeeze else x
        if self._zi is None:
            # steady state for a constant input at the first sample's level (see module docstring)
            if self._zi_base is None:
                self._zi_base = np.asarray(signal.sosfilt_zi(self.sos), dtype=np.float64)
            base = self._zi_base  # (n_sections, 2)
            self._zi = np.ascontiguousarray(base[:, :, None] * x2[0][None, None, :])
        if _kernel is not None:
            y = _kernel(self.sos, np.ascontiguousarray(x2), self._zi)  # zi carried in place
        else:
            # scipy's Cython wants a writable sos (a memoryview): a copy, on this slow path only
            y, self._zi = signal.sosfilt(self.sos.copy(), x2, axis=0, zi=self._zi)
        out: FloatArray = y[:, 0] if squeeze else y
        return out


@dataclass
class Decimator:
    """Anti-alias low-pass then keep every ``factor``-th sample, with carried state and phase.

    The low-pass is a Butterworth of ``order`` at ``cutoff_ratio`` × the output Nyquist frequency.
    Output sample *j* is input sample ``j × factor`` (the first input sample is kept).
    """

    factor: int
    fs_in: float
    order: int = 6
    cutoff_ratio: float = 0.8
    _filter: CausalFilter = field(init=False, repr=False)
    _phase: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"decimation factor must be ≥ 1, got {self.factor}")
        fs_out = self.fs_in / self.factor
        self._filter = CausalFilter.from_spec(
            FilterSpec("lowpass", (self.cutoff_ratio * fs_out / 2,), self.order), self.fs_in
        )

    @property
    def fs_out(self) -> float:
        return self.fs_in / self.factor

    @property
    def delay_s(self) -> float:
        """Group delay of the anti-aliasing low-pass at 0 Hz, in seconds (a Butterworth's phase is
        not linear: the delay grows towards the cut-off). 0 when ``factor`` is 1."""
        if self.factor == 1:
            return 0.0
        b, a = signal.sos2tf(self._filter.sos)
        _, gd = signal.group_delay((b, a), w=[1e-6], fs=self.fs_in)
        return float(gd[0]) / self.fs_in

    def reset(self) -> None:
        self._filter.reset()
        self._phase = 0

    def process(self, x: FloatArray) -> FloatArray:
        """Decimate a chunk; x : (n_samples[, n_channels]) → (n_kept[, n_channels])."""
        y = self._filter.process(x) if self.factor > 1 else np.asarray(x, dtype=np.float64)
        first = (-self._phase) % self.factor  # index in this chunk of the next sample to keep
        self._phase = (self._phase + len(y)) % self.factor
        return y[first :: self.factor].copy()
