"""Synthetic subjects in the DEAP ``data_preprocessed_python`` format, with documented physiology.

The generator writes files that :func:`affectstream.streaming.formats.deap.read_deap` reads like the
real ones (128 Hz, 40 channels, 3 s baseline + 60 s trial) but whose signals follow a small,
explicit generative model:

- 40 shared "videos" (trial *i* is the same stimulus for every subject), 10 per valence/arousal
  quadrant; each subject's felt valence/arousal scatters around the video's target, the rating adds
  a per-subject bias and is clipped to 1-9;
- the felt state drives the signals after the 3 s baseline: arousal → more and larger skin
  conductance responses, higher heart and breathing rate, less EEG alpha and more beta; valence →
  frontal alpha asymmetry, zygomatic EMG bursts, a little temporal gamma;
- every subject has its own resting physiology and responsiveness, every trial its own noise, so
  single features correlate with the labels at roughly r = 0.3-0.6 and nothing separates perfectly.

Effect sizes live in :data:`EFFECTS`; ``docs/synthetic-data.md`` explains them. The skin
conductance model, trait draws and label-effect rule shared with the PMEmo generator are in
:mod:`affectstream.streaming.synthetic.physiology`. Nothing measured on this data is a DEAP result.

Randomness: subject *k* draws from ``SeedSequence([seed, k])`` (spawn key ``(0,)`` for its traits,
``(1, i)`` for trial *i*'s latents, ``(2, i)`` for its signals, ``(3,)`` for the EEG topography), so
a subject is the same alone or in a set, and the first *t* trials do not depend on how many trials
are generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from affectstream.streaming.formats.deap import (
    BASELINE_SAMPLES,
    EEG_NAMES,
    N_CHANNELS,
    N_SAMPLES,
    SFREQ,
    read_deap,
    write_deap,
)
from affectstream.streaming.synthetic.physiology import (
    SYNTHETIC_MARKER,
    FloatArray,
    draw_responsiveness,
    draw_resting_scl_us,
    draw_scr_decay_s,
    draw_trial_scl_us,
    effect_shift,
    gaussian_window,
    lognormal,
    measured_conductance,
    onset_ramp,
    poisson_times,
    scr_events,
    scr_kernel,
    seeded_rng,
    tonic_conductance,
    write_marker,
)

__all__ = [
    "EFFECTS",
    "MAX_TRIALS",
    "SYNTHETIC_MARKER",
    "WATERMARK",
    "Effect",
    "SubjectLatents",
    "SubjectTraits",
    "TrialLatents",
    "generate_subject",
    "has_watermark",
    "is_synthetic_deap",
    "subject_latents",
    "watermark_labels",
    "write_synthetic_deap",
]

MAX_TRIALS = 40
"""The stimulus set has 40 videos, as DEAP has; a subject file holds 1-40 of them."""

_ONSET_S = BASELINE_SAMPLES / SFREQ  # stimulus effects start after the 3 s baseline
_T: FloatArray = np.arange(N_SAMPLES) / SFREQ
_FREQS: FloatArray = np.arange(N_SAMPLES // 2 + 1, dtype=np.float64) * (SFREQ / N_SAMPLES)
_VIDEO_TAG = 0x56494445  # "VIDE": keeps the shared stimulus stream apart from every subject's
_HIGH, _LOW = 6.8, 3.2  # quadrant centres of the video targets on the 1-9 scale


# --------------------------------------------------------------------------------------------
# Effect sizes


@dataclass(frozen=True, slots=True)
class Effect:
    """How one label moves one latent quantity.

    The latent (in ``unit``) changes by ``per_point`` for each rating point of the subject's felt
    ``label`` above 5, times the subject's responsiveness, plus trial noise ~ N(0, ``trial_sd``).
    """

    label: str
    per_point: float
    trial_sd: float
    unit: str


EFFECTS: Mapping[str, Effect] = MappingProxyType(
    {
        "heart_rate": Effect("arousal", 1.0, 3.0, "bpm"),
        "breathing_rate": Effect("arousal", 0.35, 1.0, "breaths/min"),
        "scr_rate": Effect("arousal", 0.15, 0.25, "ln(rate)"),
        "scr_amplitude": Effect("arousal", 0.08, 0.20, "ln(µS)"),
        "scl_rise": Effect("arousal", 0.015, 0.02, "fraction of SCL"),
        "alpha": Effect("arousal", -0.045, 0.2, "ln(amplitude)"),
        "beta": Effect("arousal", 0.04, 0.2, "ln(amplitude)"),
        "temg": Effect("arousal", 0.04, 0.15, "ln(amplitude)"),
        "temperature": Effect("arousal", -0.02, 0.05, "°C over the trial"),
        "frontal_asymmetry": Effect("valence", 0.07, 0.2, "ln(power right/left)"),
        "zemg_burst_rate": Effect("valence", 0.25, 0.30, "ln(rate)"),
        "zemg_tonic": Effect("valence", 0.03, 0.10, "ln(amplitude)"),
        "gamma": Effect("valence", 0.03, 0.15, "ln(amplitude)"),
    }
)
"""Label → latent effects (see ``docs/synthetic-data.md`` for what they do to the signals)."""


# --------------------------------------------------------------------------------------------
# Latents


@dataclass(frozen=True, slots=True)
class SubjectTraits:
    """One subject's resting physiology and individual differences (constant over trials)."""

    responsiveness: float  # multiplies every label effect (some subjects barely respond)
    rating_bias_valence: float  # added to the felt state to give the rating
    rating_bias_arousal: float
    scl_us: float  # resting skin conductance level
    scr_rate_per_min: float  # resting rate of non-specific SCRs
    scr_amplitude_us: float  # median resting SCR amplitude
    scr_decay_s: float
    heart_rate_bpm: float
    rsa_bpm: float  # respiratory sinus arrhythmia (amplitude of the HR swing)
    breathing_rate_per_min: float
    eeg_gain: float  # overall EEG amplitude factor
    alpha_gain: float  # posterior alpha strength factor
    alpha_peak_hz: float  # individual alpha frequency
    eeg_exponent: float  # 1/f exponent of the background power spectrum
    frontal_asymmetry: float  # trait ln(alpha power right/left frontal source)
    zemg_uv: float  # tonic zygomatic EMG RMS
    zemg_burst_rate_per_min: float  # resting smile rate
    temg_uv: float
    blink_rate_per_min: float
    temperature_c: float
    resp_amplitude: float
    ppg_amplitude: float


