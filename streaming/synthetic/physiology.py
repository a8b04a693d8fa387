"""Physiology shared by the synthetic DEAP and PMEmo generators: skin conductance and label effects.

Skin conductance (EDA) is modelled the same way in both generators:

- a tonic level (SCL) that starts at the recording's resting value, rises towards a label-driven
  level with a first-order response, drifts linearly and wanders slowly;
- phasic skin conductance responses (SCRs): Poisson onsets at the subject's resting rate before
  the stimulus and at the trial's rate during it, log-normal sizes around the resting or trial
  median, each shaped by a Bateman function (difference of a decay and a rise exponential);
- sensor noise, and a floor that keeps the conductance positive (a dry electrode).

A label moves a latent linearly: by a fixed effect per unit of the felt label away from neutral,
times the subject's log-normal responsiveness, plus trial noise. Subjects differ in their resting
SCL, SCR decay time and responsiveness, drawn from the distributions here.

The module also holds what both generators share beyond physiology: the seeded random streams
that make every subject, trial or recording reproducible on its own, and the ``SYNTHETIC.json``
marker that labels a generated folder as synthetic. Functions that work on a sample grid take the
sampling rate (128 Hz for DEAP, 50 Hz for PMEmo) or the time axis as an argument.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MIN_CONDUCTANCE_US",
    "SCL_DRIFT_SD_PER_S",
    "SCR_SIZE_LOG_SD",
    "SENSOR_NOISE_US",
    "SYNTHETIC_MARKER",
    "FloatArray",
    "draw_responsiveness",
    "draw_resting_scl_us",
    "draw_scr_decay_s",
    "draw_trial_scl_us",
    "effect_shift",
    "gaussian_window",
    "lognormal",
    "measured_conductance",
    "onset_ramp",
    "poisson_times",
    "scr_events",
    "scr_kernel",
    "seeded_rng",
    "tonic_conductance",
    "write_marker",
]

FloatArray = NDArray[np.float64]

SYNTHETIC_MARKER = "SYNTHETIC.json"
"""Written beside generated files; its presence marks a folder as synthetic, not real data."""

SCR_SIZE_LOG_SD = 0.5
"""Log-SD of single SCR sizes around the resting or trial median amplitude."""
SCL_DRIFT_SD_PER_S = 0.001
"""SD of the linear tonic drift, as a fraction of the SCL per second (typically ±6 %/min)."""
SENSOR_NOISE_US = 0.003
"""SD of the white sensor noise on the conductance (µS)."""
MIN_CONDUCTANCE_US = 0.2
"""The conductance never falls below this (µS): a dry electrode, never a negative conductance."""


# --------------------------------------------------------------------------------------------
# Randomness and provenance


def seeded_rng(entropy: Sequence[int], spawn_key: Sequence[int] = ()) -> np.random.Generator:
    """A generator seeded by ``SeedSequence(entropy, spawn_key=spawn_key)``.

    Each generator draws every subject, trial or recording from its own entropy and spawn key, so
    that it is the same whatever else is generated.
    """
    return np.random.default_rng(np.random.SeedSequence(list(entropy), spawn_key=spawn_key))


def write_marker(out_dir: Path, fields: Mapping[str, object]) -> Path:
    """Write ``fields`` as indented JSON to ``out_dir / SYNTHETIC_MARKER``; return its path."""
    path = out_dir / SYNTHETIC_MARKER
    path.write_text(json.dumps(fields, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Individual differences and label effects


def lognormal(rng: np.random.Generator, median: float, log_sd: float) -> float:
    """One draw of ``median · e^N(0, log_sd)``."""
    return float(median * math.exp(rng.normal(0.0, log_sd)))


def draw_responsiveness(rng: np.random.Generator) -> float:
    """A subject's responsiveness, the factor on every label effect: log-normal, median 1, 0.3."""
    return lognormal(rng, 1.0, 0.3)


def draw_resting_scl_us(rng: np.random.Generator, log_sd: float) -> float:
    """A subject's resting skin conductance level (µS): median 5, clipped to 1-25 µS."""
    return float(np.clip(lognormal(rng, 5.0, log_sd), 1.0, 25.0))


def draw_scr_decay_s(rng: np.random.Generator) -> float:
    """A subject's SCR decay time constant (s), uniform on 3-5 s."""
    return float(rng.uniform(3.0, 5.0))


def draw_trial_scl_us(rng: np.random.Generator, resting_us: float) -> float:
    """A recording's resting SCL (µS): the subject's, times e^N(0, 0.1)."""
    return lognormal(rng, resting_us, 0.1)


def effect_shift(
    rng: np.random.Generator,
    per_unit: float,
    responsiveness: float,
    drive: float,
    trial_sd: float,
) -> float:
    """How far one label moves one latent: ``per_unit · responsiveness · drive + N(0, trial_sd)``.

    ``drive`` is the felt label's distance from neutral in the effect's units (rating points for
    DEAP, tenths for PMEmo).
    """
    return float(per_unit * responsiveness * drive + rng.normal(0.0, trial_sd))


# --------------------------------------------------------------------------------------------
# Time courses and kernels


def poisson_times(
    rng: np.random.Generator, rate_per_min: float, start_s: float, stop_s: float
) -> FloatArray:
    """Event times (s) of a homogeneous Poisson process on [start_s, stop_s), sorted."""
    n = rng.poisson(rate_per_min * (stop_s - start_s) / 60.0)
    return np.sort(rng.uniform(start_s, stop_s, n))


