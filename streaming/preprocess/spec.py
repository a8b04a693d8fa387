"""The preprocessing vocabulary: what a model needs, described by value.

These frozen dataclasses say *what* to compute — which channels of which streams, at which rate,
through which filters, over which window, as which feature — and nothing about *how*: they hold no
state and import none of the machinery. A model contract
(:mod:`affectstream.models.contract`) is written in these terms and stored beside the ONNX file;
the stateful machinery that carries them out is :mod:`affectstream.streaming.preprocess.pipeline`
(the :class:`~affectstream.streaming.preprocess.pipeline.Preprocessor`) with the filters of
:mod:`affectstream.streaming.preprocess.filters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "OPT_BASELINE_SUBTRACT",
    "OPT_DE_GAMMA_HI",
    "OPT_HRV",
    "PREPROCESS_OPTIONS",
    "ChannelRef",
    "FeatureInput",
    "FeatureKind",
    "FilterSpec",
    "PreprocessSpec",
]

# Options of the preprocessing itself (FeatureInput.options; every other option of an EDA_CVX3
# input is a cvxEDA parameter). Stored in the contract with the feature, so serving computes what
# training did (docs/eeg-features.md, "Paper-faithful options").
OPT_BASELINE_SUBTRACT = "baseline_subtract"
"""1: Yang et al.'s DEAP baseline correction on the calibration period instead of z-scoring by it:
the mean one-second chunk of the ``baseline_s`` seconds is subtracted from every later second
(needs whole seconds and a whole-number rate)."""
OPT_DE_GAMMA_HI = "de_gamma_hi_hz"
"""``EEG_DE`` only: the upper edge of the γ band, Hz (default 45; Tang et al.: 50)."""
OPT_HRV = "hrv_from_ppg"
"""1 on a ``RAW`` input: one more column after its channels, the HRV series of its PPG channel
(athar70's MLSTM-FCN channel, :func:`affectstream.streaming.preprocess.peripheral.hrv_series`)."""
PREPROCESS_OPTIONS = (OPT_BASELINE_SUBTRACT, OPT_DE_GAMMA_HI, OPT_HRV)


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """A Butterworth design (or a notch), described by value so it can live in a model contract.

    kind : "lowpass", "highpass", "bandpass" or "notch"
    freqs : cut-off(s) in Hz: one for low/high-pass and notch, two for band-pass
    order : Butterworth order (per edge for band-pass); notch ignores it
    notch_q : quality factor of a notch
    """

    kind: str
    freqs: tuple[float, ...]
    order: int = 4
    notch_q: float = 30.0

    def __post_init__(self) -> None:
        need = 2 if self.kind == "bandpass" else 1
        if self.kind not in ("lowpass", "highpass", "bandpass", "notch"):
            raise ValueError(f"unknown filter kind {self.kind!r}")
        if len(self.freqs) != need:
            raise ValueError(f"{self.kind} needs {need} frequency(ies), got {self.freqs}")


class FeatureKind(StrEnum):
    """The feature an input computes, with its per-window shape."""

    RAW = "raw"  # (n_samples, n_channels) after filters
    EEG_DE = "eeg_de"  # (n_steps, n_bands × n_channels) differential entropy
    EEG_GRID = "eeg_grid"  # (n_samples, 9, 9) electrode grid
    PERIPH_STATS = "periph_stats"  # (n_steps, 6 × n_channels)
    EDA_CVX3 = "eda_cvx3"  # (3, n_samples): origin, tonic, phasic (online cvxEDA)


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A channel by stream type and label, e.g. ``ChannelRef("GSR", "GSR")``."""

    stream: str
    label: str


@dataclass(frozen=True, slots=True)
class FeatureInput:
    """One model input: channels → (rate, filters) → feature over the trailing window."""

    name: str
    kind: FeatureKind
    channels: tuple[ChannelRef, ...]
    srate: float
    window_s: float
    step_s: float = 2.0
    filters: tuple[FilterSpec, ...] = ()
    options: tuple[tuple[str, float], ...] = ()  # e.g. cvxEDA parameters
    baseline_s: float = 0.0
    """If > 0: the first ``baseline_s`` seconds this input sees are a calibration period. Their
    per-channel mean and standard deviation (after the filters) standardise every later sample,
    and windows never include them. Offline on DEAP that period is the trial's 3 s pre-trial
    baseline; online it is the first seconds of the live session (or after a gap), because a live
    session has no pre-trial baseline per stimulus — the closest equivalent is the subject at rest
    when recording starts. The semantics are the same function either way."""
    min_channels: int | None = None
    """``None``: every channel is needed. A number: the input also runs on a partial montage with
    at least that many of its channels, the absent ones fed as zeros (for a grid input, zero
    cells) — for models trained with channel dropout. Not part of the feature's computation: the
    contract stores it beside the feature."""
    optional_streams: tuple[str, ...] = ()
    """Streams of this input the model *may use*: when a session has no stream of such a type,
    the input's channels of it are absent and fed as zeros (the feature of a zero signal), as the
    model saw them in training under stream dropout (``training/augment.py``,
    :class:`~affectstream.training.augment.StreamDropout`); every other stream is needed.
    ``RAW`` inputs only, at least one stream needed. Like ``min_channels``, the contract stores it
    beside the feature."""

    def __post_init__(self) -> None:
        opts = dict(self.options)
        if self.optional_streams:
            own = self.streams
            if any(s not in own for s in self.optional_streams):
                raise ValueError(
                    f"{self.name}: optional streams {list(self.optional_streams)} are not all "
                    f"among its streams {list(own)}"
                )
            if self.kind != FeatureKind.RAW or len(set(self.optional_streams)) == len(own):
                raise ValueError(
                    f"{self.name}: optional streams need a raw input with at least one stream "
                    "that is not optional"
                )
            if opts.get(OPT_HRV) and "PPG" in self.optional_streams:
                raise ValueError(f"{self.name}: the PPG of {OPT_HRV} cannot be optional")
        if opts.get(OPT_HRV) and (
            self.kind != FeatureKind.RAW or [c.stream for c in self.channels].count("PPG") != 1
        ):
            raise ValueError(f"{self.name}: {OPT_HRV} needs a raw input with one PPG channel")
        if OPT_DE_GAMMA_HI in opts:
            if self.kind != FeatureKind.EEG_DE:
                raise ValueError(f"{self.name}: {OPT_DE_GAMMA_HI} is an option of eeg_de inputs")
            if not 31.0 < opts[OPT_DE_GAMMA_HI] <= self.srate / 2:
                raise ValueError(
                    f"{self.name}: γ upper edge {opts[OPT_DE_GAMMA_HI]:g} Hz is not in "
                    f"(31, {self.srate / 2:g}] Hz"
                )
        if opts.get(OPT_BASELINE_SUBTRACT):
            whole = all(abs(v - round(v)) < 1e-9 for v in (self.srate, self.baseline_s))
            if self.baseline_s <= 0 or not whole or self.kind == FeatureKind.EDA_CVX3:
                raise ValueError(
                    f"{self.name}: {OPT_BASELINE_SUBTRACT} needs a calibration period of whole "
                    "seconds at a whole-number rate, and no cvxEDA"
                )

    @property
    def hrv(self) -> bool:
        """Whether the input appends the HRV column of its PPG channel (:data:`OPT_HRV`)."""
        return bool(dict(self.options).get(OPT_HRV))

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.stream for c in self.channels))

    @property
    def n_window(self) -> int:
        return round(self.window_s * self.srate)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-window shape of the feature (what the model input gets, without batch)."""
        n_ch = len(self.channels)
        steps = round(self.window_s / self.step_s)
        return {
            FeatureKind.RAW: (self.n_window, n_ch + int(self.hrv)),
            FeatureKind.EEG_DE: (steps, 4 * n_ch),
            FeatureKind.EEG_GRID: (self.n_window, 9, 9),
            FeatureKind.PERIPH_STATS: (steps, 6 * n_ch),
            FeatureKind.EDA_CVX3: (3, self.n_window),
        }[self.kind]


@dataclass(frozen=True, slots=True)
class PreprocessSpec:
    inputs: tuple[FeatureInput, ...]
    hop_s: float

    def __post_init__(self) -> None:
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"input names must be unique, got {names}")
        for i in self.inputs:
            for what, value in (("window_s", i.window_s), ("hop_s", self.hop_s)):
                n = value * i.srate
                if abs(n - round(n)) > 1e-9 or n < 1:
                    raise ValueError(f"{i.name}: {what} × srate = {n:g} is not a whole number")
            if i.kind in (FeatureKind.EEG_DE, FeatureKind.PERIPH_STATS):
                steps = i.window_s / i.step_s
                if abs(steps - round(steps)) > 1e-9:
                    raise ValueError(f"{i.name}: window_s is not a whole number of step_s")

    @property
    def window_s(self) -> float:
        return max(i.window_s for i in self.inputs)

    @property
    def streams(self) -> tuple[str, ...]:
        """Every stream type the spec reads, needed or optional, in order of first use."""
        return tuple(dict.fromkeys(s for i in self.inputs for s in i.streams))

    @property
    def needed_streams(self) -> tuple[str, ...]:
        """The stream types without which the spec cannot run: those some input does not name
        as optional (:attr:`FeatureInput.optional_streams`)."""
        return tuple(
            s
            for s in self.streams
            if any(s in i.streams and s not in i.optional_streams for i in self.inputs)
        )

    @property
    def optional_streams(self) -> tuple[str, ...]:
        """The stream types the spec may use: read when a session has them, zeros otherwise."""
        needed = self.needed_streams
        return tuple(s for s in self.streams if s not in needed)
