"""EEG features: band differential entropy, the 9×9 electrode grid, baseline and standardisation.

Differential entropy (DE) of a band-limited segment treated as Gaussian is ``½·ln(2πe·σ²)`` with σ²
the band power (docs/eeg-features.md#differential-entropy); we estimate it spectrally on each
step of ``step_s`` seconds (2 s, Hanning window, as Tang et al. for DEAP): the periodogram of the
windowed step, integrated over the band's FFT bins. Each step is computed from its own samples
only, so the features of a step are the same offline (whole trial) and online (sliding windows).

Bands (Tang et al., DEAP; γ stops at 45 Hz because DEAP's EEG is band-passed 4–45 Hz):
θ 4–8, α 8–14, β 14–31, γ 31–45 Hz; a bin belongs to a band when ``lo ≤ f < hi``. Tang et al.'s
own γ is 31–50 Hz (:func:`de_bands` with ``gamma_hi=50``, the ``de_gamma_hi_hz`` option of an
``eeg_de`` input): on DEAP its 45–50 Hz part holds only what the 4–45 Hz band-pass let through,
so that γ differs from the default by little more than the filter's roll-off.

Yang et al.'s DEAP baseline correction (:func:`deap_baseline_correct` on a whole trial; online,
the ``baseline_subtract`` option of the preprocessing, which calls :func:`baseline_chunk` and
:func:`subtract_chunk` as the trial function does): the mean one-second chunk of the baseline is
subtracted from every one-second chunk after it.
Feature order: band-major, ``[θ: ch0 … ch31, α: ch0 … ch31, β: …, γ: …]`` → 128 values per step
for 32 channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.preprocess.montage import GRID_POSITIONS
from affectstream.streaming.preprocess.steps import split_steps

__all__ = [
    "DE_BANDS",
    "Standardizer",
    "baseline_chunk",
    "de_bands",
    "deap_baseline_correct",
    "eeg_band_de",
    "eeg_grid",
    "subtract_chunk",
]

FloatArray = NDArray[np.float64]

DE_BANDS: Mapping[str, tuple[float, float]] = {
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0),
    "gamma": (31.0, 45.0),
}


def de_bands(gamma_hi: float = 45.0) -> dict[str, tuple[float, float]]:
    """:data:`DE_BANDS` with the γ band's upper edge at ``gamma_hi`` Hz (Tang et al.: 50)."""
    return {**DE_BANDS, "gamma": (DE_BANDS["gamma"][0], float(gamma_hi))}


def eeg_band_de(
    x: FloatArray,
    fs: float,
    *,
    step_s: float = 2.0,
    bands: Mapping[str, tuple[float, float]] = DE_BANDS,
) -> FloatArray:
    """Differential entropy per band and channel on consecutive steps.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels); n_samples a multiple of ``step_s × fs``
    fs : sampling rate, Hz

    Returns
    -------
    ndarray, shape (n_steps, n_bands × n_channels), band-major (see the module docstring)
    """
    segs = split_steps(x, fs, step_s)
    step = segs.shape[1]
    win = np.hanning(step)
    spec = np.fft.rfft(segs * win[None, :, None], axis=1)
    # one-sided periodogram, V²/Hz: |X|² / (fs Σw²), doubled except at DC and Nyquist
    psd = np.abs(spec) ** 2 / (fs * np.sum(win**2))
    psd[:, 1 : (step + 1) // 2] *= 2
    freqs = np.fft.rfftfreq(step, 1 / fs)
    df = fs / step
    out = []
    for lo, hi in bands.values():
        sel = (freqs >= lo) & (freqs < hi)
        if not sel.any():
            raise ValueError(f"band {lo:g}-{hi:g} Hz holds no FFT bin at {fs:g} Hz, {step_s:g} s")
        power = psd[:, sel, :].sum(axis=1) * df  # (n_steps, n_channels)
        out.append(0.5 * np.log(2 * np.pi * np.e * np.maximum(power, 1e-30)))
    return np.concatenate(out, axis=1)


def eeg_grid(x: FloatArray, channel_names: Sequence[str]) -> FloatArray:
    """Map each sample of EEG channels onto the 9×9 electrode grid (:mod:`.montage`).

    x : ndarray, shape (n_samples, n_channels) with channels named by ``channel_names``
    returns ndarray, shape (n_samples, 9, 9); cells without an electrode are 0
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] != len(channel_names):
        raise ValueError(f"{x.shape[1]} channels but {len(channel_names)} names")
    grid = np.zeros((len(x), 9, 9))
    for i, name in enumerate(channel_names):
        if name not in GRID_POSITIONS:
            raise ValueError(f"channel {name!r} has no place on the 9×9 grid")
        r, c = GRID_POSITIONS[name]
        grid[:, r, c] = x[:, i]
    return grid


def deap_baseline_correct(trial: FloatArray, fs: float, baseline_s: float = 3.0) -> FloatArray:
    """Yang et al.'s DEAP baseline correction: subtract the mean 1-s baseline chunk.

    trial : ndarray, shape (n_samples, n_channels): baseline (first ``baseline_s`` s) + stimulus
    returns ndarray, shape (n_samples - baseline, n_channels): the stimulus part, each 1-s chunk
    minus the average of the ``baseline_s`` one-second chunks of the baseline
    """
    nb = round(baseline_s * fs)
    base = baseline_chunk(trial[:nb], fs)
    stim = trial[nb:]
    if len(stim) % len(base):
        raise ValueError("stimulus part is not a whole number of seconds")
    return subtract_chunk(stim, base, 0)


def baseline_chunk(baseline: FloatArray, fs: float) -> FloatArray:
    """The mean one-second chunk of a baseline of whole seconds.

    baseline : ndarray, shape (k · round(fs), n_channels)
    returns ndarray, shape (round(fs), n_channels)
    """
    sec = round(fs)
    if len(baseline) == 0 or len(baseline) % sec:
        raise ValueError(f"baseline of {len(baseline)} samples is not whole seconds at {fs:g} Hz")
    chunk: FloatArray = baseline.reshape(-1, sec, baseline.shape[1]).mean(axis=0)
    return chunk


def subtract_chunk(x: FloatArray, chunk: FloatArray, phase: int) -> FloatArray:
    """``x`` minus ``chunk`` repeated once per second: sample *i* of ``x`` loses row
    ``(phase + i) mod len(chunk)``; ``phase`` is the position within its second of ``x``'s first
    sample (0 at the end of the baseline). Any length, so an online hop need not be a second."""
    rows = (phase + np.arange(len(x))) % len(chunk)
    out: FloatArray = np.asarray(x, dtype=np.float64) - chunk[rows]
    return out


@dataclass(frozen=True, slots=True)
class Standardizer:
    """Per-feature z-scoring with fixed statistics (stored in a model contract).

    Offline the statistics come from training folds only; online they are the model's (or, for a
    per-session calibration, fitted on the calibration period at the start of a live session).
    """

    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, x: FloatArray, axis: int | tuple[int, ...] = 0, eps: float = 1e-8) -> Standardizer:
        mean = np.mean(x, axis=axis)
        std = np.std(x, axis=axis)
        return cls(np.asarray(mean, dtype=np.float64), np.maximum(np.asarray(std), eps))

    def transform(self, x: FloatArray) -> FloatArray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std