def onset_ramp(t_s: FloatArray, onset_s: float, tau_s: float) -> FloatArray:
    """0 before ``onset_s``, then 1 - exp(-(t - onset) / tau): a first-order response to a step.

    Returns
    -------
    ndarray, the shape of ``t_s``
    """
    after = np.clip(t_s - onset_s, 0.0, None)
    ramp: FloatArray = np.where(t_s < onset_s, 0.0, 1.0 - np.exp(-after / tau_s))
    return ramp


def gaussian_window(sfreq: float, std_s: float, half_width_s: float) -> FloatArray:
    """A Gaussian bump (peak 1) sampled at ``sfreq`` over ±half_width_s, odd length."""
    half = int(half_width_s * sfreq)
    t = np.arange(-half, half + 1) / sfreq
    window: FloatArray = np.exp(-0.5 * (t / std_s) ** 2)
    return window


def scr_kernel(
    sfreq: float,
    rise_s: float,
    decay_s: float,
    length_s: float,
    onset_smoothing_s: float = 0.0,
) -> FloatArray:
    """One skin conductance response of peak 1 µS, shape (int(length_s · sfreq),).

    Bateman function exp(-t / decay) - exp(-t / rise). With ``onset_smoothing_s`` > 0 it is first
    convolved with a Gaussian of that SD (±4 SD wide, which delays the onset by 4 SD) so that the
    onset is sigmoid, as in recorded SCRs, rather than a corner.
    """
    t = np.arange(int(length_s * sfreq)) / sfreq
    kernel: FloatArray = np.exp(-t / decay_s) - np.exp(-t / rise_s)
    if onset_smoothing_s > 0.0:
        smooth = gaussian_window(sfreq, onset_smoothing_s, 4 * onset_smoothing_s)
        kernel = np.convolve(kernel, smooth / smooth.sum())[: len(t)]
    kernel /= kernel.max()
    return kernel


# --------------------------------------------------------------------------------------------
# Skin conductance


def scr_events(
    rng: np.random.Generator,
    *,
    rest_rate_per_min: float,
    rest_amplitude_us: float,
    task_rate_per_min: float,
    task_amplitude_us: float,
    start_s: float,
    onset_s: float,
    stop_s: float,
    orienting_probability: float = 0.0,
    orienting_latency_s: tuple[float, float] = (0.5, 2.0),
) -> tuple[FloatArray, FloatArray]:
    """SCR onsets (s) and sizes (µS): resting ones on [start_s, onset_s), task ones after.

    Onsets are Poisson at the resting rate before the stimulus onset and at the task rate from it
    to ``stop_s``. With probability ``orienting_probability`` one more task SCR answers the
    stimulus onset after a latency uniform in ``orienting_latency_s`` (no random draw when the
    probability is 0). Sizes are log-normal (log-SD :data:`SCR_SIZE_LOG_SD`) around the resting
    or the task median amplitude.

    Returns
    -------
    onsets : ndarray, shape (n,) — the resting onsets (sorted), then the task ones
    sizes : ndarray, shape (n,)
    """
    rest = poisson_times(rng, rest_rate_per_min, start_s, onset_s)
    task = poisson_times(rng, task_rate_per_min, onset_s, stop_s)
    if orienting_probability > 0.0 and rng.random() < orienting_probability:
        task = np.append(task, onset_s + rng.uniform(*orienting_latency_s))
    sizes = np.concatenate(
        [
            rest_amplitude_us * np.exp(rng.normal(0.0, SCR_SIZE_LOG_SD, len(rest))),
            task_amplitude_us * np.exp(rng.normal(0.0, SCR_SIZE_LOG_SD, len(task))),
        ]
    )
    return np.concatenate([rest, task]), sizes


def tonic_conductance(
    rng: np.random.Generator,
    level_us: float,
    rise_us: float,
    rise_ramp: FloatArray,
    t_s: FloatArray,
    wander: Callable[[np.random.Generator], FloatArray],
    wander_fraction: float,
) -> FloatArray:
    """Tonic skin conductance (µS), the shape of ``t_s``.

    ``level_us`` + ``rise_us`` · ``rise_ramp`` (the label-driven rise) + a linear drift of
    N(0, :data:`SCL_DRIFT_SD_PER_S`) of the level per second + ``wander_fraction`` of the level
    times ``wander(rng)``, the generator's unit-variance slow noise (drawn after the drift).
    """
    drift_per_s = rng.normal(0.0, SCL_DRIFT_SD_PER_S)
    slow = wander(rng)
    tonic: FloatArray = (
        level_us
        + rise_us * rise_ramp
        + drift_per_s * level_us * t_s
        + wander_fraction * level_us * slow
    )
    return tonic


def measured_conductance(
    rng: np.random.Generator, tonic: FloatArray, phasic: FloatArray
) -> FloatArray:
    """What the sensor reads (µS): tonic + phasic + white noise, never below the floor.

    Noise SD :data:`SENSOR_NOISE_US`, floor :data:`MIN_CONDUCTANCE_US`.
    """
    noise = rng.normal(0.0, SENSOR_NOISE_US, len(tonic))
    conductance: FloatArray = np.maximum(tonic + phasic + noise, MIN_CONDUCTANCE_US)
    return conductance
