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
    OPT_HRV,
    ChannelRef,
    FeatureInput,
    FeatureKind,
    FilterSpec,
    PreprocessSpec,
)
from affectstream.streaming.replay.deap import REPLAY_STREAMS
from affectstream.training.augment import ElectrodeDropout, StreamDropout

__all__ = [
    "PMEMO_PRESETS",
    "PRESETS",
    "STREAM_LABELS",
    "Preset",
    "architecture_of",
    "preset",
    "stream_labels",
]

HOP_S = 0.25
STREAM_LABELS = {s.type: tuple(CHANNELS[i].name for i in s.channels) for s in REPLAY_STREAMS}
_STREAM_OF = {label: kind for kind, labels in STREAM_LABELS.items() for label in labels}

EEG = tuple(ChannelRef("EEG", n) for n in EEG_NAMES)
PERIPHERAL = tuple(
    ChannelRef(_STREAM_OF[n], n)
    for n in ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature")
)
GSR = (ChannelRef("GSR", "GSR"),)
# One-channel streams as live devices send them: labelled by their canonical type (docs/lsl.md,
# "Channel labels"), whatever label the DEAP replay gives them.
PPG = (ChannelRef("PPG", "PPG"),)
RESP = (ChannelRef("RESP", "RESP"),)
LAB_PERIPHERAL = GSR + PPG + RESP  # the use case's peripheral sensors: no AUX (EOG, EMG, skin T)
EEG_BAND = (FilterSpec("bandpass", (4.0, 45.0), 4),)  # DEAP's own EEG band, applied live too


@dataclass(frozen=True)
class Preset:
    """spec : the features; stride_s : training windows, one every stride_s (the state still
    advances per hop); note : one line for the model card; hyper : constructor arguments;
    architecture : the registry architecture, when the preset's name is not one (a variant such
    as ``cnn-lstm-lab``); electrode_dropout : partial-montage augmentation of the ``eeg_grid``
    input in training (:mod:`affectstream.training.augment`), ``None`` for none; stream_dropout :
    absence of the optional streams of raw inputs in training, ``None`` for none."""

    spec: PreprocessSpec
    stride_s: float
    note: str
    hyper: dict[str, Any] = field(default_factory=dict)
    architecture: str | None = None
    electrode_dropout: ElectrodeDropout | None = None
    stream_dropout: StreamDropout | None = None


def _spec(*inputs: FeatureInput) -> PreprocessSpec:
    return PreprocessSpec(tuple(inputs), HOP_S)


