"""Streaming rational resampling: any input rate to the model's rate, chunk by chunk.

:class:`Resampler` converts ``rate_in`` to ``rate_out`` by the rational factor ``L / M``
(``L`` = :attr:`Resampler.up`, ``M`` = :attr:`Resampler.down`; the best fraction with
``max(L, M) ≤ max_denominator``, e.g. 51.2 → 16 Hz is 5/16 and 500 → 128 Hz is 32/125) with a
polyphase linear-phase FIR: conceptually, insert ``L - 1`` zeros between input samples, low-pass
at the upsampled rate ``L × rate_in``, keep every ``M``-th sample; in practice only the products
with non-zero inputs are computed, output by output (``ceil(numtaps / L)`` multiply-adds per output
sample and channel), vectorised over each chunk.

The filter (docs/resampling.md gives the reasoning and the figures):

- passband edge ``passband × f_N`` and stopband edge ``f_N``, where ``f_N`` is the lower of the
  two Nyquist frequencies (the output's when downsampling, the input's when upsampling). Nothing
  that would fold back below the output Nyquist frequency survives with more than the stopband
  level, and no image of the input spectrum survives an upsampling;
- Kaiser window (:func:`scipy.signal.kaiserord` picks the length and β for ``attenuation_db``
  over that transition band), so the passband ripple is ±``10^(-A/20)`` (±0.009 dB at 60 dB);
- linear phase: every frequency is delayed by the same :attr:`Resampler.delay_s`
  (``(numtaps - 1) / 2`` samples at the upsampled rate), about ``0.18 / (1 - passband) / f_N``
  seconds at 60 dB (18 output samples when downsampling with the defaults).

State: the last ``ceil(numtaps / L)`` input samples and the number of samples consumed and
produced. Before the first sample the input is taken to have been constant at the first sample's
level (as :class:`~affectstream.streaming.preprocess.filters.CausalFilter` does), so a signal with
a large DC level does not start with a step transient.

Timing: output sample *j* belongs to the instant ``j / rate_out`` seconds after the first input
sample (it is computed from the inputs up to that instant), and it is emitted once the stream has
reached that instant, i.e. once the input sample at or after it has arrived (input
``ceil(j × M / L)``). After ``N`` input samples the resampler has therefore produced
``floor((N - 1) × L / M) + 1`` outputs, however the ``N`` samples were chunked: exactly the outputs
of the span the inputs cover, so a hop of ``hop_s`` seconds of input gives ``hop_s × rate_out``
outputs whenever the hop starts on a sample (the same rule as
:class:`~affectstream.streaming.preprocess.filters.Decimator`, which keeps input 0, M, 2M, …).
The delay is compensated nowhere: the value for instant *t* is the band-limited input at
``t - delay_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = ["Resampler", "rational_ratio", "resample"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_BLOCK_ELEMENTS = 1 << 20
"""Gathered input values per vectorised block (8 MB of float64): bounds the memory of a batch call
on a whole recording without a per-sample loop."""


def rational_ratio(rate_in: float, rate_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(L, M)``: the fraction ``L / M`` closest to ``rate_out / rate_in`` with
    ``max(L, M) ≤ max_denominator``.

    Rates such as 51.2 Hz are first read as the decimal they were written as (51.2 = 256/5), so
    ``rational_ratio(51.2, 16.0) == (5, 16)`` and ``rational_ratio(500.0, 128.0) == (32, 125)``.
    """
    if not (rate_in > 0 and rate_out > 0 and math.isfinite(rate_in) and math.isfinite(rate_out)):
        raise ValueError(f"rates must be finite and > 0, got {rate_in} → {rate_out}")
    exact = Fraction(rate_out).limit_denominator(10**6) / Fraction(rate_in).limit_denominator(10**6)
    ratio = exact.limit_denominator(max_denominator)
    if ratio.numerator > max_denominator:  # upsampling by a large factor: bound L too
        ratio = 1 / (1 / exact).limit_denominator(max_denominator)
    if ratio == 0:
        raise ValueError(f"{rate_in:g} → {rate_out:g} Hz needs M > {max_denominator}")
    return ratio.numerator, ratio.denominator


