"""What each architecture is fed: its default preprocessing (a PreprocessSpec) and training stride.

The serving hop is 0.25 s (4 predictions per second). Where a paper's choice is kept or changed,
the comment says so; everything here is copied into the model contract at export, so the service
computes exactly these features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from affectstream.streaming.formats.deap import CHANNELS, EEG_NAMES
from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    FilterSpec,
    PreprocessSpec,
)
from affectstream.streaming.replay.deap import REPLAY_STREAMS

__all__ = ["PMEMO_PRESETS", "PRESETS", "STREAM_LABELS", "Preset", "preset"]

HOP_S = 0.25
STREAM_LABELS = {s.type: tuple(CHANNELS[i].name for i in s.channels) for s in REPLAY_STREAMS}
_STREAM_OF = {label: kind for kind, labels in STREAM_LABELS.items() for label in labels}

EEG = tuple(ChannelRef("EEG", n) for n in EEG_NAMES)
PERIPHERAL = tuple(
    ChannelRef(_STREAM_OF[n], n)
    for n in ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature")
)
GSR = (ChannelRef("GSR", "GSR"),)
EEG_BAND = (FilterSpec("bandpass", (4.0, 45.0), 4),)  # DEAP's own EEG band, applied live too


@dataclass(frozen=True)
class Preset:
    spec: PreprocessSpec
    stride_s: float  # training windows: one every stride_s (the state still advances per hop)
    note: str
    hyper: dict[str, Any] = field(default_factory=dict)


def _spec(*inputs: FeatureInput) -> PreprocessSpec:
    return PreprocessSpec(tuple(inputs), HOP_S)


PRESETS: dict[str, Preset] = {
    # Liao/Yang: 1 s segments, 9×9 grids of baseline-corrected, z-scored EEG + peripheral raw.
    # Baseline: the 3 s calibration period standardises every channel (DEAP pre-trial baseline).
    "cnn-lstm": Preset(
        _spec(
            FeatureInput(
                "eeg_grid", FeatureKind.EEG_GRID, EEG, 128.0, 1.0, filters=EEG_BAND, baseline_s=3.0
            ),
            FeatureInput("periph", FeatureKind.RAW, PERIPHERAL, 128.0, 1.0, baseline_s=3.0),
        ),
        stride_s=1.0,
        note="1 s windows at 128 Hz (Yang et al.'s segments), non-overlapping in training",
    ),
    # Yin et al.: skin conductance only → cvxEDA (origin, tonic, phasic). 20 s at 16 Hz: L = 320
    # (the paper resizes whole clips to 2500 samples; a live model needs a fixed trailing window).
    "rtcan1d": Preset(
        _spec(FeatureInput("eda", FeatureKind.EDA_CVX3, GSR, 16.0, 20.0)),
        stride_s=2.0,
        note="20 s trailing window of skin conductance at 16 Hz, online cvxEDA",
    ),
    # Tang et al.: DE of 4 bands on 2 s Hann steps + six statistics of the 8 peripheral channels.
    "bimodal-lstm": Preset(
        _spec(
            FeatureInput("eeg_de", FeatureKind.EEG_DE, EEG, 128.0, 10.0, filters=EEG_BAND),
            FeatureInput("periph_stats", FeatureKind.PERIPH_STATS, PERIPHERAL, 128.0, 10.0),
        ),
        stride_s=2.0,
        note="10 s = 5 steps of 2 s",
    ),
    "mlstm-fcn": Preset(
        _spec(FeatureInput("x", FeatureKind.RAW, PERIPHERAL, 32.0, 10.0, baseline_s=3.0)),
        stride_s=2.0,
        note="8 peripheral channels, 10 s at 32 Hz, standardised by the calibration period",
    ),
}
# gupta-ayushi: ch 1–37 (32 EEG + hEOG, vEOG, zEMG, tEMG, GSR), 2 s at 128 Hz
_GUPTA = _spec(FeatureInput("x", FeatureKind.RAW, EEG + PERIPHERAL[:5], 128.0, 2.0, baseline_s=3.0))
for _name in ("lstm", "gru", "bilstm"):
    PRESETS[_name] = Preset(_GUPTA, stride_s=2.0, note="2 s windows of 37 channels (gupta-ayushi)")


# PMEmo (Yin et al.): skin conductance at 50 Hz, plus the song's music features for the fusion
# models. RTCAN-1D's 16 Hz is not a whole fraction of 50 Hz, and the preprocessing (online and
# offline alike) only decimates by whole factors, so PMEmo models decompose at 25 Hz — the cvxEDA
# README's rate — over the same 20 s window (L = 500). The hop is 0.2 s: 0.25 s would be 12.5
# samples at 50 Hz. A model trained so is served from 50 Hz streams (PMEmo's, and its replay's),
# not from DEAP's 128 Hz. The music vector is not a stream feature (it comes with the stimulus,
# the contract's stimulus input); the music-only baseline reads no EDA but is scored on the same
# windows, so that every model meets the same test set.
PMEMO_HOP_S = 0.2
_PMEMO_EDA = PreprocessSpec(
    (FeatureInput("eda", FeatureKind.EDA_CVX3, GSR, 25.0, 20.0),), PMEMO_HOP_S
)
_PMEMO_NOTE = (
    "20 s trailing window of skin conductance at 25 Hz (from PMEmo's 50 Hz), online cvxEDA"
)
PMEMO_PRESETS: dict[str, Preset] = {
    "rtcan1d": Preset(_PMEMO_EDA, stride_s=2.0, note=_PMEMO_NOTE),
    "rtcan1d-music": Preset(
        _PMEMO_EDA, stride_s=2.0, note=_PMEMO_NOTE + ", + the song's music feature vector"
    ),
    "music-mlp": Preset(
        _PMEMO_EDA,
        stride_s=2.0,
        note="the song's music feature vector alone, scored on the EDA models' 20 s windows",
    ),
}
_BY_DATASET = {"deap": PRESETS, "pmemo": PMEMO_PRESETS}


def preset(name: str, dataset: str = "deap") -> Preset:
    """The preprocessing and training stride of model ``name`` on ``dataset`` (deap, pmemo)."""
    table = _BY_DATASET[dataset]
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"no {dataset} preset for model {name!r}; known: {sorted(table)}"
        ) from None