PRESETS: dict[str, Preset] = {
    # Liao/Yang: 1 s segments, 9×9 EEG grids + the raw peripheral channels. Not Yang et al.'s
    # baseline correction (subtract the mean 1 s baseline chunk from every 1 s chunk, then z-score
    # each channel over the trial: deap_baseline_correct, which no preset uses): every channel is
    # z-scored by the mean and SD of the 3 s calibration period (DEAP's pre-trial baseline offline,
    # the session's first seconds live), and no window includes those seconds.
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
    # No calibration period: on DEAP the first two windows of a trial (ending at 20 and 22 s) hold
    # seconds of the 3 s pre-trial baseline, which the paper drops. Dropping them here would change
    # the shipped model's training windows, so it waits for a retrain. Labels: threshold 5 by
    # default on DEAP (the paper: per-subject k-means, --label-rule kmeans; training/labels.py).
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
    # Tang et al.'s BDDAE: the Bimodal-LSTM's features for one 2 s Hann step per sample (the paper
    # classifies each window's feature vector; no sequence). Standardised, not min-max scaled as in
    # the paper (docs/models.md#bddae). Like bimodal-lstm, no calibration period: the first
    # training window of a trial ends at 2 s and holds 2 s of DEAP's 3 s pre-trial baseline, the
    # second 1 s.
    "bddae": Preset(
        _spec(
            FeatureInput("eeg_de", FeatureKind.EEG_DE, EEG, 128.0, 2.0, filters=EEG_BAND),
            FeatureInput("periph_stats", FeatureKind.PERIPH_STATS, PERIPHERAL, 128.0, 2.0),
        ),
        stride_s=2.0,
        note="one 2 s step: DE of 4 bands × 32 EEG channels + 6 statistics × 8 peripheral "
        "channels, non-overlapping in training",
    ),
    "mlstm-fcn": Preset(
        _spec(FeatureInput("x", FeatureKind.RAW, PERIPHERAL, 32.0, 10.0, baseline_s=3.0)),
        stride_s=2.0,
        note="8 peripheral channels, 10 s at 32 Hz, standardised by the calibration period",
        # not athar70's 5 channels (GSR, respiration, plethysmograph, temperature, HRV) at 5 s ×
        # 128 Hz: that is the mlstm-fcn-athar preset below
    ),
}
# The sensors people have (issue #14). Same architectures, inputs a lab or a wearable provides.
# The use case's four modalities: the CNN-LSTM's peripheral branch needs GSR, PPG and RESP and may
# use the AUX stream (EOG, EMG, skin temperature: DEAP's other peripheral channels) when a lab has
# it, trained with stream dropout so that it serves without; the EEG grid is trained with electrode
# dropout so that a partial montage (any subset of the 32 positions) still gives a prediction.
AUX = tuple(
    ChannelRef("AUX", n) for n in ("hEOG", "vEOG", "zEMG", "tEMG", "Temperature")
)  # DEAP's AUX channels, in the replay's order
PRESETS["cnn-lstm-lab"] = Preset(
    _spec(
        FeatureInput(
            "eeg_grid", FeatureKind.EEG_GRID, EEG, 128.0, 1.0, filters=EEG_BAND, baseline_s=3.0
        ),
        FeatureInput(
            "periph",
            FeatureKind.RAW,
            LAB_PERIPHERAL + AUX,
            128.0,
            1.0,
            baseline_s=3.0,
            optional_streams=("AUX",),
        ),
    ),
    stride_s=1.0,
    note="CNN-LSTM on EEG (any subset of the 32 grid electrodes) + GSR, PPG, RESP, and AUX (EOG, "
    "EMG, skin temperature) when there is one: 1 s windows at 128 Hz; trained with electrode "
    "dropout and AUX stream dropout",
    architecture="cnn-lstm",
    electrode_dropout=ElectrodeDropout(p=0.5, min_keep=2),
    stream_dropout=StreamDropout(p=0.5),
)
# Peripheral only: MLSTM-FCN on the three sensors, 10 s at 32 Hz (PPG's pulse and RESP's breaths
# are far below 16 Hz), standardised by the calibration period (units differ between devices).
PRESETS["mlstm-fcn-periph"] = Preset(
    _spec(FeatureInput("x", FeatureKind.RAW, LAB_PERIPHERAL, 32.0, 10.0, baseline_s=3.0)),
    stride_s=2.0,
    note="MLSTM-FCN on GSR, PPG, RESP (no EEG, no AUX): 10 s at 32 Hz, standardised by the "
    "calibration period",
    architecture="mlstm-fcn",
)
# Wearable EDA + BVP: RTCAN-1D's EDA trunk as rtcan1d (20 s at 16 Hz, online cvxEDA) and a second
# RTCAN-1D trunk on the pulse (20 s at 32 Hz, 64 Hz wearables decimate by 2), fused by
# concatenation before the classifier as RTCAN-1D fuses its music vector. BVP's amplitude has no
# common unit, so it is standardised by the calibration period. (EDA alone: rtcan1d itself.)
PRESETS["rtcan1d-eda-bvp"] = Preset(
    _spec(
        FeatureInput("eda", FeatureKind.EDA_CVX3, GSR, 16.0, 20.0),
        FeatureInput("bvp", FeatureKind.RAW, PPG, 32.0, 20.0, baseline_s=3.0),
    ),
    stride_s=2.0,
    note="RTCAN-1D on a wearable's EDA (20 s at 16 Hz, online cvxEDA) + BVP (20 s at 32 Hz, "
    "standardised by the calibration period), two trunks fused before the classifier",
    architecture="rtcan1d-bvp",
)
# BDDAE with small layers (16 EEG, 8 peripheral, 8 shared): the same features, for quick runs
# on synthetic data (the tests train it in seconds); not a model to ship.
PRESETS["bddae-quick"] = Preset(
    PRESETS["bddae"].spec,
    stride_s=2.0,
    note="BDDAE with small layers (16 EEG, 8 peripheral, 8 shared units) for quick runs on "
    "synthetic data; one 2 s step of DE + peripheral statistics",
    hyper={"hidden_eeg": 16, "hidden_periph": 8, "hidden_shared": 8},
    architecture="bddae",
)
# athar70's MLSTM-FCN channels: DEAP 37–40 (GSR, respiration, plethysmograph, temperature) + HRV
# from the plethysmograph (streaming/preprocess/peripheral.py hrv_series, computed on each
# window's PPG, so live as in training), 5 s at 128 Hz (640 samples), one training window every
# 3 s as athar70's step. Departures: standardised by the 3 s calibration period (athar70 min-max
# scales over all windows, baseline included), two binary outputs (athar70: 9 classes, see
# training/tasks.py nine-class).
PRESETS["mlstm-fcn-athar"] = Preset(
    _spec(
        FeatureInput(
            "x",
            FeatureKind.RAW,
            PERIPHERAL[4:],
            128.0,
            5.0,
            options=((OPT_HRV, 1.0),),
            baseline_s=3.0,
        )
    ),
    stride_s=3.0,
    note="athar70's 5 variables: GSR, respiration, plethysmograph, temperature + HRV from the "
    "plethysmograph, 5 s at 128 Hz, standardised by the calibration period",
    architecture="mlstm-fcn",
)
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


def architecture_of(name: str, dataset: str = "deap") -> str:
    """The registry architecture that preset ``name`` trains (its own name unless a variant)."""
    return preset(name, dataset).architecture or name


def stream_labels(spec: PreprocessSpec) -> dict[str, tuple[str, ...]]:
    """The channel labels of the DEAP replay's streams as ``spec`` reads them.

    :data:`STREAM_LABELS` names every channel as DEAP does (``Plethysmograph``, ``Respiration``).
    A live one-channel GSR/PPG/RESP stream is labelled by its type instead (docs/lsl.md, "Channel
    labels"); a spec that reads such a stream by its type (``ChannelRef("PPG", "PPG")``) gets that
    label, so that training sees the streams as a live session does.
    """
    labels = dict(STREAM_LABELS)
    for inp in spec.inputs:
        for ref in inp.channels:
            if ref.label == ref.stream and len(STREAM_LABELS.get(ref.stream, ())) == 1:
                labels[ref.stream] = (ref.stream,)
    return labels


def preset(name: str, dataset: str = "deap") -> Preset:
    """The preprocessing and training stride of model ``name`` on ``dataset`` (deap, pmemo)."""
    table = _BY_DATASET[dataset]
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"no {dataset} preset for model {name!r}; known: {sorted(table)}"
        ) from None