@dataclass
class Resampler:
    """Stateful rational resampler of (n_samples, n_channels) float64 chunks; see the module
    docstring.

    Parameters
    ----------
    rate_in, rate_out : Hz
    attenuation_db : stopband attenuation (and passband ripple ±10^(-A/20))
    passband : passband edge as a fraction of the lower Nyquist frequency
    max_denominator : bound on L and M (the ratio is approximated beyond it; see
        :attr:`rate_error`)
    """

    rate_in: float
    rate_out: float
    attenuation_db: float = 60.0
    passband: float = 0.8
    max_denominator: int = 1000
    up: int = field(init=False)
    down: int = field(init=False)
    taps: FloatArray = field(init=False, repr=False)
    """The prototype low-pass at ``up × rate_in`` (gain ``up``), length :attr:`numtaps`."""
    _bank: FloatArray = field(init=False, repr=False)  # (L, T): phase p, reversed taps
    _history: FloatArray | None = field(default=None, init=False, repr=False)
    _n_in: int = field(default=0, init=False, repr=False)
    _n_out: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.passband < 1:
            raise ValueError(f"passband must be in (0, 1), got {self.passband}")
        if self.attenuation_db <= 21:
            raise ValueError(f"attenuation_db must be > 21 dB, got {self.attenuation_db}")
        self.up, self.down = rational_ratio(self.rate_in, self.rate_out, self.max_denominator)
        fs_up = self.up * self.rate_in
        edge = min(self.rate_in, self.rate_in * self.up / self.down) / 2  # lower Nyquist
        width = (1 - self.passband) * edge
        numtaps, beta = signal.kaiserord(self.attenuation_db, width / (fs_up / 2))
        numtaps += 1 - numtaps % 2  # odd: the delay is a whole number of upsampled samples
        cutoff = (1 + self.passband) / 2 * edge  # -6 dB halfway through the transition band
        h = signal.firwin(numtaps, cutoff, window=("kaiser", beta), fs=fs_up)
        self.taps = np.asarray(h * self.up, dtype=np.float64)
        n_phase = -(-numtaps // self.up)  # T: taps per phase
        padded = np.zeros(n_phase * self.up)
        padded[:numtaps] = self.taps
        # bank[p, t] = h[p + (T - 1 - t) L]: phase p applied to T consecutive inputs, oldest first
        self._bank = np.ascontiguousarray(padded.reshape(n_phase, self.up).T[:, ::-1])

    # -- description -----------------------------------------------------------------------------

    @property
    def numtaps(self) -> int:
        return len(self.taps)

    @property
    def taps_per_output(self) -> int:
        """Multiply-adds per output sample and channel."""
        return int(self._bank.shape[1])

    @property
    def rate_out_actual(self) -> float:
        """``rate_in × L / M``: equals ``rate_out`` unless the ratio needed a larger denominator."""
        return self.rate_in * self.up / self.down

    @property
    def rate_error(self) -> float:
        """Relative error of :attr:`rate_out_actual` (0 for every rate in the issue's list)."""
        return self.rate_out_actual / self.rate_out - 1

    @property
    def passband_hz(self) -> float:
        return self.passband * min(self.rate_in, self.rate_out_actual) / 2

    @property
    def stopband_hz(self) -> float:
        return min(self.rate_in, self.rate_out_actual) / 2

    @property
    def delay_s(self) -> float:
        """Group delay (every frequency: the filter has linear phase), in seconds."""
        return (self.numtaps - 1) / 2 / (self.up * self.rate_in)

    @property
    def delay_out_samples(self) -> float:
        """:attr:`delay_s` in output samples (not necessarily whole)."""
        return self.delay_s * self.rate_out_actual

    def n_outputs(self, n_inputs: int) -> int:
        """Outputs produced after ``n_inputs`` samples in total: ``floor((N - 1) L / M) + 1``."""
        return 0 if n_inputs <= 0 else (n_inputs - 1) * self.up // self.down + 1

    # -- processing ------------------------------------------------------------------------------

    def reset(self) -> None:
        self._history = None
        self._n_in = self._n_out = 0

    def process(self, x: FloatArray) -> FloatArray:
        """Resample a chunk.

        x : ndarray, shape (n_samples, n_channels) or (n_samples,)
        returns the new output samples (``n_outputs(total in) - n_outputs(total before)`` rows)
        """
        x = np.asarray(x, dtype=np.float64)
        squeeze = x.ndim == 1
        x2 = x[:, None] if squeeze else x
        if x2.ndim != 2:
            raise ValueError(f"expected (n_samples, n_channels), got shape {x.shape}")
        n_phase = self._bank.shape[1]
        if self._history is None:
            if len(x2) == 0:
                out0: FloatArray = np.empty((0,) if squeeze else (0, x2.shape[1]))
                return out0
            # constant at the first sample's level before the stream starts (module docstring)
            self._history = np.repeat(x2[:1], n_phase, axis=0)
        elif x2.shape[1] != self._history.shape[1]:
            raise ValueError(f"chunk has {x2.shape[1]} channels, expected {self._history.shape[1]}")
        ext = np.concatenate([self._history, x2]) if len(x2) else self._history
        n_total = self._n_in + len(x2)
        j = np.arange(self._n_out, self.n_outputs(n_total), dtype=np.int64)
        y = self._filter(ext, j)
        self._history = ext[len(ext) - n_phase :].copy()
        self._n_in, self._n_out = n_total, self._n_out + len(j)
        out: FloatArray = y[:, 0] if squeeze else y
        return out

    def _filter(self, ext: FloatArray, j: IntArray) -> FloatArray:
        """Outputs ``j`` from ``ext`` = the T inputs before this chunk, then the chunk."""
        n_phase = self._bank.shape[1]
        newest = j * self.down // self.up  # absolute index of the newest input each output uses
        phase = j * self.down - newest * self.up
        start = newest - self._n_in + 1  # ext[start : start + T] are the inputs it uses
        y = np.empty((len(j), ext.shape[1]))
        offsets = np.arange(n_phase)
        block = max(1, _BLOCK_ELEMENTS // (n_phase * max(1, ext.shape[1])))
        for b in range(0, len(j), block):  # blocks of outputs, not samples: bounds the memory
            s = start[b : b + block]
            gathered = ext[s[:, None] + offsets[None, :]]  # (n, T, channels)
            y[b : b + block] = np.einsum("jt,jtc->jc", self._bank[phase[b : b + block]], gathered)
        return y


def resample(
    x: FloatArray,
    rate_in: float,
    rate_out: float,
    *,
    attenuation_db: float = 60.0,
    passband: float = 0.8,
) -> FloatArray:
    """One batch call: a fresh :class:`Resampler` over the whole of ``x``."""
    return Resampler(rate_in, rate_out, attenuation_db, passband).process(x)
