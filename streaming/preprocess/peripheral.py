"""Peripheral features: Bimodal-LSTM step statistics, pulse rate and breathing rate.

The six statistics per channel and step (Tang et al.): max, min, mean, standard deviation,
variance, sum of squares — 8 DEAP peripheral channels × 6 = 48 per step. Like the EEG DE features,
each step uses only its own samples, so offline and online steps agree exactly.

Pulse rate (from PPG) and breathing rate (from respiration) are quality/sanity signals: the dominant
frequency of the (detrended, Hann-windowed) signal within a physiological band, refined by
parabolic interpolation between FFT bins. They say whether a sensor carries a plausible signal, not
a clinical measurement.

HRV (:func:`hrv_series`): athar70's fifth MLSTM-FCN channel, computed on a window of PPG alone so
that training (windows cut from a trial) and serving (the trailing window) compute the same
thing: the absolute change between successive inter-beat intervals, held from beat to beat.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from affectstream.streaming.preprocess.steps import split_steps

__all__ = [
    "PERIPH_STATS",
    "breathing_rate",
    "dominant_rate",
    "hrv_series",
    "periph_stats",
    "ppg_beats",
    "pulse_rate",
]

FloatArray = NDArray[np.float64]

PERIPH_STATS = ("max", "min", "mean", "std", "var", "sumsq")


def periph_stats(x: FloatArray, fs: float, *, step_s: float = 2.0) -> FloatArray:
    """Six statistics per channel on consecutive steps.

    x : ndarray, shape (n_samples, n_channels); n_samples a multiple of ``step_s × fs``
    returns ndarray, shape (n_steps, 6 × n_channels), statistic-major in :data:`PERIPH_STATS` order
    """
    s = split_steps(x, fs, step_s)
    stats = [s.max(1), s.min(1), s.mean(1), s.std(1), s.var(1), (s**2).sum(1)]
    return np.concatenate(stats, axis=1)


@functools.lru_cache(maxsize=32)
def _rate_plan(
    n: int, fs: float, lo_hz: float, hi_hz: float
) -> tuple[FloatArray, FloatArray, float, int, NDArray[np.intp], float, float]:
    """What :func:`dominant_rate` computes per segment length, once: the centred sample index
    and its sum of squares (the linear detrend's least-squares fit), the Hann window, the FFT
    length, the band's bins, their first frequency and the bin width (the service asks every
    second for the same lengths)."""
    tc = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    n_fft = max(n, int(8 * fs / lo_hz))  # zero-pad for a finer grid on short signals
    freqs = np.fft.rfftfreq(n_fft, 1 / fs)
    band = np.flatnonzero((freqs >= lo_hz) & (freqs <= hi_hz))
    for a in (tc, window := np.hanning(n), band):
        a.flags.writeable = False
    return tc, window, float(tc @ tc), n_fft, band, float(freqs[0]), float(freqs[1] - freqs[0])


def dominant_rate(x: FloatArray, fs: float, lo_hz: float, hi_hz: float) -> float | None:
    """Dominant frequency of ``x`` in [lo_hz, hi_hz], in events per minute; ``None`` if the
    signal is flat or too short to resolve the band (fewer than 2 cycles of ``lo_hz``).

    The signal is detrended (its least-squares line removed, as ``scipy.signal.detrend``),
    Hann-windowed and zero-padded to at least 8 cycles of ``lo_hz``; the strongest bin of the
    power spectrum within the band is refined by a parabola through the log power of it and its
    neighbours."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if len(x) < 2 * fs / lo_hz or np.ptp(x) == 0 or not np.isfinite(x).all():
        return None
    tc, window, tss, n_fft, band, f0, df = _rate_plan(len(x), float(fs), lo_hz, hi_hz)
    if len(band) < 3:
        return None
    slope = float(tc @ x) / tss
    f = np.fft.rfft((x - x.mean() - slope * tc) * window, n_fft)
    spec = f.real**2 + f.imag**2
    k = int(band[np.argmax(spec[band])])
    if 0 < k < len(spec) - 1:  # parabolic interpolation on the log spectrum
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-300)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    else:
        offset = 0.0
    return float((f0 + k * df + offset * df) * 60.0)


def pulse_rate(ppg: FloatArray, fs: float) -> float | None:
    """Pulse rate in beats per minute from a PPG segment (40–210 bpm band)."""
    return dominant_rate(ppg, fs, 40 / 60, 210 / 60)


def breathing_rate(resp: FloatArray, fs: float) -> float | None:
    """Breathing rate in breaths per minute from a respiration-belt segment (6–42 per min)."""
    return dominant_rate(resp, fs, 6 / 60, 42 / 60)


PPG_BAND_HZ = (0.75, 3.0)
"""athar70's PPG band before peak detection (45–180 beats per minute)."""


def ppg_beats(ppg: FloatArray, fs: float) -> NDArray[np.int64]:
    """Sample indices of the pulse peaks of a PPG segment; empty if it is flat or too short.

    The segment is band-passed to :data:`PPG_BAND_HZ` (2nd-order Butterworth, forward-backward
    over the segment only), then its local maxima are taken that stand out by at least half the
    filtered signal's SD and lie at least 0.6 beat apart, the beat length coming from the
    segment's dominant pulse rate (:func:`pulse_rate`; 210 bpm when it has none).
    """
    x = np.asarray(ppg, dtype=np.float64).ravel()
    sos = signal.butter(2, PPG_BAND_HZ, btype="bandpass", fs=fs, output="sos")
    if len(x) <= 3 * (2 * len(sos) + 1) or np.ptp(x) == 0 or not np.isfinite(x).all():
        return np.zeros(0, dtype=np.int64)
    y = signal.sosfiltfilt(sos, x - x.mean())
    bpm = pulse_rate(y, fs) or 210.0
    distance = max(1, int(0.6 * fs * 60.0 / bpm))
    peaks, _ = signal.find_peaks(y, distance=distance, prominence=0.5 * float(y.std()))
    out: NDArray[np.int64] = np.asarray(peaks, dtype=np.int64)
    return out


def hrv_series(ppg: FloatArray, fs: float) -> FloatArray:
    """athar70's HRV channel for one PPG segment, one value per sample, in seconds.

    Beats from :func:`ppg_beats`; inter-beat intervals ``IBI_k = (b_k − b_{k−1}) / fs``; at each
    beat from the third on, ``|IBI_k − IBI_{k−1}|`` is held until the next such beat. athar70 leaves
    the samples before the first value and after the last beat as NaN; here the first value is
    held back to the start and the last one to the end (a model input cannot be NaN). Fewer than
    three beats: all zeros.

    ppg : ndarray, shape (n_samples,); returns ndarray, shape (n_samples,)
    """
    n = len(ppg)
    beats = ppg_beats(ppg, fs)
    out = np.zeros(n)
    if len(beats) < 3:
        return out
    ibi = np.diff(beats) / fs
    change = np.abs(np.diff(ibi))  # one per beat from the third on
    at = beats[2:]
    which = np.searchsorted(at, np.arange(n), side="right") - 1  # the latest beat at or before
    out[:] = change[np.maximum(which, 0)]
    return out
