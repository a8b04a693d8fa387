"""A synthetic dataset in the PMEmo (2019) layout, with documented music and EDA effects.

The generator writes the folder tree that :func:`affectstream.streaming.formats.pmemo.open_pmemo`
reads like the real one (``metadata.csv``, ``annotations/*.csv``, ``features/static_features.csv``
with 6373 columns, ``EDA/<musicId>_EDA.csv`` at 50 Hz) plus our optional per-subject rating file,
but its values follow a small, explicit generative model:

- every song has a latent (valence, arousal) on [0, 1] (arousal ~ N(0.62, 0.17), valence
  correlated with it, as in PMEmo where most songs are happy and energetic);
- **the music features carry part of the label**: 48 of the 6373 features are noisy linear
  functions of the song's latents (r ≈ 0.25-0.65 each), the rest are noise shared through a few
  nuisance factors; feature scales span 1e-3 to 1e4, so standardising matters;
- a subject's felt (valence, arousal) for a song = song latent + the subject's bias + a
  per-(subject, song) deviation; the per-subject rating is the felt value clipped to [0, 1], the
  static means and SDs are computed from those ratings, the dynamic annotations are a smooth 2 Hz
  curve around the static mean from 15.5 s;
- **the EDA carries another part**: skin conductance = tonic level + drift + Bateman-shaped SCRs
  whose rate and size grow with the subject's *felt* arousal (including the per-(subject, song)
  deviation that the music cannot know); felt valence shortens the SCR rise time (a weaker
  effect). Every subject has its own level and responsiveness; nothing separates perfectly.

EDA effects (:data:`EFFECTS`), per 0.1 of felt value above 0.5, times the subject's
responsiveness (log-normal, median 1, log-SD 0.3), plus recording noise:

=====================  =======  ==================  =============  ==========================
latent                 label    per 0.1             felt 0.3→0.9   recording noise
=====================  =======  ==================  =============  ==========================
SCR rate               arousal  ×e^0.15 (×1.16)     ×2.5           ×e^N(0, 0.2)
SCR amplitude          arousal  ×e^0.08 (×1.08)     ×1.6           ×e^N(0, 0.2)
tonic rise (τ 15 s)    arousal  +1.5 % of SCL       +9 %           2 % of SCL
SCR rise time (τr)     valence  ×e^-0.1 (×0.90)     ×0.55          ×e^N(0, 0.1)
=====================  =======  ==================  =============  ==========================

``docs/synthetic-pmemo.md`` explains the model and what detectors measure on it (SCR count vs
felt arousal: r ≈ 0.4-0.5 within subjects). The skin conductance model, trait draws and
label-effect rule shared with the DEAP generator are in
:mod:`affectstream.streaming.synthetic.physiology`. Nothing measured on this data is a PMEmo result.

Listening: each subject is assigned to each song with probability 0.85; of the assigned, 3 % did
not listen (an all-empty EDA column, no rating) and 10 % stopped early (trailing empty cells).
Songs with index ≡ 11 (mod 25) have no annotation at all (about 4 %, as the 27 of 794 in PMEmo).

Randomness: song *k* draws from ``SeedSequence([seed, SONG, k])``, subject *j* from
``SeedSequence([seed, SUBJECT, j])``, their pair from ``SeedSequence([seed, PAIR, j, k])`` and
the feature model from ``SeedSequence([seed, FEATURES])`` (spawn keys separate latents, features
and signals), so a song, a subject or a recording is the same whatever the numbers of songs and
subjects generated. Only the per-song means and SDs depend on who rated the song.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.formats.pmemo import (
    DYNAMIC_FILE,
    DYNAMIC_START_S,
    DYNAMIC_STD_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    N_STATIC_FEATURES,
    SFREQ,
    STATIC_FILE,
    STATIC_STD_FILE,
    SUBJECT_RATINGS_FILE,
)
from affectstream.streaming.synthetic.physiology import (
    SYNTHETIC_MARKER,
    FloatArray,
    draw_responsiveness,
    draw_resting_scl_us,
    draw_scr_decay_s,
    draw_trial_scl_us,
    effect_shift,
    lognormal,
    measured_conductance,
    onset_ramp,
    scr_events,
    scr_kernel,
    seeded_rng,
    tonic_conductance,
    write_marker,
)

__all__ = [
    "EFFECTS",
    "FIRST_SUBJECT_ID",
    "MAX_SONGS",
    "MAX_SUBJECTS",
    "SYNTHETIC_MARKER",
    "FeatureModel",
    "PmemoEffect",
    "PmemoTruth",
    "SongLatents",
    "SubjectTraits",
    "TrialLatents",
    "eda_signal",
    "feature_model",
    "is_synthetic_pmemo",
    "pmemo_truth",
    "song_features",
    "song_latents",
    "subject_traits",
    "trial_latents",
    "write_synthetic_pmemo",
]

MAX_SUBJECTS = 999
"""Subject ids are 6 digits from :data:`FIRST_SUBJECT_ID`: 100001 … 100999."""
MAX_SONGS = 794
"""PMEmo has 794 songs."""
FIRST_SUBJECT_ID = 100001

_SONG, _SUBJECT, _PAIR, _FEATURES = 0x534F4E47, 0x5355424A, 0x50414952, 0x46454154  # tags
_P_ASSIGNED, _P_ABSENT, _P_EARLY = 0.85, 0.03, 0.10
_UNANNOTATED_EVERY, _UNANNOTATED_AT = 25, 11
_N_AROUSAL_FEATURES, _N_VALENCE_FEATURES, _N_BOTH_FEATURES = 24, 14, 10
_N_NUISANCE = 4
_INFORMATIVE_NOISE_SD = 1.5  # per-feature r 0.25-0.6: together they predict, none is the label
_WARMUP_S = 20.0  # SCRs are simulated from 20 s before the clip, so it starts mid-response


# --------------------------------------------------------------------------------------------
# Effect sizes


@dataclass(frozen=True, slots=True)
class PmemoEffect:
    """How one felt label moves one EDA latent.

    The latent (in ``unit``) changes by ``per_tenth`` for each 0.1 of the subject's felt ``label``
    above 0.5, times the subject's responsiveness, plus recording noise ~ N(0, ``trial_sd``).
    """

    label: str
    per_tenth: float
    trial_sd: float
    unit: str


EFFECTS: Mapping[str, PmemoEffect] = MappingProxyType(
    {
        "scr_rate": PmemoEffect("arousal", 0.15, 0.2, "ln(rate)"),
        "scr_amplitude": PmemoEffect("arousal", 0.08, 0.2, "ln(µS)"),
        "scl_rise": PmemoEffect("arousal", 0.015, 0.02, "fraction of SCL"),
        "scr_rise_time": PmemoEffect("valence", -0.1, 0.1, "ln(s)"),
    }
)
"""Felt label → EDA latent effects (see ``docs/synthetic-pmemo.md``)."""


# --------------------------------------------------------------------------------------------
# Latents


@dataclass(frozen=True, slots=True)
class SongLatents:
    """One song: its emotion (what the music expresses), clip length and chorus position."""

    index: int  # 0-based position in the generated set
    music_id: int
    valence: float  # latent, [0, 1]
    arousal: float
    duration_s: float  # the chorus clip (= the EDA recording at full length)
    chorus_start_s: float  # within the (imaginary) full song
    annotated: bool  # False: no annotation at all, as 27 of PMEmo's 794 songs


@dataclass(frozen=True, slots=True)
class SubjectTraits:
    """One subject's rating habits and resting EDA (constant over songs)."""

    index: int
    subject_id: str  # 6 digits
    bias_valence: float  # added to every felt value
    bias_arousal: float
    responsiveness: float  # multiplies every EDA effect
    scl_us: float  # resting skin conductance level
    scr_rate_per_min: float  # resting rate of non-specific SCRs
    scr_amplitude_us: float  # median resting SCR amplitude
    scr_rise_s: float  # Bateman rise time constant at felt valence 0.5
    scr_decay_s: float


