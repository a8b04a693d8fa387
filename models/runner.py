"""ONNX Runtime model runner: load a model folder, validate, choose the device, run batches.

Loading (:class:`ModelRunner`) reads the contract, checks the ONNX file's hash against it, opens an
ONNX Runtime session on ``CUDAExecutionProvider`` when this onnxruntime offers it (with CPU as the
fallback inside the session), else on CPU, and checks the graph's inputs against the contract.
Before every run it checks each input's name, dtype and exact shape itself, because ONNX Runtime
does not reject every wrong shape (its own docs show cases that silently broadcast), and names
the model and the input in the error.

Calibration: :meth:`ModelRunner.run` (and so :meth:`~ModelRunner.predict`, which the service's
scheduler calls) returns the ONNX probabilities passed through the contract's
:class:`~affectstream.models.contract.Calibration` (temperature scaling per output); a contract
without one serves them unchanged. ``calibrated=False`` gives the raw ONNX output (for fitting a
calibration).

Synthetic flag: the runner reads it from the ONNX file's own metadata
(:func:`~affectstream.models.contract.synthetic_from_metadata`) as well as from the contract, and
refuses a model whose two say different things (a contract edited or swapped after export);
:attr:`ModelRunner.synthetic` and ``describe()["synthetic"]`` carry it.

Precision: a folder may hold, beside ``model.onnx``, an int8 variant made from it by
``python -m affectstream.training.commands.quantize`` (ONNX Runtime's static quantization):
``model.int8.onnx`` and its record ``quantized.json`` (the hashes of both files, how it was
calibrated, and how far its outputs were measured from the float model's on held-out windows).
``ModelRunner(precision="int8")`` serves the variant when the record names this ``model.onnx``
(same hash) and the variant's hash matches, and the float model otherwise, saying why
(:attr:`ModelRunner.precision`, ``describe()``). The contract, its calibration and the
preprocessing are the same for both.

No torch here: serving needs ONNX Runtime only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from affectstream.models.contract import (
    OUTPUT_NAME,
    ContractError,
    ModelContract,
    load_contract,
    load_stimulus_table,
    synthetic_from_metadata,
)

__all__ = [
    "PRECISIONS",
    "QUANTIZED_ONNX",
    "QUANTIZED_RECORD",
    "ModelLoadError",
    "ModelRunner",
    "choose_providers",
    "load_quantized",
    "session_options",
]

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

PRECISIONS = ("float32", "int8")
QUANTIZED_ONNX = "model.int8.onnx"
QUANTIZED_RECORD = "quantized.json"


class ModelLoadError(RuntimeError):
    """A model folder could not be loaded (contract, hash, corrupt ONNX, mismatching inputs)."""


def choose_providers(available: Sequence[str] | None = None) -> list[str]:
    """``[CUDA, CPU]`` when this onnxruntime build offers CUDA, else ``[CPU]``."""
    available = list(ort.get_available_providers() if available is None else available)
    return [CUDA, CPU] if CUDA in available else [CPU]


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """The service's ONNX Runtime session options (see :class:`ModelRunner`'s parameters)."""
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
    for entry in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        opts.add_session_config_entry(entry, "1" if spin else "0")
    return opts


def load_quantized(model_dir: Path, onnx_sha256: str) -> tuple[dict[str, Any], Path] | None:
    """The int8 variant of the folder's model: its record (``quantized.json``) and path, or
    ``None`` when the folder has none. Raises :class:`ContractError` when one is there but was
    not made from the model whose hash is ``onnx_sha256`` (a retrained ``model.onnx``), or its
    file changed."""
    from affectstream.models.contract import file_sha256, json_object

    rpath, qpath = Path(model_dir) / QUANTIZED_RECORD, Path(model_dir) / QUANTIZED_ONNX
    if not rpath.is_file() and not qpath.is_file():
        return None
    if not rpath.is_file() or not qpath.is_file():
        missing = rpath if not rpath.is_file() else qpath
        raise ContractError(f"{missing}: missing (the int8 variant needs both files)")
    record = json_object(rpath)
    if record.get("source_onnx_sha256") != onnx_sha256:
        raise ContractError(
            f"{rpath}: made from another model.onnx (sha256 "
            f"{str(record.get('source_onnx_sha256'))[:12]}…, this one {onnx_sha256[:12]}…)"
        )
    actual = file_sha256(qpath)
    if record.get("onnx_sha256") != actual:
        raise ContractError(f"{qpath}: sha256 {actual[:12]}… differs from its record's")
    return record, qpath


class ModelRunner:
    """One loaded model.

    Parameters
    ----------
    model_dir : folder with ``model.onnx`` and ``model.json``
    providers : override the provider choice (tests, or forcing CPU)
    threads : intra-op threads for the CPU provider (``None``: onnxruntime's default)
    spin : let ONNX Runtime's worker threads spin-wait for work after each run. Off by default:
        the service runs small batches a few times per second, and spinning threads burnt about
        0.45 of a core for 4 sessions on a 2-core machine (``affectstream bench``), for a gain in
        wake-up time measured in microseconds.
    """

    def __init__(
        self,
        model_dir: Path,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        spin: bool = False,
        precision: str = "float32",
    ) -> None:
        self.model_dir = Path(model_dir)
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
        try:
            contract, onnx_path = load_contract(self.model_dir)
        except ContractError as e:
            raise ModelLoadError(str(e)) from None
        self.contract: ModelContract = contract
        self.precision = "float32"
        """What is served: ``"int8"`` (the quantized variant) or ``"float32"``."""
        self.quantized: dict[str, Any] | None = None
        """The int8 variant's record when it is served."""
        self.precision_note = ""
        """Why the float model is served although int8 was asked for."""
        if precision == "int8":
            try:
                found = load_quantized(self.model_dir, self.contract.onnx_sha256)
            except ContractError as e:
                found, self.precision_note = None, f"int8 variant not used: {e}"
                log.warning("%s: %s", self.model_dir, self.precision_note)
            if found is None and not self.precision_note:
                self.precision_note = "the folder has no int8 variant"
            if found is not None:
                self.quantized, onnx_path = found
                self.precision = "int8"
        opts = session_options(threads, spin)
        wanted = list(providers) if providers is not None else choose_providers()
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=wanted)
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"{onnx_path}: ONNX Runtime cannot load it ({e})") from None
        try:
            self.contract.check_onnx(
                {i.name: tuple(i.shape) for i in self.session.get_inputs()},
                [o.name for o in self.session.get_outputs()],
            )
        except ContractError as e:
            raise ModelLoadError(str(e)) from None
        try:
            in_onnx = synthetic_from_metadata(self.session.get_modelmeta().custom_metadata_map)
        except ContractError as e:
            raise ModelLoadError(f"{onnx_path}: {e}") from None
        if in_onnx is not None and in_onnx != self.contract.synthetic:
            raise ModelLoadError(
                f"{onnx_path}: the ONNX metadata says trained on "
                f"{'synthetic' if in_onnx else 'real'} data, model.json says "
                f"{'synthetic' if self.contract.synthetic else 'real'} "
                "(trained_on.dataset.synthetic): the contract was changed after export"
            )
        self.synthetic = self.contract.synthetic or bool(in_onnx)
        """Trained on synthetic data (the contract and the ONNX metadata agree, or only the
        contract says it for an ONNX file exported before the metadata key existed)."""
        # a fusion model's stimulus feature table (id → raw feature row), checked at load time
        self.stimulus_index: dict[str, int] = {}
        self.stimulus_values: NDArray[np.float64] = np.zeros((0, 0))
        if self.contract.stimulus is not None:
            try:
                self.stimulus_index, self.stimulus_values = load_stimulus_table(
                    self.model_dir, self.contract.stimulus
                )
            except ContractError as e:
                raise ModelLoadError(str(e)) from None
        self.provider = self.session.get_providers()[0]
        log.info(
            "loaded %s from %s on %s (%s)",
            self.contract.id,
            self.model_dir,
            self.provider,
            self.precision,
        )

    @property
    def name(self) -> str:
        return self.contract.id

    def run(
        self, batch: Mapping[str, NDArray[Any]], *, calibrated: bool = True
    ) -> NDArray[np.float32]:
        """Run already normalised inputs.

        batch : input name → float32 array, shape (B, *contract shape)
        calibrated : apply the contract's calibration (identity when it has none); ``False``
            returns the ONNX output as it is
        returns probs, shape (B, 2): P(valence high), P(arousal high)
        """
        want = {i.name: i.shape for i in self.contract.tensors}
        if set(batch) != set(want):
            raise ValueError(f"{self.name}: inputs {sorted(batch)}, expected {sorted(want)}")
        sizes = set()
        for name, x in batch.items():
            if not isinstance(x, np.ndarray) or x.dtype != np.float32:
                kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
                raise ValueError(f"{self.name}: input {name!r} is {kind}, expected float32")
            if x.ndim != len(want[name]) + 1 or tuple(x.shape[1:]) != want[name]:
                raise ValueError(
                    f"{self.name}: input {name!r} has shape {list(x.shape)}, "
                    f"expected [batch, {', '.join(map(str, want[name]))}]"
                )
            if not np.isfinite(x).all():
                raise ValueError(f"{self.name}: input {name!r} holds NaN/Inf")
            sizes.add(x.shape[0])
        if len(sizes) != 1:
            raise ValueError(f"{self.name}: inputs have different batch sizes {sorted(sizes)}")
        (probs,) = self.session.run([OUTPUT_NAME], dict(batch))
        probs = np.asarray(probs, dtype=np.float32)
        calibration = self.contract.calibration
        return calibration.apply(probs) if calibrated and calibration is not None else probs

    def predict(
        self, windows: Sequence[Mapping[str, NDArray[Any]]], *, calibrated: bool = True
    ) -> NDArray[np.float32]:
        """Normalise each window's features with the contract's statistics and run them as one
        batch (the scheduler batches all sessions due at the same tick); calibrated unless
        ``calibrated`` is false (:meth:`run`)."""
        batch = {
            i.name: np.stack([i.normalise(w[i.name]) for w in windows])
            for i in self.contract.tensors
        }
        return self.run(batch, calibrated=calibrated)

    def stimulus_features(self, stimulus_id: str) -> NDArray[np.float64] | None:
        """The raw feature row of ``stimulus_id`` in this model's table (``None``: not there)."""
        row = self.stimulus_index.get(stimulus_id)
        return None if row is None else self.stimulus_values[row]

    def describe(self) -> dict[str, Any]:
        """What ``/models`` shows: the contract plus the provider actually in use."""
        spec = self.contract.preprocess_spec()
        out = {
            **self.contract.to_dict(),
            "provider": self.provider,
            "precision": self.precision,
            **({"quantized": self.quantized} if self.quantized is not None else {}),
            **({"precision_note": self.precision_note} if self.precision_note else {}),
            "path": str(self.model_dir),
            "synthetic": self.synthetic,
            # the stream types (canonical names) without which it cannot run, and those it reads
            # when a session has them (zeros otherwise, as trained with stream dropout)
            "needs": list(spec.needed_streams),
            "may_use": list(spec.optional_streams),
        }
        if self.contract.stimulus is not None:
            out["stimulus_ids"] = len(self.stimulus_index)
        return out
