"""The model contract: what a model expects and produces (``model.json``, also in ONNX metadata).

A contract names the architecture and version, every input tensor with the preprocessing that makes
it (a :class:`~affectstream.streaming.preprocess.spec.FeatureInput`: channels, rate, window,
filters, feature kind) and its normalisation statistics, the hop, the outputs and their meaning, the
label rule, what the model was trained on (dataset, synthetic or not, subjects, protocol, metrics
with their protocol named), when it was made, the sha256 of the ONNX file and, optionally, the
calibration the runner applies to the ONNX output (:class:`Calibration`; absent = identity, the
ONNX probabilities are served as they are, which is how contracts written before calibration
existed still load and behave).

Whether the model was trained on synthetic data is stated twice: in the contract
(``trained_on.dataset.synthetic``, :attr:`ModelContract.synthetic`) and in the ONNX file's own
``metadata_props`` (:data:`ONNX_SYNTHETIC_KEY`, and inside the contract copy under
:data:`ONNX_CONTRACT_KEY`), so a copy of the ONNX file alone still says so
(:func:`synthetic_from_metadata`).

No torch here: the service reads contracts with numpy and onnxruntime only. The service refuses a
model whose contract is missing, inconsistent with its ONNX inputs, or whose file hash differs
(:func:`load_contract`, :meth:`ModelContract.check_onnx`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    FilterSpec,
    PreprocessSpec,
)

__all__ = [
    "CALIBRATION_KINDS",
    "CONTRACT_VERSION",
    "ONNX_CONTRACT_KEY",
    "ONNX_SYNTHETIC_KEY",
    "OUTPUT_CLASSES",
    "Calibration",
    "ContractError",
    "InputContract",
    "ModelContract",
    "StimulusInput",
    "feature_from_dict",
    "feature_to_dict",
    "file_sha256",
    "load_contract",
    "load_stimulus_table",
    "synthetic_from_metadata",
]

CONTRACT_VERSION = 1
OUTPUT_NAME = "probs"
OUTPUT_CLASSES = ("valence", "arousal")
"""``probs[:, 0]`` = P(valence high), ``probs[:, 1]`` = P(arousal high)."""
ONNX_CONTRACT_KEY = "affectstream_contract"
"""ONNX ``metadata_props`` key of the contract's JSON (without the file hash)."""
ONNX_SYNTHETIC_KEY = "affectstream_synthetic"
"""ONNX ``metadata_props`` key: ``"true"`` when the model was trained on synthetic data, else
``"false"``."""
CALIBRATION_KINDS = ("temperature",)
PROB_EPS = 1e-7
"""Probabilities are clipped to [PROB_EPS, 1 − PROB_EPS] before their logit is taken: float32
sigmoid outputs reach exactly 0 or 1 beyond |logit| ≈ 17, where the logit is not recoverable."""