@dataclass(frozen=True, slots=True)
class TrialLatents:
    """One (subject, song) pair: whether and how long they listened, what they felt, the EDA
    latents. ``listened_s == 0`` for an assigned subject who did not listen (empty column)."""

    music_id: int
    subject_id: str
    listened_s: float
    felt_valence: float  # song latent + bias + deviation, before clipping
    felt_arousal: float
    rating_valence: float  # felt, clipped to [0, 1]: the per-subject rating
    rating_arousal: float
    scl_us: float
    scl_rise_us: float
    scr_rate_per_min: float
    scr_amplitude_us: float
    scr_rise_s: float


def _rng(seed: int, tag: int, *key: int, spawn: tuple[int, ...] = ()) -> np.random.Generator:
    """The random stream of ``(seed, tag, *key)`` (see the module docstring)."""
    return seeded_rng((seed, tag, *key), spawn)


def _music_id(index: int) -> int:
    """Sparse ids like PMEmo's (1, 4, 7, …): numeric and text order differ (10 < 4 as text)."""
    return 3 * index + 1


def song_latents(index: int, seed: int = 0) -> SongLatents:
    """The latents of song ``index`` (0-based)."""
    rng = _rng(seed, _SONG, index, spawn=(0,))
    arousal = float(np.clip(rng.normal(0.62, 0.17), 0.08, 0.95))
    valence = float(np.clip(0.60 + 0.5 * (arousal - 0.62) + rng.normal(0.0, 0.13), 0.05, 0.95))
    return SongLatents(
        index=index,
        music_id=_music_id(index),
        valence=valence,
        arousal=arousal,
        duration_s=round(float(rng.uniform(25.0, 40.0)), 1),
        chorus_start_s=float(rng.integers(30, 180)),
        annotated=index % _UNANNOTATED_EVERY != _UNANNOTATED_AT,
    )


