"""The model zoo's table of architectures, importable without PyTorch.

The service lists architectures and checks a model's inputs with this module alone; only
:func:`build` imports PyTorch (through the architecture's module, lazily).

Every architecture shares one vocabulary (braindecode's): ``n_chans``, ``n_times``, ``n_outputs``
(= 2: column 0 = valence high, column 1 = arousal high, as logits). Its inputs are named and
ordered; ``forward(*inputs)`` takes them in that order, batch-first float32. A per-sample shape
template mixes fixed sizes (``9``) and named sizes (``"n_times"``); a named size means the same
value wherever it appears and becomes a constructor argument of the same name.

Feature kinds name what the preprocessing produces
(``affectstream.streaming.preprocess.spec.FeatureKind``): ``raw`` (n_samples, n_channels),
``eeg_de`` (n_steps, n_bands × n_channels) band-major, ``eeg_grid`` (n_samples, 9, 9),
``periph_stats`` (n_steps, 6 × n_channels), ``eda_cvx3`` (3, n_samples) [origin, tonic, phasic]. One
kind is not a stream feature: ``stimulus_features``, a per-stimulus vector (RTCAN-1D's openSMILE
music features) supplied with the session.

Examples
--------
>>> from affectstream.models import registry
>>> registry.names()[:2]
['cnn-lstm', 'rtcan1d']
>>> registry.default_input_shapes("rtcan1d")
{'eda': (3, 320)}
>>> model = registry.build("rtcan1d", {"eda": (3, 2500)})  # imports torch  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "ModelInput",
    "build",
    "default_input_shapes",
    "get",
    "names",
    "resolve_dims",
]

FeatureKindName = Literal[
    "raw", "eeg_de", "eeg_grid", "periph_stats", "eda_cvx3", "stimulus_features"
]
LossName = Literal["bce_logits", "squared_hinge"]
Dim = int | str


@dataclass(frozen=True)
class ModelInput:
    """One named input of an architecture.

    Attributes
    ----------
    name : tensor name (the ONNX input name too)
    shape : per-sample shape template (no batch axis); ``int`` = fixed, ``str`` = named size
    kind : feature kind the preprocessing must produce
    """

    name: str
    shape: tuple[Dim, ...]
    kind: FeatureKindName


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes
    ----------
    name : registry name (``"cnn-lstm"``)
    module, class_name : where the ``torch.nn.Module`` lives, imported only by :func:`build`
    description : one line
    paper : the source the architecture follows
    inputs : in ``forward`` order
    defaults : value of every named size for the default shapes
    sfreq : sampling rate (Hz) of the source signals the default shapes assume
    loss : the training loss its logits are meant for (``bce_logits`` or ``squared_hinge``)
    """

    name: str
    module: str
    class_name: str
    description: str
    paper: str
    inputs: tuple[ModelInput, ...]
    defaults: Mapping[str, int]
    sfreq: float
    loss: LossName = "bce_logits"
    input_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_names", tuple(i.name for i in self.inputs))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        named = {d for i in self.inputs for d in i.shape if isinstance(d, str)}
        if named != set(self.defaults):
            raise ValueError(
                f"{self.name}: defaults {sorted(self.defaults)} != sizes {sorted(named)}"
            )