@dataclass(frozen=True, slots=True)
class TrialLatents:
    """Ground truth of one trial: what the signals were generated from (for docs and debugging).

    ``*_baseline_*`` values hold during the 3 s baseline; the others after it (approached with the
    channel's response time). Gains are amplitude factors relative to the baseline.
    """

    felt_valence: float  # 1-9 scale, before rating bias and clipping
    felt_arousal: float
    scl_baseline_us: float
    scl_rise_us: float
    scr_rate_per_min: float
    scr_amplitude_us: float
    heart_rate_baseline_bpm: float
    heart_rate_bpm: float
    breathing_rate_baseline_per_min: float
    breathing_rate_per_min: float
    alpha_gain: float
    beta_gain: float
    gamma_gain: float
    frontal_asymmetry: float  # ln(alpha power right/left frontal source) during the trial
    zemg_burst_rate_per_min: float
    zemg_tonic_gain: float
    temg_gain: float
    temperature_change_c: float


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: it holds an ndarray
class SubjectLatents:
    """Traits, per-trial latents and labels of one subject.

    labels : ndarray, shape (n_trials, 4) — valence, arousal, dominance, liking (1-9)
    """

    subject: int
    traits: SubjectTraits
    trials: tuple[TrialLatents, ...]
    labels: FloatArray


def _subject_rng(seed: int, subject: int, *key: int) -> np.random.Generator:
    """Subject ``subject``'s random stream ``key`` (see the module docstring)."""
    return seeded_rng((seed, subject), key)


def _draw_traits(rng: np.random.Generator) -> SubjectTraits:
    """A subject's traits, drawn from its trait stream."""
    return SubjectTraits(
        responsiveness=draw_responsiveness(rng),
        rating_bias_valence=float(rng.normal(0.0, 0.5)),
        rating_bias_arousal=float(rng.normal(0.0, 0.5)),
        scl_us=draw_resting_scl_us(rng, 0.55),
        scr_rate_per_min=lognormal(rng, 5.0, 0.35),
        scr_amplitude_us=lognormal(rng, 0.15, 0.4),
        scr_decay_s=draw_scr_decay_s(rng),
        heart_rate_bpm=float(np.clip(rng.normal(70.0, 8.0), 50.0, 95.0)),
        rsa_bpm=lognormal(rng, 3.0, 0.3),
        breathing_rate_per_min=float(np.clip(rng.normal(15.0, 2.0), 10.0, 21.0)),
        eeg_gain=lognormal(rng, 1.0, 0.25),
        alpha_gain=lognormal(rng, 1.0, 0.35),
        alpha_peak_hz=float(np.clip(rng.normal(10.0, 0.8), 8.5, 12.0)),
        eeg_exponent=float(rng.uniform(1.2, 2.0)),
        frontal_asymmetry=float(rng.normal(0.0, 0.2)),
        zemg_uv=lognormal(rng, 3.0, 0.4),
        zemg_burst_rate_per_min=lognormal(rng, 0.8, 0.4),
        temg_uv=lognormal(rng, 4.0, 0.4),
        blink_rate_per_min=lognormal(rng, 15.0, 0.3),
        temperature_c=float(np.clip(rng.normal(32.5, 1.0), 29.0, 35.5)),
        resp_amplitude=lognormal(rng, 400.0, 0.3),
        ppg_amplitude=lognormal(rng, 1000.0, 0.4),
    )