def subject_traits(index: int, seed: int = 0) -> SubjectTraits:
    """The traits of subject ``index`` (0-based; id ``100001 + index``)."""
    rng = _rng(seed, _SUBJECT, index)
    return SubjectTraits(
        index=index,
        subject_id=str(FIRST_SUBJECT_ID + index),
        bias_valence=float(rng.normal(0.0, 0.05)),
        bias_arousal=float(rng.normal(0.0, 0.05)),
        responsiveness=draw_responsiveness(rng),
        scl_us=draw_resting_scl_us(rng, 0.5),
        scr_rate_per_min=lognormal(rng, 6.0, 0.3),
        scr_amplitude_us=lognormal(rng, 0.12, 0.4),
        scr_rise_s=lognormal(rng, 0.7, 0.15),
        scr_decay_s=draw_scr_decay_s(rng),
    )


def trial_latents(song: SongLatents, traits: SubjectTraits, seed: int = 0) -> TrialLatents | None:
    """The pair's latents, or ``None`` if the subject was not assigned the song."""
    rng = _rng(seed, _PAIR, traits.index, song.index, spawn=(0,))
    if rng.random() >= _P_ASSIGNED:
        return None
    u = rng.random()
    if u < _P_ABSENT:
        listened = 0.0
    elif u < _P_ABSENT + _P_EARLY:
        listened = round(song.duration_s * float(rng.uniform(0.3, 0.95)), 2)
    else:
        listened = song.duration_s
    deviation = rng.normal(0.0, 0.10, 2)
    felt_v = song.valence + traits.bias_valence + float(deviation[0])
    felt_a = song.arousal + traits.bias_arousal + float(deviation[1])
    drive = {"valence": (felt_v - 0.5) / 0.1, "arousal": (felt_a - 0.5) / 0.1}

    def shift(name: str) -> float:
        e = EFFECTS[name]
        return effect_shift(rng, e.per_tenth, traits.responsiveness, drive[e.label], e.trial_sd)

    scl = draw_trial_scl_us(rng, traits.scl_us)
    return TrialLatents(
        music_id=song.music_id,
        subject_id=traits.subject_id,
        listened_s=listened,
        felt_valence=felt_v,
        felt_arousal=felt_a,
        rating_valence=float(np.clip(felt_v, 0.0, 1.0)),
        rating_arousal=float(np.clip(felt_a, 0.0, 1.0)),
        scl_us=scl,
        scl_rise_us=scl * shift("scl_rise"),
        scr_rate_per_min=traits.scr_rate_per_min * math.exp(shift("scr_rate")),
        scr_amplitude_us=traits.scr_amplitude_us * math.exp(shift("scr_amplitude")),
        scr_rise_s=traits.scr_rise_s * math.exp(shift("scr_rise_time")),
    )