_GUPTA = "Gupta, DEAP LSTM/GRU/BiLSTM baselines (github gupta-ayushi/Emotion-Recognition-…)"
_RAW_TC = (ModelInput("x", ("n_times", "n_chans"), "raw"),)
_RTCAN_PAPER = (
    "Yin et al., An Efficient Multimodal Framework for Large Scale Emotion Recognition by "
    "Fusing Music and Electrodermal Activity Signals (RTCAN-1D)"
)
_RTCAN_EDA = ModelInput("eda", (3, "n_times"), "eda_cvx3")
_MUSIC = ModelInput("music", ("n_music",), "stimulus_features")

ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(
    {
        a.name: a
        for a in (
            Architecture(
                name="cnn-lstm",
                module="affectstream.models.architectures.cnn_lstm",
                class_name="CNNLSTM",
                description="EEG 9×9 grids through a 3-layer 2-D CNN ‖ 2-layer LSTM on raw "
                "peripheral signals, concatenated",
                paper="Liao et al., Multimodal Physiological Signal Emotion Recognition Based on "
                "Convolutional Recurrent Neural Network; sizes from Yang et al. 2018 parallel "
                "CRNN",
                inputs=(
                    ModelInput("eeg_grid", ("n_times", 9, 9), "eeg_grid"),
                    ModelInput("periph", ("n_times", "n_chans"), "raw"),
                ),
                defaults={"n_times": 128, "n_chans": 8},
                sfreq=128.0,
            ),
            Architecture(
                name="rtcan1d",
                module="affectstream.models.architectures.rtcan1d",
                class_name="RTCAN1D",
                description="Residual temporal & channel attention 1-D CNN on 3-channel EDA "
                "[origin, tonic, phasic]",
                paper=_RTCAN_PAPER,
                inputs=(_RTCAN_EDA,),
                defaults={"n_times": 320},
                sfreq=16.0,
            ),
            Architecture(
                name="rtcan1d-music",
                module="affectstream.models.architectures.rtcan1d",
                class_name="RTCAN1DMusic",
                description="RTCAN-1D on 3-channel EDA fused with a stimulus (music) feature "
                "vector",
                paper=_RTCAN_PAPER,
                inputs=(_RTCAN_EDA, _MUSIC),
                defaults={"n_times": 320, "n_music": 6373},
                sfreq=16.0,
            ),
            Architecture(
                name="rtcan1d-bvp",
                module="affectstream.models.architectures.rtcan1d",
                class_name="RTCAN1DBVP",
                description="RTCAN-1D on 3-channel EDA ‖ a second RTCAN-1D trunk on blood volume "
                "pulse, concatenated before the classifier (our extension)",
                paper=_RTCAN_PAPER,
                inputs=(_RTCAN_EDA, ModelInput("bvp", ("n_bvp_times", 1), "raw")),
                defaults={"n_times": 320, "n_bvp_times": 640},
                sfreq=16.0,  # EDA's; the pulse runs at 32 Hz (n_bvp_times = 640 for 20 s)
            ),
            Architecture(
                name="music-mlp",
                module="affectstream.models.architectures.music_mlp",
                class_name="MusicMLP",
                description="Music-only baseline: RTCAN-1D's classifier head (256-128-2) on the "
                "stimulus feature vector alone",
                paper=_RTCAN_PAPER,
                inputs=(_MUSIC,),
                defaults={"n_music": 6373},
                sfreq=16.0,  # no signal; it is scored on rtcan1d's windows (16 Hz)
            ),
            Architecture(
                name="mlstm-fcn",
                module="affectstream.models.architectures.mlstm_fcn",
                class_name="MLSTMFCN",
                description="Fully convolutional branch with squeeze-excitation ‖ LSTM over the "
                "variable axis (dimension shuffle)",
                paper="Karim et al., Multivariate LSTM-FCNs for Time Series Classification; "
                "DEAP adaptation by athar70",
                inputs=_RAW_TC,
                defaults={"n_times": 640, "n_chans": 5},
                sfreq=128.0,
            ),
            Architecture(
                name="bimodal-lstm",
                module="affectstream.models.architectures.bimodal_lstm",
                class_name="BimodalLSTM",
                description="LSTM on EEG differential entropy ‖ LSTM on peripheral statistics, "
                "linear (SVM) layer",
                paper="Tang et al., Multimodal Emotion Recognition Using Deep Neural Networks",
                inputs=(
                    ModelInput("eeg_de", ("n_steps", "n_eeg_features"), "eeg_de"),
                    ModelInput("periph_stats", ("n_steps", "n_periph_features"), "periph_stats"),
                ),
                defaults={"n_steps": 5, "n_eeg_features": 128, "n_periph_features": 48},
                sfreq=128.0,
                loss="squared_hinge",
            ),
            Architecture(
                name="bddae",
                module="affectstream.models.architectures.bddae",
                class_name="BDDAE",
                description="Bimodal deep denoising autoencoder on EEG differential entropy and "
                "peripheral statistics, logistic layer on the shared code (decoders only in "
                "training)",
                paper="Tang et al., Multimodal Emotion Recognition Using Deep Neural Networks",
                inputs=(
                    ModelInput("eeg_de", ("n_steps", "n_eeg_features"), "eeg_de"),
                    ModelInput("periph_stats", ("n_steps", "n_periph_features"), "periph_stats"),
                ),
                defaults={"n_steps": 1, "n_eeg_features": 128, "n_periph_features": 48},
                sfreq=128.0,
            ),
            Architecture(
                name="lstm",
                module="affectstream.models.architectures.conv_rnn",
                class_name="ConvLSTMBaseline",
                description="1-D CNN front end → 4 stacked LSTMs (256-128-64-32) → dense",
                paper=_GUPTA,
                inputs=_RAW_TC,
                defaults={"n_times": 256, "n_chans": 37},
                sfreq=128.0,
            ),
            Architecture(
                name="gru",
                module="affectstream.models.architectures.conv_rnn",
                class_name="ConvGRUBaseline",
                description="1-D CNN front end → 2 stacked GRUs (256-32) → dense",
                paper=_GUPTA,
                inputs=_RAW_TC,
                defaults={"n_times": 256, "n_chans": 37},
                sfreq=128.0,
            ),
            Architecture(
                name="bilstm",
                module="affectstream.models.architectures.conv_rnn",
                class_name="ConvBiLSTMBaseline",
                description="1-D CNN front end → 2 stacked bidirectional LSTMs (128-64) → dense",
                paper=_GUPTA,
                inputs=_RAW_TC,
                defaults={"n_times": 256, "n_chans": 37},
                sfreq=128.0,
            ),
        )
    }
)