class ContractError(ValueError):
    """A contract is missing, malformed, or does not match its ONNX file."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def feature_to_dict(f: FeatureInput) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": str(f.kind),
        "channels": [[c.stream, c.label] for c in f.channels],
        "srate": f.srate,
        "window_s": f.window_s,
        "step_s": f.step_s,
        "filters": [
            {"kind": s.kind, "freqs": list(s.freqs), "order": s.order, "notch_q": s.notch_q}
            for s in f.filters
        ],
        "options": dict(f.options),
        "baseline_s": f.baseline_s,
        # streams the model may use (zeros when a session lacks them); absent = every one needed
        **({"optional_streams": list(f.optional_streams)} if f.optional_streams else {}),
    }


def feature_from_dict(d: dict[str, Any]) -> FeatureInput:
    return FeatureInput(
        name=str(d["name"]),
        kind=FeatureKind(d["kind"]),
        channels=tuple(ChannelRef(str(s), str(lab)) for s, lab in d["channels"]),
        srate=float(d["srate"]),
        window_s=float(d["window_s"]),
        step_s=float(d.get("step_s", 2.0)),
        filters=tuple(
            FilterSpec(
                str(s["kind"]),
                tuple(map(float, s["freqs"])),
                int(s["order"]),
                float(s.get("notch_q", 30.0)),
            )
            for s in d.get("filters", [])
        ),
        options=tuple((str(k), float(v)) for k, v in d.get("options", {}).items()),
        baseline_s=float(d.get("baseline_s", 0.0)),
        optional_streams=tuple(str(x) for x in d.get("optional_streams", ())),
    )


@dataclass(frozen=True)
class InputContract:
    """One ONNX input: its preprocessing, per-sample shape and normalisation statistics.

    ``mean``/``std`` broadcast against the per-sample shape (e.g. one value per feature column);
    the runner feeds ``(x - mean) / std`` as float32.
    """

    feature: FeatureInput
    shape: tuple[int, ...]
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(1))
    std: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))

    @property
    def name(self) -> str:
        return self.feature.name

    def normalise(self, x: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.name,
            "shape": list(self.shape),
            "dtype": "float32",
            "feature": feature_to_dict(self.feature),
            "normalisation": {"mean": self.mean.tolist(), "std": self.std.tolist()},
            **(
                {"min_channels": self.feature.min_channels}
                if self.feature.min_channels is not None
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputContract:
        norm = d.get("normalisation", {})
        feature = feature_from_dict(d["feature"])
        if d.get("min_channels") is not None:
            least = int(d["min_channels"])
            if not 1 <= least <= len(feature.channels):
                raise ValueError(
                    f"input {feature.name}: min_channels {least} is not within 1-"
                    f"{len(feature.channels)}"
                )
            feature = dataclasses.replace(feature, min_channels=least)
        return cls(
            feature,
            tuple(int(v) for v in d["shape"]),
            np.asarray(norm.get("mean", [0.0]), dtype=np.float64),
            np.asarray(norm.get("std", [1.0]), dtype=np.float64),
        )


def _positive_finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{what} is {value!r}, not a number")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what} is {v!r}; it must be a finite number > 0")
    return v


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling of each output, applied by the runner to the ONNX probabilities.

    For output k (valence, arousal) with temperature ``T_k``:
    ``p_calibrated = sigmoid(logit(p) / T_k)``, i.e. the model's logit divided by ``T_k``
    (the ONNX graph ends in a sigmoid, so ``logit(p)`` is the model's logit, up to the float32
    clipping of :data:`PROB_EPS`). ``T > 1`` pulls over-confident probabilities towards 0.5,
    ``T < 1`` pushes them out. The sign of the logit does not change, so neither does any
    decision at 0.5 nor the ranking of windows: accuracy, balanced accuracy, F1 and ROC-AUC are
    the same before and after; what changes is how far a probability is from 0.5.

    Attributes
    ----------
    temperature : (T_valence, T_arousal), each finite and > 0 (else ``ValueError``)
    kind : ``"temperature"`` (:data:`CALIBRATION_KINDS`)
    fitted_on : where the temperatures were fitted (e.g. validation subjects and windows)
    evaluation : what it did, e.g. expected calibration error before and after on held-out subjects
    """

    temperature: tuple[float, float]
    kind: str = "temperature"
    fitted_on: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATION_KINDS:
            raise ValueError(
                f"calibration kind {self.kind!r} is not one of {', '.join(CALIBRATION_KINDS)}"
            )
        if len(self.temperature) != len(OUTPUT_CLASSES):
            raise ValueError(
                f"calibration: {len(self.temperature)} temperatures for the "
                f"{len(OUTPUT_CLASSES)} outputs {', '.join(OUTPUT_CLASSES)}"
            )
        temps = tuple(
            _positive_finite(t, f"calibration: temperature of {name}")
            for t, name in zip(self.temperature, OUTPUT_CLASSES, strict=True)
        )
        object.__setattr__(self, "temperature", temps)

    def apply(self, probs: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        """Calibrated probabilities, shape (batch, 2) like ``probs`` (float32)."""
        p = np.clip(np.asarray(probs, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
        logits = np.log(p) - np.log1p(-p)
        scaled = logits / np.asarray(self.temperature, dtype=np.float64)
        return (0.5 * (1.0 + np.tanh(0.5 * scaled))).astype(np.float32)  # sigmoid, no overflow

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "temperature": dict(zip(OUTPUT_CLASSES, self.temperature, strict=True)),
            "fitted_on": self.fitted_on,
            "evaluation": self.evaluation,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Calibration:
        """Read the contract's ``calibration``; ``ValueError`` naming what is wrong."""
        if not isinstance(d, dict):
            raise ValueError(f"calibration is {type(d).__name__}, expected an object")
        kind = d.get("kind")
        if kind not in CALIBRATION_KINDS:
            raise ValueError(
                f"calibration kind {kind!r} is not one of {', '.join(CALIBRATION_KINDS)}"
            )
        temps = d.get("temperature")
        if not isinstance(temps, dict) or set(temps) != set(OUTPUT_CLASSES):
            raise ValueError(
                "calibration: temperature must map each output "
                f"({', '.join(OUTPUT_CLASSES)}) to a number, got {temps!r}"
            )
        fitted_on, evaluation = d.get("fitted_on", {}), d.get("evaluation", {})
        if not isinstance(fitted_on, dict) or not isinstance(evaluation, dict):
            raise ValueError("calibration: fitted_on and evaluation must be objects")
        return cls(
            temperature=(temps["valence"], temps["arousal"]),
            kind=str(kind),
            fitted_on=fitted_on,
            evaluation=evaluation,
        )


def synthetic_from_metadata(metadata: dict[str, str]) -> bool | None:
    """Whether an ONNX file's ``metadata_props`` say the model was trained on synthetic data:
    :data:`ONNX_SYNTHETIC_KEY` (``"true"``/``"false"``), else the embedded contract's
    ``trained_on.dataset.synthetic``; ``None`` when neither is there (files exported before the
    key existed, or not by affectstream). ``ContractError`` for a value that is neither."""
    flag = metadata.get(ONNX_SYNTHETIC_KEY)
    if flag is not None:
        if flag not in ("true", "false"):
            raise ContractError(f"ONNX metadata {ONNX_SYNTHETIC_KEY} is {flag!r}, not true/false")
        return flag == "true"
    embedded = metadata.get(ONNX_CONTRACT_KEY)
    if embedded is None:
        return None
    try:
        dataset = json.loads(embedded).get("trained_on", {}).get("dataset", {})
    except (json.JSONDecodeError, AttributeError):
        raise ContractError(f"ONNX metadata {ONNX_CONTRACT_KEY} is not a contract") from None
    return bool(dataset.get("synthetic")) if isinstance(dataset, dict) else None


STIMULUS_TABLE = "stimulus_features.npz"
"""The feature table shipped beside a fusion model: ``ids`` (str), ``names`` (str), ``values``
(float64, one row per stimulus id, raw — the contract's statistics normalise them)."""


@dataclass(frozen=True)
class StimulusInput:
    """An input that comes with the stimulus, not from a stream (RTCAN-1D's music features).

    A session supplies it per stimulus: a stimulus id looked up in the table shipped with the model
    (``table``, :data:`STIMULUS_TABLE`), or the raw feature vector itself. ``mean``/``std`` are the
    training folds' statistics; the runner feeds ``(x - mean) / std``.
    """

    name: str
    n_features: int
    source: str
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(1))
    std: NDArray[np.float64] = field(default_factory=lambda: np.ones(1))
    table: str = ""
    table_sha256: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_features,)

    def normalise(self, x: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.name,
            "shape": [self.n_features],
            "dtype": "float32",
            "kind": "stimulus_features",
            "source": self.source,
            "table": self.table,
            "table_sha256": self.table_sha256,
            "normalisation": {"mean": self.mean.tolist(), "std": self.std.tolist()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StimulusInput:
        norm = d.get("normalisation", {})
        return cls(
            name=str(d["tensor"]),
            n_features=int(d["shape"][0]),
            source=str(d.get("source", "")),
            mean=np.asarray(norm.get("mean", [0.0]), dtype=np.float64),
            std=np.asarray(norm.get("std", [1.0]), dtype=np.float64),
            table=str(d.get("table", "")),
            table_sha256=str(d.get("table_sha256", "")),
        )


def load_stimulus_table(
    model_dir: Path, stimulus: StimulusInput
) -> tuple[dict[str, int], NDArray[np.float64]]:
    """The table of a fusion model: stimulus id → row, and the raw feature rows.

    Raises :class:`ContractError` if the file is missing, changed (hash), or malformed.
    """
    path = Path(model_dir) / stimulus.table
    if not stimulus.table or not path.is_file():
        raise ContractError(f"{model_dir}: stimulus feature table {stimulus.table!r} is missing")
    if stimulus.table_sha256 and file_sha256(path) != stimulus.table_sha256:
        raise ContractError(f"{path}: sha256 differs from the contract's — file changed or corrupt")
    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(i) for i in z["ids"]]
            values = np.asarray(z["values"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise ContractError(f"{path}: not a stimulus feature table ({e})") from None
    if values.shape != (len(ids), stimulus.n_features) or len(set(ids)) != len(ids):
        raise ContractError(
            f"{path}: values {list(values.shape)} for {len(ids)} ids (unique: "
            f"{len(set(ids))}), expected [{len(ids)}, {stimulus.n_features}]"
        )
    if not np.isfinite(values).all():
        raise ContractError(f"{path}: holds NaN/Inf")
    return {i: k for k, i in enumerate(ids)}, values


@dataclass(frozen=True)
class ModelContract:
    name: str
    version: str
    architecture: str
    inputs: tuple[InputContract, ...]
    hop_s: float
    label_rule: dict[str, Any]
    trained_on: dict[str, Any]
    created: str
    onnx_sha256: str = ""
    description: str = ""
    stimulus: StimulusInput | None = None
    calibration: Calibration | None = None
    """``None``: no calibration, the runner serves the ONNX probabilities unchanged (identity)."""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def synthetic(self) -> bool:
        """``trained_on.dataset.synthetic``: the model was trained on synthetic data."""
        dataset = self.trained_on.get("dataset")
        return bool(isinstance(dataset, dict) and dataset.get("synthetic"))

    @property
    def tensors(self) -> tuple[InputContract | StimulusInput, ...]:
        """Every ONNX input: the stream inputs, then the stimulus input if there is one."""
        return self.inputs if self.stimulus is None else (*self.inputs, self.stimulus)

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(tuple(i.feature for i in self.inputs), self.hop_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_version": CONTRACT_VERSION,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "description": self.description,
            "inputs": [i.to_dict() for i in self.inputs],
            **({"stimulus_input": self.stimulus.to_dict()} if self.stimulus else {}),
            "hop_s": self.hop_s,
            "outputs": [
                {
                    "tensor": OUTPUT_NAME,
                    "shape": [len(OUTPUT_CLASSES)],
                    "classes": list(OUTPUT_CLASSES),
                    "meaning": "probability of the high class (rating above the label rule's "
                    "threshold) for valence and arousal; the runner serves it through "
                    "`calibration` when the contract has one",
                }
            ],
            **({"calibration": self.calibration.to_dict()} if self.calibration else {}),
            "label_rule": self.label_rule,
            "trained_on": self.trained_on,
            "created": self.created,
            "onnx_sha256": self.onnx_sha256,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> ModelContract:
        try:
            if int(d.get("contract_version", 0)) != CONTRACT_VERSION:
                raise ContractError(
                    f"{source}: contract_version {d.get('contract_version')!r}, "
                    f"this affectstream reads {CONTRACT_VERSION}"
                )
            return cls(
                name=str(d["name"]),
                version=str(d["version"]),
                architecture=str(d["architecture"]),
                inputs=tuple(InputContract.from_dict(i) for i in d["inputs"]),
                hop_s=float(d["hop_s"]),
                label_rule=dict(d["label_rule"]),
                trained_on=dict(d["trained_on"]),
                created=str(d["created"]),
                onnx_sha256=str(d.get("onnx_sha256", "")),
                description=str(d.get("description", "")),
                stimulus=StimulusInput.from_dict(d["stimulus_input"])
                if "stimulus_input" in d
                else None,
                calibration=Calibration.from_dict(d["calibration"])
                if d.get("calibration") is not None
                else None,
            )
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ContractError(f"{source}: malformed contract ({type(e).__name__}: {e})") from None

    def check_onnx(self, onnx_inputs: dict[str, tuple[Any, ...]], onnx_outputs: list[str]) -> None:
        """Raise :class:`ContractError` unless the ONNX graph's inputs match the contract.

        onnx_inputs : name → shape as reported by onnxruntime (first axis: batch, any value)
        """
        want = {i.name: i.shape for i in self.tensors}
        if set(onnx_inputs) != set(want):
            raise ContractError(
                f"{self.id}: ONNX inputs {sorted(onnx_inputs)} differ from the contract's "
                f"{sorted(want)}"
            )
        for name, shape in onnx_inputs.items():
            per_sample = tuple(shape[1:])
            if len(per_sample) != len(want[name]) or any(
                isinstance(a, int) and a != b for a, b in zip(per_sample, want[name], strict=True)
            ):
                raise ContractError(
                    f"{self.id}: ONNX input {name!r} has shape {list(shape)}, the contract says "
                    f"[batch, {', '.join(map(str, want[name]))}]"
                )
        if OUTPUT_NAME not in onnx_outputs:
            raise ContractError(f"{self.id}: ONNX outputs {onnx_outputs} lack {OUTPUT_NAME!r}")


def json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`ContractError` when it is not valid JSON or not an
    object."""
    try:
        raw = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ContractError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: expected a JSON object")
    return raw


def load_contract(model_dir: Path) -> tuple[ModelContract, Path]:
    """Read ``model.json`` beside ``model.onnx`` and check the file hash.

    Returns the contract and the ONNX path. Raises :class:`ContractError` naming the problem.
    """
    model_dir = Path(model_dir)
    cpath, opath = model_dir / "model.json", model_dir / "model.onnx"
    if not cpath.is_file():
        raise ContractError(f"{model_dir}: no model.json (the contract is required)")
    if not opath.is_file():
        raise ContractError(f"{model_dir}: no model.onnx")
    contract = ModelContract.from_dict(json_object(cpath), str(cpath))
    if not contract.inputs:
        raise ContractError(
            f"{cpath}: no stream input: a model that reads only stimulus features (e.g. the "
            "music-mlp baseline) cannot be served from live streams"
        )
    try:
        contract.preprocess_spec()  # rates, windows and hop must fit together
    except ValueError as e:
        raise ContractError(f"{cpath}: the preprocessing cannot be built: {e}") from None
    stim = contract.stimulus
    if stim is not None and not all(
        a.shape in ((1,), (stim.n_features,)) for a in (stim.mean, stim.std)
    ):
        raise ContractError(
            f"{cpath}: stimulus normalisation has {stim.mean.size} means and {stim.std.size} "
            f"standard deviations for {stim.n_features} features"
        )
    actual = file_sha256(opath)
    if contract.onnx_sha256 != actual:
        raise ContractError(
            f"{opath}: sha256 {actual[:12]}… differs from the contract's "
            f"{contract.onnx_sha256[:12] or '(none)'}… — file changed or corrupt"
        )
    return contract, opath