# --------------------------------------------------------------------------------------------
# Music features


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: it holds ndarrays
class FeatureModel:
    """How the 6373 static features are made from a song's latents (shared by all songs).

    z = arousal_loading · za + valence_loading · zv + nuisance_loading @ f + noise_sd · ε, with
    za, zv the song's standardised latents, f ~ N(0, I_4) nuisance factors (tempo, loudness …
    that have nothing to do with emotion) and ε ~ N(0, 1); the value written is center + scale · z.

    names : (6373,) IS13_ComParE-style names (LLD × functional), not the exact openSMILE list
    arousal_loading, valence_loading, noise_sd, center, scale : ndarray (6373,)
    nuisance_loading : ndarray (6373, 4)
    """

    names: tuple[str, ...]
    arousal_loading: FloatArray
    valence_loading: FloatArray
    nuisance_loading: FloatArray
    noise_sd: FloatArray
    center: FloatArray
    scale: FloatArray

    @property
    def informative(self) -> NDArray[np.int64]:
        """Indices of the features that depend on valence or arousal."""
        idx: NDArray[np.int64] = np.flatnonzero(
            (self.arousal_loading != 0) | (self.valence_loading != 0)
        )
        return idx


_LLDS = (
    ["audspec_lengthL1norm", "audspecRasta_lengthL1norm", "pcm_RMSenergy", "pcm_zcr"]
    + [f"audSpec_Rfilt[{i}]" for i in range(26)]
    + [
        f"pcm_fftMag_{name}"
        for name in (
            """
            fband250-650 fband1000-4000 spectralRollOff25.0 spectralRollOff50.0
            spectralRollOff75.0 spectralRollOff90.0 spectralFlux spectralCentroid
            spectralEntropy spectralVariance spectralSkewness spectralKurtosis spectralSlope
            psySharpness spectralHarmonicity
            """.split()
        )
    ]
    + [f"pcm_fftMag_mfcc[{i}]" for i in range(1, 15)]
    + ["F0final", "voicingFinalUnclipped", "jitterLocal", "jitterDDP", "shimmerLocal", "logHNR"]
)
_FUNCTIONALS = tuple(
    """
        amean stddev skewness kurtosis flatness posamean rqmean range maxPos minPos quartile1
        quartile2 quartile3 iqr1-2 iqr2-3 iqr1-3 percentile1.0 percentile99.0 pctlrange0-1
        upleveltime25 upleveltime50 upleveltime75 upleveltime90 risetime leftctime lpgain lpc0 lpc1
        lpc2 lpc3 lpc4 linregc1 linregc2 linregerrA linregerrQ qregc1 qregc2 qregc3 qregerrA
        qregerrQ centroid peakRangeAbs peakRangeRel peakMeanAbs peakMeanMeanDist peakMeanRel
        meanRisingSlope stddevRisingSlope meanFallingSlope stddevFallingSlope
    """.split()
)


def _feature_names() -> tuple[str, ...]:
    """6373 unique IS13-style names: ``<lld>_sma[_de]_<functional>`` (``[i]`` after ``sma``)."""
    names = []
    for delta in ("", "_de"):
        for lld in _LLDS:
            base, _, index = lld.partition("[")
            for functional in _FUNCTIONALS:
                suffix = f"[{index}" if index else ""
                names.append(f"{base}_sma{delta}{suffix}_{functional}")
    return tuple(names[:N_STATIC_FEATURES])


@cache
def feature_model(seed: int = 0) -> FeatureModel:
    """The feature model of a seed (which features are informative, their loadings and scales)."""
    rng = _rng(seed, _FEATURES)
    n = N_STATIC_FEATURES
    arousal, valence = np.zeros(n), np.zeros(n)
    chosen = rng.choice(n, _N_AROUSAL_FEATURES + _N_VALENCE_FEATURES + _N_BOTH_FEATURES, False)
    a_only = chosen[:_N_AROUSAL_FEATURES]
    v_only = chosen[_N_AROUSAL_FEATURES : _N_AROUSAL_FEATURES + _N_VALENCE_FEATURES]
    both = chosen[_N_AROUSAL_FEATURES + _N_VALENCE_FEATURES :]

    def loadings(k: int, lo: float, hi: float) -> FloatArray:
        sign = rng.choice([-1.0, 1.0], k)
        values: FloatArray = sign * rng.uniform(lo, hi, k)
        return values

    arousal[a_only] = loadings(len(a_only), 0.5, 1.2)
    valence[v_only] = loadings(len(v_only), 0.5, 1.2)
    arousal[both] = loadings(len(both), 0.4, 0.8)
    valence[both] = loadings(len(both), 0.4, 0.8)
    nuisance = rng.normal(0.0, 0.3, (n, _N_NUISANCE))
    scale = 10.0 ** rng.uniform(-3.0, 4.0, n)
    center = scale * rng.uniform(-1.0, 6.0, n)
    noise = np.ones(n)
    noise[chosen] = _INFORMATIVE_NOISE_SD
    for arr in (arousal, valence, nuisance, noise, scale, center):
        arr.flags.writeable = False
    return FeatureModel(_feature_names(), arousal, valence, nuisance, noise, center, scale)