def names() -> list[str]:
    """Registered architecture names, in registry order."""
    return list(ARCHITECTURES)


def get(name: str) -> Architecture:
    """The registry entry of ``name``; ``KeyError`` naming the known architectures otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(names())}") from None


def default_input_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Per-sample input shapes of ``name`` with every named size at its default."""
    arch = get(name)
    return {
        i.name: tuple(arch.defaults[d] if isinstance(d, str) else d for d in i.shape)
        for i in arch.inputs
    }


def resolve_dims(name: str, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Check per-sample shapes against ``name``'s templates; return the named sizes.

    Parameters
    ----------
    name : registered architecture
    input_shapes : per-sample shape (no batch axis) of every input, keyed by input name

    Returns
    -------
    dict
        Named size → value, e.g. ``{"n_times": 128, "n_chans": 8}``.

    Raises
    ------
    ValueError
        Missing or unknown inputs, wrong rank, a fixed size that differs, a named size that takes
        two values, or a size < 1. The message names the architecture and the input.
    """
    arch = get(name)
    if set(input_shapes) != set(arch.input_names):
        raise ValueError(
            f"{name}: inputs {sorted(input_shapes)} given, expected {list(arch.input_names)}"
        )
    dims: dict[str, int] = {}
    for spec in arch.inputs:
        shape = tuple(int(s) for s in input_shapes[spec.name])
        if len(shape) != len(spec.shape) or any(s < 1 for s in shape):
            raise ValueError(
                f"{name}: input {spec.name!r} has shape {shape}, expected {spec.shape}"
            )
        for size, template in zip(shape, spec.shape, strict=True):
            if isinstance(template, int):
                if size != template:
                    raise ValueError(
                        f"{name}: input {spec.name!r} has shape {shape}, expected {spec.shape}"
                    )
            elif dims.setdefault(template, size) != size:
                raise ValueError(
                    f"{name}: size {template!r} is {dims[template]} in one input and {size} in "
                    f"{spec.name!r}"
                )
    return dims


def build(
    name: str, input_shapes: Mapping[str, Sequence[int]] | None = None, **hyper: Any
) -> nn.Module:
    """Instantiate architecture ``name`` for the given per-sample input shapes (imports torch).

    Parameters
    ----------
    name : registered architecture
    input_shapes : per-sample shapes keyed by input name; ``None`` = :func:`default_input_shapes`
    **hyper : further constructor arguments (hidden sizes, dropout, …); sizes that the input
        shapes determine cannot be given here

    Returns
    -------
    torch.nn.Module
        ``forward(*inputs)`` in registry order, returning logits of shape (batch, 2).
    """
    arch = get(name)
    dims = resolve_dims(name, default_input_shapes(name) if input_shapes is None else input_shapes)
    clash = sorted(set(dims) & set(hyper))
    if clash:
        raise ValueError(f"{name}: {clash} follow from input_shapes; do not pass them as hyper")
    cls = getattr(importlib.import_module(arch.module), arch.class_name)
    model: nn.Module = cls(**dims, **hyper)
    return model