def _video_targets(seed: int) -> FloatArray:
    """Valence/arousal targets of the 40 shared videos, shape (40, 2).

    Quadrants come in blocks of four (each a random order of HVHA, HVLA, LVHA, LVLA), so any
    prefix of the trials is close to balanced.
    """
    rng = seeded_rng((seed, 0, _VIDEO_TAG))
    quadrant = np.concatenate([rng.permutation(4) for _ in range(MAX_TRIALS // 4)])
    high = np.stack([quadrant < 2, quadrant % 2 == 0], axis=1)
    return np.where(high, _HIGH, _LOW) + rng.normal(0.0, 0.6, (MAX_TRIALS, 2))


def _draw_trial(
    rng: np.random.Generator, traits: SubjectTraits, target: FloatArray
) -> tuple[TrialLatents, FloatArray]:
    """One trial's latents and its ratings (valence, arousal, dominance, liking), shape (4,)."""
    felt = target + rng.normal(0.0, 1.1, 2)
    v_rating = felt[0] + traits.rating_bias_valence
    a_rating = felt[1] + traits.rating_bias_arousal
    dominance = 5.0 + 0.5 * (a_rating - 5.0) + 0.15 * (v_rating - 5.0) + rng.normal(0.0, 1.5)
    liking = 5.0 + 0.7 * (v_rating - 5.0) + rng.normal(0.0, 1.3)
    ratings = np.clip([v_rating, a_rating, dominance, liking], 1.0, 9.0)

    drive = {"valence": felt[0] - 5.0, "arousal": felt[1] - 5.0}

    def shift(name: str) -> float:
        e = EFFECTS[name]
        return effect_shift(rng, e.per_point, traits.responsiveness, drive[e.label], e.trial_sd)

    scl0 = draw_trial_scl_us(rng, traits.scl_us)
    hr0 = traits.heart_rate_bpm + rng.normal(0.0, 2.0)
    br0 = traits.breathing_rate_per_min + rng.normal(0.0, 1.0)
    latents = TrialLatents(
        felt_valence=float(felt[0]),
        felt_arousal=float(felt[1]),
        scl_baseline_us=scl0,
        scl_rise_us=scl0 * shift("scl_rise"),
        scr_rate_per_min=traits.scr_rate_per_min * math.exp(shift("scr_rate")),
        scr_amplitude_us=traits.scr_amplitude_us * math.exp(shift("scr_amplitude")),
        heart_rate_baseline_bpm=hr0,
        heart_rate_bpm=float(np.clip(hr0 + shift("heart_rate"), 45.0, 120.0)),
        breathing_rate_baseline_per_min=br0,
        breathing_rate_per_min=float(np.clip(br0 + shift("breathing_rate"), 8.0, 26.0)),
        alpha_gain=math.exp(shift("alpha")),
        beta_gain=math.exp(shift("beta")),
        gamma_gain=math.exp(shift("gamma")),
        frontal_asymmetry=traits.frontal_asymmetry + shift("frontal_asymmetry"),
        zemg_burst_rate_per_min=traits.zemg_burst_rate_per_min * math.exp(shift("zemg_burst_rate")),
        zemg_tonic_gain=math.exp(shift("zemg_tonic")),
        temg_gain=math.exp(shift("temg")),
        temperature_change_c=shift("temperature"),
    )
    return latents, ratings


def subject_latents(subject: int, n_trials: int = MAX_TRIALS, seed: int = 0) -> SubjectLatents:
    """The latent ground truth of one subject: traits, per-trial latents and labels.

    Parameters
    ----------
    subject : 1-based subject number (the ``NN`` of ``sNN.dat``).
    n_trials : number of trials, 1-40 (trial *i* is video *i*).
    seed : non-negative integer; same seed → same subject.

    Returns
    -------
    SubjectLatents, whose ``labels`` (shape (n_trials, 4)) are exactly those of
    :func:`generate_subject` with the same arguments.
    """
    _check_args(subject, n_trials, seed)
    traits = _draw_traits(_subject_rng(seed, subject, 0))
    targets = _video_targets(seed)
    trials, labels = [], np.empty((n_trials, 4))
    for i in range(n_trials):
        rng = _subject_rng(seed, subject, 1, i)
        latents, labels[i] = _draw_trial(rng, traits, targets[i])
        trials.append(latents)
    return SubjectLatents(subject, traits, tuple(trials), labels)


def _check_args(subject: int, n_trials: int, seed: int) -> None:
    if subject < 1:
        raise ValueError(f"subject must be >= 1 (files are s01.dat, s02.dat, ...), got {subject}")
    if not 1 <= n_trials <= MAX_TRIALS:
        raise ValueError(f"n_trials must be 1-{MAX_TRIALS} (one per video), got {n_trials}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


# --------------------------------------------------------------------------------------------
# Signal building blocks


@cache
def _onset_ramp(tau_s: float) -> FloatArray:
    """0 during the baseline, then 1 - exp(-(t - 3 s) / tau): a response with time constant tau.

    Returns
    -------
    ndarray, shape (8064,)
    """
    ramp = onset_ramp(_T, _ONSET_S, tau_s)
    ramp.flags.writeable = False  # cached: shared by every trial
    return ramp


@cache
def _bandpass_gain(lo_hz: float, hi_hz: float) -> FloatArray:
    """Magnitude of a 4th-order Butterworth band-pass on the rfft grid, shape (4033,).

    Shaping noise with it is how the EEG gets DEAP's 4-45 Hz band-pass (zero phase, as filtfilt).
    Closed form of ``scipy.signal.butter(4, [lo, hi], "bandpass", fs=128)``'s response (equal to
    1e-14): the analog prototype 1 / sqrt(1 + x^8) at the bilinear-warped frequency. Written out so
    that importing this module does not pay for ``scipy.signal`` (~0.6 s).
    """

    def warp(f_hz: FloatArray | float) -> FloatArray:
        warped: FloatArray = 2 * SFREQ * np.tan(np.pi * np.asarray(f_hz, dtype=np.float64) / SFREQ)
        return warped

    w, lo, hi = warp(_FREQS), warp(lo_hz), warp(hi_hz)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = (w**2 - lo * hi) / (w * (hi - lo))  # low-pass → band-pass frequency transform
        gain: FloatArray = np.nan_to_num(1.0 / np.sqrt(1.0 + x**8), nan=0.0)  # DC, Nyquist: 0
    gain.flags.writeable = False
    return gain


def _fft_convolve(x: FloatArray, kernel: FloatArray) -> FloatArray:
    """Linear convolution ``x * kernel`` truncated to ``len(x)`` (causal, FFT-based)."""
    n_fft = 1 << (len(x) + len(kernel) - 2).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, n_fft) * np.fft.rfft(kernel, n_fft), n_fft)
    return y[: len(x)]


def _lowpass_shape(cutoff_hz: float) -> FloatArray:
    """Gaussian amplitude spectrum: noise shaped with it wanders on a ~1/cutoff time scale."""
    shape: FloatArray = np.exp(-0.5 * (_FREQS / cutoff_hz) ** 2)
    shape[0] = 0.0  # zero mean
    return shape


def _shaped_noise(rng: np.random.Generator, shapes: FloatArray) -> FloatArray:
    """Gaussian noise with given amplitude spectra, each row scaled to unit variance on average.

    Parameters
    ----------
    shapes : ndarray, shape (n_series, 4033) — amplitude spectrum on the rfft grid of 8064 samples

    Returns
    -------
    ndarray, shape (n_series, 8064)
    """
    shapes = np.atleast_2d(shapes)
    # E[var] of irfft(rfft(white) * s) is the mean of |s|^2 over the full (two-sided) spectrum
    power = (2.0 * np.sum(shapes**2, axis=1) - shapes[:, 0] ** 2 - shapes[:, -1] ** 2) / N_SAMPLES
    white = rng.standard_normal((shapes.shape[0], N_SAMPLES))
    spectrum = np.fft.rfft(white, axis=1) * (shapes / np.sqrt(power)[:, None])
    return np.fft.irfft(spectrum, n=N_SAMPLES, axis=1)


def _slow_noise(rng: np.random.Generator, cutoff_hz: float) -> FloatArray:
    """Unit-variance noise below ``cutoff_hz``, shape (8064,)."""
    noise: FloatArray = _shaped_noise(rng, _lowpass_shape(cutoff_hz))[0]
    return noise


def _add_bursts(
    rng: np.random.Generator,
    envelope: FloatArray,
    times_s: FloatArray,
    peak: float,
    duration_s: tuple[float, float],
) -> None:
    """Add Hann-shaped bursts (peak x lognormal, duration uniform in the range) to ``envelope``."""
    for t0, amp, dur in zip(
        times_s,
        peak * np.exp(rng.normal(0.0, 0.4, len(times_s))),
        rng.uniform(*duration_s, len(times_s)),
        strict=True,
    ):
        start, n = int(t0 * SFREQ), int(dur * SFREQ)
        window = amp * np.hanning(n)[: N_SAMPLES - start]
        envelope[start : start + len(window)] += window


@cache
def _scr_kernel(decay_s: float) -> FloatArray:
    """One skin conductance response of peak 1 µS, 30 s long, shape (3840,).

    Bateman function (rise constant 0.5 s, peak ≈ 1.1 s after onset, the given decay) smoothed by
    a 0.2 s Gaussian so that the onset is sigmoid, as in recorded SCRs, rather than a corner.
    """
    kernel = scr_kernel(SFREQ, 0.5, decay_s, 30.0, onset_smoothing_s=0.2)  # onset delayed 0.8 s
    kernel.flags.writeable = False
    return kernel


# --------------------------------------------------------------------------------------------
# Peripheral channels


def _skin_conductance(
    rng: np.random.Generator, traits: SubjectTraits, lat: TrialLatents
) -> FloatArray:
    """Skin conductance (µS), shape (8064,): tonic level + Bateman-shaped SCRs + sensor noise.

    SCRs are simulated from 30 s before the trial so the trial starts with earlier responses still
    decaying; before the stimulus they come at the subject's resting rate and size.
    """
    warmup_s = 30.0
    times, sizes = scr_events(
        rng,
        rest_rate_per_min=traits.scr_rate_per_min,
        rest_amplitude_us=traits.scr_amplitude_us,
        task_rate_per_min=lat.scr_rate_per_min,
        task_amplitude_us=lat.scr_amplitude_us,
        start_s=-warmup_s,
        onset_s=_ONSET_S,
        stop_s=N_SAMPLES / SFREQ,
        orienting_probability=0.5,  # an orienting response to the stimulus onset
    )
    impulses = np.zeros(int(warmup_s * SFREQ) + N_SAMPLES)
    np.add.at(impulses, ((times + warmup_s) * SFREQ).astype(int), sizes)
    phasic = _fft_convolve(impulses, _scr_kernel(traits.scr_decay_s))
    tonic = tonic_conductance(
        rng,
        lat.scl_baseline_us,
        lat.scl_rise_us,
        _onset_ramp(20.0),  # the tonic level follows arousal slowly
        _T,
        wander=lambda r: _slow_noise(r, 0.01),
        wander_fraction=0.015,
    )
    return measured_conductance(rng, tonic, phasic[-N_SAMPLES:])


def _breathing_phase(rng: np.random.Generator, lat: TrialLatents) -> FloatArray:
    """Breathing phase (rad), shape (8064,): baseline rate → trial rate, with ±12 % wander."""
    rate = lat.breathing_rate_baseline_per_min + (
        lat.breathing_rate_per_min - lat.breathing_rate_baseline_per_min
    ) * _onset_ramp(5.0)
    rate = rate * np.exp(0.12 * _slow_noise(rng, 0.05))
    return 2 * np.pi * np.cumsum(rate / 60.0) / SFREQ + rng.uniform(0, 2 * np.pi)


def _respiration(rng: np.random.Generator, traits: SubjectTraits, phase: FloatArray) -> FloatArray:
    """Respiration belt (a.u.), shape (8064,): irregular breaths, occasional sighs, belt drift."""
    amplitude = traits.resp_amplitude * np.exp(0.2 * _slow_noise(rng, 0.08))
    sighs = np.ones(N_SAMPLES)
    _add_bursts(rng, sighs, poisson_times(rng, 0.5, 0.0, 60.0), 0.8, (3.0, 5.0))
    # inhalation (rising belt signal) takes ~40 % of the cycle: a second harmonic skews it
    wave = -np.cos(phase) - 0.25 * np.sin(2 * phase)
    drift = 0.3 * traits.resp_amplitude * _slow_noise(rng, 0.01)
    noise = rng.normal(0.0, 0.02 * traits.resp_amplitude, N_SAMPLES)
    return amplitude * sighs * wave + drift + noise


def _plethysmogram(
    rng: np.random.Generator, traits: SubjectTraits, lat: TrialLatents, breathing: FloatArray
) -> FloatArray:
    """Photoplethysmogram (a.u.), shape (8064,): pulse wave with HRV and respiratory modulation.

    Heart rate = baseline → trial rate (3 s time constant) + sinus arrhythmia in phase with
    breathing + a slow (Mayer-wave-like) wander; amplitude and baseline also follow breathing.
    """
    hr = (
        lat.heart_rate_baseline_bpm
        + (lat.heart_rate_bpm - lat.heart_rate_baseline_bpm) * _onset_ramp(3.0)
        + traits.rsa_bpm * np.sin(breathing)
        + 1.5 * _slow_noise(rng, 0.1)
    )
    cycle = (np.cumsum(hr / 60.0) / SFREQ + rng.uniform()) % 1.0
    # systolic peak then the smaller diastolic (dicrotic) wave
    pulse = np.exp(-0.5 * ((cycle - 0.2) / 0.07) ** 2) + 0.35 * np.exp(
        -0.5 * ((cycle - 0.5) / 0.09) ** 2
    )
    a = traits.ppg_amplitude
    amplitude = a * (1.0 + 0.08 * np.sin(breathing))
    wander = 0.15 * a * np.sin(breathing + 1.0) + 0.2 * a * _slow_noise(rng, 0.02)
    return amplitude * pulse + wander + rng.normal(0.0, 0.02 * a, N_SAMPLES)


def _eog(rng: np.random.Generator, traits: SubjectTraits) -> FloatArray:
    """hEOG and vEOG (µV), shape (2, 8064): saccades between fixations, blinks on vEOG.

    Label independent by design (a check that a model does not lean on eye movements).
    """
    n_fix = 300  # fixations last ~0.6 s: 300 cover 63 s (the pad below is a formality)
    durations = np.maximum(rng.exponential(0.6 * SFREQ, n_fix).astype(int), 10)
    gaze = rng.normal(0.0, 1.0, (2, n_fix)) * np.array([[80.0], [40.0]])
    eog = np.repeat(gaze, durations, axis=1)[:, :N_SAMPLES]
    eog = np.pad(eog, ((0, 0), (0, N_SAMPLES - eog.shape[1])), mode="edge")
    # saccades take ~30 ms: a 4-sample moving average turns each step into a ramp
    eog = np.stack([np.convolve(row, np.ones(4) / 4)[:N_SAMPLES] for row in eog])
    blinks = np.zeros(N_SAMPLES)
    times = poisson_times(rng, traits.blink_rate_per_min, 0.0, N_SAMPLES / SFREQ)
    np.add.at(blinks, (times * SFREQ).astype(int), 150.0 * np.exp(rng.normal(0, 0.2, len(times))))
    eog[1] += np.convolve(blinks, gaussian_window(SFREQ, 0.07, 0.3), mode="same")
    eog += 20.0 * _shaped_noise(rng, np.stack([_lowpass_shape(0.05)] * 2))
    return eog + rng.normal(0.0, 3.0, eog.shape)


def _emg(rng: np.random.Generator, traits: SubjectTraits, lat: TrialLatents) -> FloatArray:
    """zEMG and tEMG (µV), shape (2, 8064): 20-60 Hz noise under a tonic + burst envelope.

    Zygomatic bursts are smiles: their rate follows valence after the baseline. Trapezius tone
    follows arousal a little; its bursts (posture shifts) are label independent.
    """
    carrier = _shaped_noise(rng, np.stack([_bandpass_gain(20.0, 60.0)] * 2))
    zyg = traits.zemg_uv * (1.0 + (lat.zemg_tonic_gain - 1.0) * _onset_ramp(1.0))
    smiles = np.concatenate(
        [
            poisson_times(rng, traits.zemg_burst_rate_per_min, 0.0, _ONSET_S),
            poisson_times(rng, lat.zemg_burst_rate_per_min, _ONSET_S, N_SAMPLES / SFREQ),
        ]
    )
    _add_bursts(rng, zyg, smiles, 5.0 * traits.zemg_uv, (1.0, 3.0))
    trap = traits.temg_uv * (1.0 + (lat.temg_gain - 1.0) * _onset_ramp(2.0))
    _add_bursts(rng, trap, poisson_times(rng, 1.0, 0.0, 63.0), 3.0 * traits.temg_uv, (0.5, 2.0))
    return carrier * np.stack([zyg, trap])


def _temperature(rng: np.random.Generator, traits: SubjectTraits, lat: TrialLatents) -> FloatArray:
    """Skin temperature (°C), shape (8064,): trial level, slow drift, arousal-linked change."""
    trial_fraction = np.clip((_T - _ONSET_S) / 60.0, 0.0, 1.0)
    return (
        traits.temperature_c
        + rng.normal(0.0, 0.3)
        + rng.normal(0.0, 0.1) * _T / 60.0
        + lat.temperature_change_c * trial_fraction
        + 0.01 * _slow_noise(rng, 0.05)
        + rng.normal(0.0, 0.002, N_SAMPLES)
    )


# --------------------------------------------------------------------------------------------
# EEG

# Electrode positions on a unit disc (x: left → right, y: back → front), Geneva order.
_EEG_XY = {
    "Fp1": (-0.31, 0.95),
    "AF3": (-0.32, 0.78),
    "F3": (-0.42, 0.55),
    "F7": (-0.81, 0.59),
    "FC5": (-0.68, 0.28),
    "FC1": (-0.23, 0.25),
    "C3": (-0.5, 0.0),
    "T7": (-1.0, 0.0),
    "CP5": (-0.68, -0.28),
    "CP1": (-0.23, -0.25),
    "P3": (-0.42, -0.55),
    "P7": (-0.81, -0.59),
    "PO3": (-0.32, -0.78),
    "O1": (-0.31, -0.95),
    "Oz": (0.0, -1.0),
    "Pz": (0.0, -0.5),
    "Fp2": (0.31, 0.95),
    "AF4": (0.32, 0.78),
    "Fz": (0.0, 0.5),
    "F4": (0.42, 0.55),
    "F8": (0.81, 0.59),
    "FC6": (0.68, 0.28),
    "FC2": (0.23, 0.25),
    "Cz": (0.0, 0.0),
    "C4": (0.5, 0.0),
    "T8": (1.0, 0.0),
    "CP6": (0.68, -0.28),
    "CP2": (0.23, -0.25),
    "P4": (0.42, -0.55),
    "P8": (0.81, -0.59),
    "PO4": (0.32, -0.78),
    "O2": (0.31, -0.95),
}
_ELECTRODES = np.array([_EEG_XY[name] for name in EEG_NAMES])

# Oscillatory sources: band, centre on the disc, spatial spread, RMS amplitude (µV) at the centre.
_EEG_SOURCES = (
    ("alpha", (-0.3, -0.8), 0.45, 14.0),  # posterior alpha, left
    ("alpha", (0.3, -0.8), 0.45, 14.0),  # posterior alpha, right
    ("alpha", (-0.42, 0.55), 0.3, 8.5),  # frontal alpha, left (F3): valence asymmetry
    ("alpha", (0.42, 0.55), 0.3, 8.5),  # frontal alpha, right (F4)
    ("theta", (0.0, 0.4), 0.5, 5.5),  # frontal-midline theta
    ("beta", (-0.45, 0.0), 0.45, 4.2),  # sensorimotor beta, left
    ("beta", (0.45, 0.0), 0.45, 4.2),  # sensorimotor beta, right
    ("beta", (0.0, 0.6), 0.45, 4.2),  # frontal beta
    ("gamma", (-0.9, 0.0), 0.35, 2.1),  # temporal gamma, left
    ("gamma", (0.9, 0.0), 0.35, 2.1),  # temporal gamma, right
)
_N_BROAD = 4  # spatially smooth 1/f sources at random places, per subject
_BACKGROUND_UV = 7.0  # per-electrode 1/f background
_BROAD_UV = 7.0


@dataclass(frozen=True, slots=True)
class _EegModel:
    """A subject's EEG generator: spectra (rows: sources, broad sources, electrodes) and mixing."""

    shapes: FloatArray  # (n_sources + n_broad + 32, 4033)
    mixing: FloatArray  # (32, n_sources + n_broad), µV per unit source
    baseline_gain: FloatArray  # (n_sources,) during the baseline


def _band_shape(band: str, traits: SubjectTraits) -> FloatArray:
    centre, width = {
        "theta": (6.0, 1.0),
        "alpha": (traits.alpha_peak_hz, 0.9),
        "beta": (20.0, 4.0),
        "gamma": (38.0, 4.0),
    }[band]
    shape: FloatArray = np.exp(-0.5 * ((_FREQS - centre) / width) ** 2) * _bandpass_gain(4.0, 45.0)
    return shape


def _topography(centre: FloatArray, spread: float) -> FloatArray:
    """Gain of a source at each electrode, shape (32,): Gaussian in distance, 1 at the centre."""
    distance2 = np.sum((_ELECTRODES - centre) ** 2, axis=1)
    gain: FloatArray = np.exp(-0.5 * distance2 / spread**2)
    return gain


def _eeg_model(rng: np.random.Generator, traits: SubjectTraits) -> _EegModel:
    """Build a subject's EEG model; source centres move a little from subject to subject."""
    one_over_f = np.maximum(_FREQS, 1.0) ** (-traits.eeg_exponent / 2) * _bandpass_gain(4.0, 45.0)
    shapes = [_band_shape(band, traits) for band, *_ in _EEG_SOURCES]
    shapes += [one_over_f] * (_N_BROAD + len(EEG_NAMES))
    columns = [
        amp * _topography(np.asarray(xy) + rng.normal(0.0, 0.08, 2), spread)
        for _, xy, spread, amp in _EEG_SOURCES
    ]
    columns += [_BROAD_UV * _topography(rng.uniform(-0.8, 0.8, 2), 0.7) for _ in range(_N_BROAD)]
    gain = np.array([traits.alpha_gain if band == "alpha" else 1.0 for band, *_ in _EEG_SOURCES])
    gain[2:4] *= np.exp(np.array([-0.25, 0.25]) * traits.frontal_asymmetry)
    return _EegModel(
        shapes=np.array(shapes),
        mixing=traits.eeg_gain * np.stack(columns, axis=1),
        baseline_gain=gain,
    )


def _eeg(
    rng: np.random.Generator, model: _EegModel, traits: SubjectTraits, lat: TrialLatents
) -> FloatArray:
    """EEG (µV), shape (32, 8064): 4-45 Hz, common average reference, like DEAP's preprocessing.

    Source amplitudes move from the baseline gains to the trial gains with a 0.5 s time constant.
    """
    n_src = len(_EEG_SOURCES)
    noise = _shaped_noise(rng, model.shapes)
    change = np.array(
        [lat.alpha_gain] * 2
        + [
            lat.alpha_gain * math.exp(s * (lat.frontal_asymmetry - traits.frontal_asymmetry) / 4)
            for s in (-1, 1)
        ]
        + [1.0]
        + [lat.beta_gain] * 3
        + [lat.gamma_gain] * 2
    )
    g0 = model.baseline_gain
    gains = g0[:, None] + (g0 * (change - 1.0))[:, None] * _onset_ramp(0.5)
    sources = np.concatenate([noise[:n_src] * gains, noise[n_src : n_src + _N_BROAD]])
    eeg: FloatArray = model.mixing @ sources
    eeg += traits.eeg_gain * _BACKGROUND_UV * noise[n_src + _N_BROAD :]
    eeg -= eeg.mean(axis=0)  # common average reference
    return eeg


# --------------------------------------------------------------------------------------------
# Public API


def _render_trial(
    rng: np.random.Generator,
    traits: SubjectTraits,
    lat: TrialLatents,
    eeg_model: _EegModel,
    out: FloatArray,
) -> None:
    """Fill one trial, ``out`` of shape (40, 8064), in DEAP channel order."""
    out[:32] = _eeg(rng, eeg_model, traits, lat)
    out[32:34] = _eog(rng, traits)
    out[34:36] = _emg(rng, traits, lat)
    out[36] = 1e6 / _skin_conductance(rng, traits, lat)  # DEAP stores resistance in Ohm
    breathing = _breathing_phase(rng, lat)
    out[37] = _respiration(rng, traits, breathing)
    out[38] = _plethysmogram(rng, traits, lat, breathing)
    out[39] = _temperature(rng, traits, lat)


def generate_subject(
    subject: int, n_trials: int = MAX_TRIALS, seed: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Generate one synthetic subject.

    Parameters
    ----------
    subject : 1-based subject number.
    n_trials : 1-40; trial *i* is always video *i*, so fewer trials give a prefix of the 40.
    seed : non-negative integer. Same (subject, n_trials, seed) → identical arrays.

    Returns
    -------
    data : ndarray, shape (n_trials, 40, 8064), float64 — DEAP channel order and units (GSR as
        skin resistance in Ohm); the first 384 samples of each trial are the resting baseline.
    labels : ndarray, shape (n_trials, 4), float64 — valence, arousal, dominance, liking in [1, 9].
    """
    latents = subject_latents(subject, n_trials, seed)
    eeg_model = _eeg_model(_subject_rng(seed, subject, 3), latents.traits)
    data = np.empty((n_trials, N_CHANNELS, N_SAMPLES))
    for i, trial in enumerate(latents.trials):
        rng = _subject_rng(seed, subject, 2, i)
        _render_trial(rng, latents.traits, trial, eeg_model, data[i])
    return data, watermark_labels(latents.labels)


# --------------------------------------------------------------------------------------------
# The synthetic flag inside the file

WATERMARK_BITS = 20
WATERMARK = 0x5A5A5
"""The low 20 mantissa bits of every synthetic rating (a change of ~2e-10 of the rating)."""


def watermark_labels(labels: FloatArray) -> FloatArray:
    """``labels`` with :data:`WATERMARK` in the low mantissa bits of every rating: the flag that
    travels inside a synthetic DEAP file, where the format has no room for one (a DEAP file holds
    exactly ``data`` and ``labels``), so a copy that lost ``SYNTHETIC.json`` is still known as
    synthetic (:func:`has_watermark`). The ratings move by less than 1e-9."""
    bits = np.ascontiguousarray(labels, dtype=np.float64).view(np.uint64).copy()
    mask = np.uint64((1 << WATERMARK_BITS) - 1)
    marked = (bits & ~mask) | np.uint64(WATERMARK)
    # a rating of exactly 9 would move above the scale: take the step below it instead
    over = marked.view(np.float64) > 9.0
    marked[over] = ((bits[over] & ~mask) - (mask + np.uint64(1))) | np.uint64(WATERMARK)
    return marked.view(np.float64)


def has_watermark(labels: FloatArray) -> bool:
    """Whether every rating carries :data:`WATERMARK` (a real recording's ratings match by chance
    with probability 2^-20 per rating: never, for a subject's 4 ratings per trial)."""
    arr = np.ascontiguousarray(labels, dtype=np.float64)
    if arr.size == 0:
        return False
    low = arr.view(np.uint64) & np.uint64((1 << WATERMARK_BITS) - 1)
    return bool(np.all(low == np.uint64(WATERMARK)))


def is_synthetic_deap(folder_or_file: Path | str) -> bool:
    """Whether DEAP-format files are affectstream's synthetic ones: the folder's
    ``SYNTHETIC.json`` is there, or (a copy that lost it, or a single file) the first file's
    ratings carry the watermark."""
    path = Path(folder_or_file)
    folder = path if path.is_dir() else path.parent
    if (folder / SYNTHETIC_MARKER).is_file():
        return True
    files = [path] if path.is_file() else sorted(folder.glob("s[0-9][0-9].dat"))
    return bool(files) and has_watermark(read_deap(files[0]).labels)


def write_synthetic_deap(
    out_dir: Path | str,
    n_subjects: int,
    n_trials: int = MAX_TRIALS,
    seed: int = 0,
    *,
    first_subject: int = 1,
    on_written: Callable[[Path], Any] | None = None,
) -> list[Path]:
    """Write ``s01.dat`` … ``sNN.dat`` (one subject at a time, ~2.5 MB per trial) into ``out_dir``.

    ``first_subject`` numbers the first file (``first_subject=17, n_subjects=1`` writes only
    ``s17.dat``): subject *k* is the same data whichever set it is written with, so a subject that
    a model was not trained on can be written alone (the demo does). ``out_dir`` is created if
    missing; existing files of the same name are replaced atomically. ``on_written`` is called
    with each path as soon as it is written (progress reporting). Returns the paths in subject
    order.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n_subjects}")
    if first_subject < 1 or first_subject + n_subjects - 1 > 99:
        raise ValueError(
            f"subjects {first_subject}-{first_subject + n_subjects - 1} are not within 1-99 "
            "(files s01.dat ... s99.dat)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for subject in range(first_subject, first_subject + n_subjects):
        data, labels = generate_subject(subject, n_trials, seed)
        path = write_deap(out / f"s{subject:02d}.dat", data, labels)
        del data  # keep one subject (~100 MB at 40 trials) in memory at a time
        if on_written is not None:
            on_written(path)
        paths.append(path)
    # Provenance beside the files, so that training reports and model cards say "synthetic"
    # instead of passing these files off as DEAP.
    marker = {
        "generator": "affectstream synth (training/synthetic.py)",
        "synthetic": True,
        "format": "DEAP data_preprocessed_python",
        "seed": seed,
        "subjects": n_subjects,
        "first_subject": first_subject,
        "trials": n_trials,
        "note": "synthetic data, not DEAP; see docs/synthetic-data.md",
    }
    write_marker(out, marker)
    return paths
