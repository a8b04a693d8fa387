"""Paper-faithful options of a training run: each one changes a preset's preprocessing or its
optimiser the way a source paper did, is chosen on the ``affectstream train`` command line, and
is recorded in the run's report (:func:`describe`) and, for the preprocessing ones, in the
exported contract (they are options of the features, computed by the same
:class:`~affectstream.streaming.preprocess.pipeline.Preprocessor` offline and online).

- ``baseline``: ``zscore`` (default) standardises each channel by the mean and SD of the 3 s
  calibration period; ``yang`` subtracts that period's mean one-second chunk from every later
  second, as Yang et al.'s DEAP preprocessing (the ``baseline_subtract`` feature option). Yang
  also z-scores each channel over the whole 60 s trial afterwards, which needs the trial's future
  and so cannot run live; here the per-channel standardisation fitted on the training windows
  (the model's normalisation statistics, stored in the contract) stands in for it. Inputs without
  a calibration period get one of 3 s (their first window then starts after it, as the paper's
  windows do); cvxEDA inputs are left as they are (a per-second subtraction before a
  physiological decomposition has no source).
- ``de_gamma_hi``: the upper edge of the γ band of differential-entropy inputs, 45 Hz (default:
  DEAP's EEG is band-passed 4–45 Hz) or Tang et al.'s 50 Hz (31–50 Hz; on DEAP its 45–50 Hz part
  holds only the band-pass filter's roll-off).
- ``optimizer`` (:data:`OPTIMIZERS`): ``adam`` (default: Adam, lr 1e-3, weight decay 1e-4, batch
  64); ``sgd-rtcan``, RTCAN-1D's paper (§5.1): SGD, lr 1e-3 multiplied by 0.9 every 15 epochs,
  batch 256, with the code's momentum 0.9 (the paper states none) and no weight decay (the paper
  states none); ``sgd-rtcan-code``, RTCAN-1D's public code for DEAP: SGD, momentum 0.9, lr 0.1,
  weight decay 1e-3, batch 300, 300 epochs, no schedule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from affectstream.streaming.preprocess.spec import (
    OPT_BASELINE_SUBTRACT,
    OPT_DE_GAMMA_HI,
    FeatureInput,
    FeatureKind,
)
from affectstream.training.presets import Preset

__all__ = [
    "BASELINES",
    "DE_GAMMA_HI",
    "OPTIMIZERS",
    "OptimizerSetup",
    "apply_preprocessing_options",
    "describe",
]

BASELINES = ("zscore", "yang")
DE_GAMMA_HI = (45.0, 50.0)
YANG_BASELINE_S = 3.0  # DEAP's pre-trial baseline; live, the session's calibration period


@dataclass(frozen=True)
class OptimizerSetup:
    """One optimiser choice: the algorithm and the settings it brings (each overridable by its
    own flag). ``epochs`` ``None``: the command's default; ``lr_step_epochs`` 0: no schedule."""

    algorithm: str  # "adam" or "sgd"
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int | None
    momentum: float
    lr_step_epochs: int
    lr_gamma: float
    source: str


OPTIMIZERS: dict[str, OptimizerSetup] = {
    "adam": OptimizerSetup("adam", 1e-3, 1e-4, 64, None, 0.0, 0, 1.0, "affectstream's default"),
    "sgd-rtcan": OptimizerSetup(
        "sgd", 1e-3, 0.0, 256, None, 0.9, 15, 0.9, "RTCAN-1D paper §5.1 (momentum from its code)"
    ),
    "sgd-rtcan-code": OptimizerSetup(
        "sgd", 0.1, 1e-3, 300, 300, 0.9, 0, 1.0, "RTCAN-1D public code, DEAP"
    ),
}


def _with_options(f: FeatureInput, **extra: float) -> dict[str, Any]:
    opts = dict(f.options)
    opts.update(extra)
    return {"options": tuple(opts.items())}


def apply_preprocessing_options(p: Preset, *, baseline: str, de_gamma_hi: float) -> Preset:
    """``p`` with the preprocessing options applied (see the module docstring); ``p`` itself
    when both are the defaults. ``ValueError`` when an option touches none of its inputs."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose from {BASELINES}")
    if de_gamma_hi not in DE_GAMMA_HI:
        raise ValueError(f"γ upper edge {de_gamma_hi:g} Hz is not one of {DE_GAMMA_HI}")
    inputs = list(p.spec.inputs)
    if baseline == "yang":
        changed = False
        for k, f in enumerate(inputs):
            if f.kind == FeatureKind.EDA_CVX3:
                continue
            inputs[k] = dataclasses.replace(
                f,
                baseline_s=f.baseline_s or YANG_BASELINE_S,
                **_with_options(f, **{OPT_BASELINE_SUBTRACT: 1.0}),
            )
            changed = True
        if not changed:
            raise ValueError("--baseline yang: the model has no input it applies to (cvxEDA only)")
    if de_gamma_hi != DE_GAMMA_HI[0]:
        de = [k for k, f in enumerate(inputs) if f.kind == FeatureKind.EEG_DE]
        if not de:
            raise ValueError("--de-gamma-hi: the model has no differential-entropy input")
        for k in de:
            inputs[k] = dataclasses.replace(
                inputs[k], **_with_options(inputs[k], **{OPT_DE_GAMMA_HI: de_gamma_hi})
            )
    if tuple(inputs) == p.spec.inputs:
        return p
    spec = dataclasses.replace(p.spec, inputs=tuple(inputs))
    return dataclasses.replace(p, spec=spec)


def describe(
    *, baseline: str, de_gamma_hi: float, optimizer: str, task: str, protocol: str
) -> dict[str, Any]:
    """The paper-faithful options of a run, for its report (``config["paper_options"]``)."""
    return {
        "baseline": baseline,
        "baseline_description": (
            "Yang et al.: the calibration period's mean 1 s chunk subtracted from every second"
            if baseline == "yang"
            else "each channel z-scored by the calibration period (affectstream's default)"
        ),
        "de_gamma_hi_hz": de_gamma_hi,
        "optimizer": optimizer,
        "optimizer_source": OPTIMIZERS[optimizer].source,
        "task": task,
        "protocol": protocol,
    }