def song_features(song: SongLatents, seed: int = 0) -> FloatArray:
    """The static feature vector of a song, shape (6373,)."""
    model = feature_model(seed)
    rng = _rng(seed, _SONG, song.index, spawn=(1,))
    za, zv = (song.arousal - 0.62) / 0.17, (song.valence - 0.60) / 0.15
    z = (
        model.arousal_loading * za
        + model.valence_loading * zv
        + model.nuisance_loading @ rng.normal(0.0, 1.0, _N_NUISANCE)
        + model.noise_sd * rng.normal(0.0, 1.0, N_STATIC_FEATURES)
    )
    x: FloatArray = model.center + model.scale * z
    return x


# --------------------------------------------------------------------------------------------
# EDA


def _smooth_noise(rng: np.random.Generator, n: int, sigma_s: float) -> FloatArray:
    """Unit-variance noise smoothed by a Gaussian of ``sigma_s``, shape (n,)."""
    half = int(3 * sigma_s * SFREQ)
    window = np.exp(-0.5 * (np.arange(-half, half + 1) / (sigma_s * SFREQ)) ** 2)
    white = rng.normal(0.0, 1.0, n + 2 * half)
    smooth: FloatArray = np.convolve(white, window / np.sqrt(np.sum(window**2)), mode="valid")
    return smooth


def eda_signal(
    song: SongLatents, traits: SubjectTraits, trial: TrialLatents, seed: int = 0
) -> FloatArray:
    """Skin conductance (µS) at 50 Hz, shape (round(listened_s · 50),).

    Tonic level (+ an arousal-linked rise with a 15 s time constant, a linear drift and slow
    wander) + SCRs (Poisson onsets at the resting rate before the clip and the trial rate during
    it, Bateman shape with the trial's rise time, log-normal sizes) + 0.003 µS sensor noise.
    """
    rng = _rng(seed, _PAIR, traits.index, song.index, spawn=(1,))
    n = round(song.duration_s * SFREQ)
    t = np.arange(n) / SFREQ
    tonic = tonic_conductance(
        rng,
        trial.scl_us,
        trial.scl_rise_us,
        onset_ramp(t, 0.0, 15.0),
        t,
        wander=lambda r: _smooth_noise(r, n, 3.0),
        wander_fraction=0.01,
    )
    onsets, sizes = scr_events(
        rng,
        rest_rate_per_min=traits.scr_rate_per_min,
        rest_amplitude_us=traits.scr_amplitude_us,
        task_rate_per_min=trial.scr_rate_per_min,
        task_amplitude_us=trial.scr_amplitude_us,
        start_s=-_WARMUP_S,
        onset_s=0.0,
        stop_s=song.duration_s,
    )
    kernel = scr_kernel(SFREQ, trial.scr_rise_s, traits.scr_decay_s, 20.0)
    warm = int(_WARMUP_S * SFREQ)
    phasic = np.zeros(warm + n)
    for onset, size in zip(onsets, sizes, strict=True):
        i = int((onset + _WARMUP_S) * SFREQ)
        piece = kernel[: warm + n - i]
        phasic[i : i + len(piece)] += size * piece
    listened = round(trial.listened_s * SFREQ)
    return measured_conductance(rng, tonic, phasic[warm:])[:listened]


# --------------------------------------------------------------------------------------------
# The whole set


@dataclass(frozen=True, slots=True)
class PmemoTruth:
    """Ground truth of a generated set (for docs and debugging; tests measure from the files)."""

    seed: int
    songs: tuple[SongLatents, ...]
    subjects: tuple[SubjectTraits, ...]
    trials: Mapping[tuple[int, str], TrialLatents]
    """(music_id, subject_id) → latents, for assigned pairs only."""

    def raters(self, music_id: int) -> list[TrialLatents]:
        """The pairs that rated a song: assigned and listened (some or all of it)."""
        pairs = (self.trials.get((music_id, s.subject_id)) for s in self.subjects)
        return [trial for trial in pairs if trial is not None and trial.listened_s > 0]


def pmemo_truth(n_subjects: int = 24, n_songs: int = 30, seed: int = 0) -> PmemoTruth:
    """The latents of a set of ``n_subjects`` × ``n_songs`` (what the files are made from)."""
    if not 1 <= n_subjects <= MAX_SUBJECTS:
        raise ValueError(f"n_subjects must be 1-{MAX_SUBJECTS}, got {n_subjects}")
    if not 1 <= n_songs <= MAX_SONGS:
        raise ValueError(f"n_songs must be 1-{MAX_SONGS}, got {n_songs}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    songs = tuple(song_latents(k, seed) for k in range(n_songs))
    subjects = tuple(subject_traits(j, seed) for j in range(n_subjects))
    trials = {}
    for song in songs:
        for traits in subjects:
            trial = trial_latents(song, traits, seed)
            if trial is not None:
                trials[song.music_id, traits.subject_id] = trial
    return PmemoTruth(seed, songs, subjects, MappingProxyType(trials))


# --------------------------------------------------------------------------------------------
# Writing


def _write(path: Path, lines: list[str], on_written: Callable[[Path], Any] | None) -> Path:
    """Write ``lines`` (CSV rows) atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    if on_written is not None:
        on_written(path)
    return path


def _csv_field(text: str) -> str:
    return f'"{text}"' if "," in text or '"' in text else text


def _mmss(seconds: float) -> str:
    return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"


def _song_annotations(truth: PmemoTruth, song: SongLatents) -> tuple[FloatArray, FloatArray] | None:
    """Per-song mean and SD (valence, arousal) of the ratings, or None without annotation."""
    if not song.annotated:
        return None
    ratings = np.array([(t.rating_valence, t.rating_arousal) for t in truth.raters(song.music_id)])
    if len(ratings) == 0:
        return None
    std = ratings.std(axis=0, ddof=1) if len(ratings) > 1 else np.zeros(2)
    return ratings.mean(axis=0), std


def _dynamic_rows(
    song: SongLatents, mean: FloatArray, std: FloatArray, seed: int
) -> tuple[list[str], list[str]]:
    """2 Hz rows from 15.5 s to the clip's end: the mean ± a smooth wander (SD 0.03)."""
    rng = _rng(seed, _SONG, song.index, spawn=(2,))
    times = np.arange(DYNAMIC_START_S, song.duration_s + 1e-9, 0.5)
    t = times[:, None]
    phase = rng.uniform(0, 2 * np.pi, (3, 2))
    period = rng.uniform(6.0, 20.0, (3, 2))
    wander = sum(np.sin(2 * np.pi * t / period[i] + phase[i]) for i in range(3)) * 0.03 / 1.22
    values = np.clip(mean + wander, 0.0, 1.0)
    spread = np.maximum(std * (1.0 + 0.5 * wander), 0.0)
    rows = [
        f"{song.music_id},{ti:.1f},{a:.6f},{v:.6f}"
        for ti, (v, a) in zip(times, values, strict=True)
    ]
    std_rows = [
        f"{song.music_id},{ti:.1f},{a:.6f},{v:.6f}"
        for ti, (v, a) in zip(times, spread, strict=True)
    ]
    return rows, std_rows


def _eda_lines(truth: PmemoTruth, song: SongLatents) -> list[str] | None:
    """The song's EDA file: index column, then one column per assigned subject."""
    columns = []
    names = []
    for traits in truth.subjects:
        trial = truth.trials.get((song.music_id, traits.subject_id))
        if trial is not None:
            columns.append(eda_signal(song, traits, trial, truth.seed))
            names.append(f"{song.music_id}_{traits.subject_id}")
    if not columns:
        return None  # nobody was assigned the song: no file
    n = round(song.duration_s * SFREQ)
    table = np.full((n, len(columns)), np.nan)
    for j, x in enumerate(columns):
        table[: len(x), j] = x
    row_format = ",".join(["%.4f"] * len(columns))
    lines = ["," + ",".join(names)]  # the index column's header is empty, as pandas writes it
    lines += [
        f"{i}," + (row_format % tuple(row)).replace("nan", "")  # NaN: stopped listening
        for i, row in enumerate(table.tolist())
    ]
    return lines


def write_synthetic_pmemo(
    out_dir: Path | str,
    n_subjects: int = 24,
    n_songs: int = 30,
    seed: int = 0,
    *,
    on_written: Callable[[Path], Any] | None = None,
) -> list[Path]:
    """Write a synthetic PMEmo tree into ``out_dir`` (created; files of the same name replaced).

    ``on_written`` is called with each path as soon as it is written. Returns the paths written
    (EDA files last). A song nobody was assigned gets no EDA file.
    """
    truth = pmemo_truth(n_subjects, n_songs, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def write(name: str, lines: list[str]) -> None:
        paths.append(_write(out / name, lines, on_written))

    meta = [
        ",".join(
            (
                "musicId",
                "fileName",
                "title",
                "artist",
                "album",
                "duration",
                "chorus_start_time",
                "chorus_end_time",
            )
        )
    ]
    static = ["musicId,Arousal(mean),Valence(mean)"]
    static_std = ["musicId,Arousal(std),Valence(std)"]
    dynamic = ["musicId,frameTime,Arousal(mean),Valence(mean)"]
    dynamic_std = ["musicId,frameTime,Arousal(std),Valence(std)"]
    per_subject = ["subjectId,musicId,Arousal,Valence"]
    features = [",".join(("musicId", *feature_model(seed).names))]
    for song in truth.songs:
        m = song.music_id
        end = song.chorus_start_s + round(song.duration_s)
        meta.append(
            f"{m},{m}.mp3,Synthetic song {m},Synthetic artist {song.index % 7 + 1},"
            f"{_csv_field(f'Synthetic hits, vol. {song.index % 3 + 1}')},"
            f"{song.duration_s:.1f},{_mmss(song.chorus_start_s)},{_mmss(end)}"
        )
        x = song_features(song, seed)
        features.append(f"{m}," + ",".join(f"{v:.7g}" for v in x.tolist()))
        annotations = _song_annotations(truth, song)
        if annotations is None:
            continue
        (v, a), (sv, sa) = annotations
        static.append(f"{m},{a:.6f},{v:.6f}")
        static_std.append(f"{m},{sa:.6f},{sv:.6f}")
        rows, std_rows = _dynamic_rows(song, annotations[0], annotations[1], seed)
        dynamic += rows
        dynamic_std += std_rows
        for trial in truth.raters(m):
            per_subject.append(
                f"{trial.subject_id},{m},{trial.rating_arousal:.6f},{trial.rating_valence:.6f}"
            )
    write(METADATA_FILE, meta)
    write(STATIC_FILE, static)
    write(STATIC_STD_FILE, static_std)
    write(DYNAMIC_FILE, dynamic)
    write(DYNAMIC_STD_FILE, dynamic_std)
    write(SUBJECT_RATINGS_FILE, per_subject)
    write(FEATURES_FILE, features)
    for song in truth.songs:
        eda = _eda_lines(truth, song)
        if eda is not None:
            write(f"EDA/{song.music_id}_EDA.csv", eda)
    # Provenance beside the files, so that nothing built on them passes for PMEmo.
    marker = {
        "generator": "affectstream synth --format pmemo (training/synthetic_pmemo.py)",
        "synthetic": True,
        "format": "PMEmo 2019 layout (+ annotations/subject_static_annotations.csv)",
        "seed": seed,
        "subjects": n_subjects,
        "songs": n_songs,
        "note": "synthetic data, not PMEmo; see docs/synthetic-pmemo.md",
    }
    write_marker(out, marker)
    return paths


def is_synthetic_pmemo(root: Path | str) -> bool:
    """Whether a PMEmo-layout folder is affectstream's synthetic one: its ``SYNTHETIC.json`` is
    there, or (a copy that lost it) every song of ``metadata.csv`` is titled "Synthetic song …",
    as :func:`write_synthetic_pmemo` names them (the flag inside the data, since the CSV layout
    has no room for one)."""
    import csv

    folder = Path(root)
    if (folder / SYNTHETIC_MARKER).is_file():
        return True
    meta = folder / "metadata.csv"
    if not meta.is_file():
        return False
    with meta.open(newline="", encoding="utf-8", errors="replace") as f:
        titles = [row.get("title", "") for row in csv.DictReader(f)]
    return bool(titles) and all(t.startswith("Synthetic song ") for t in titles)
