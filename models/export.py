# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""ONNX export of zoo models and the PyTorch ↔ ONNX Runtime parity check.

The exported graph wraps the model: ``probs = sigmoid(logits)``, shape (batch, 2), the probability
of the high class for [valence, arousal]. Its inputs carry the registry's input names, in order,
with a dynamic batch axis; everything else is fixed at export time.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. In torch 2.13 it still
works, needs no ``onnxscript``, and emits the standard ``LSTM``/``GRU`` ONNX ops that ONNX Runtime
runs as fused kernels. It warns that it is deprecated; we silence that one warning (and the
tracer's notes on PyTorch's own RNN internals) so real warnings stay visible.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = ["OUTPUT_NAME", "ProbabilityHead", "export_onnx", "onnx_parity"]

OUTPUT_NAME = "probs"
BATCH_AXIS = "batch"
# Trace with batch 2: with batch 1 the tracer may fold a size-1 axis into a constant.
TRACE_BATCH = 2


class ProbabilityHead(nn.Module):
    """``sigmoid(model(*inputs))``: logits (batch, 2) → probabilities of the high class."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(*inputs))


def export_onnx(
    model: nn.Module,
    input_shapes: Mapping[str, Sequence[int]],
    path: str | PathLike[str],
    *,
    opset: int = 17,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Export ``model`` (in eval mode) to ONNX with output ``probs`` and a dynamic batch axis.

    Parameters
    ----------
    model : a zoo model; ``forward(*inputs)`` → logits (batch, 2). Exported in eval mode; its
        training flag is restored afterwards.
    input_shapes : per-sample shape (no batch axis) of each input, **in forward order**, keyed by
        the input name the graph gets (the registry's names)
    path : the ``.onnx`` file to write
    opset : ONNX opset version
    metadata : written to the model's ``metadata_props`` (docs/architecture.md#model-contract)

    Raises
    ------
    ValueError
        If the exported graph's inputs are not exactly ``input_shapes``' names (an input the model
        ignores is dropped by the exporter; the service would then refuse the contract).
    """
    names = list(input_shapes)
    dummy = tuple(torch.randn(TRACE_BATCH, *shape) for shape in input_shapes.values())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The exporter is chosen on purpose (module docstring): silence its deprecation notes.
            for note in (".*legacy TorchScript-based ONNX export", ".*feature will be removed"):
                warnings.filterwarnings("ignore", message=note, category=DeprecationWarning)
            # nn.LSTM/GRU check their input in Python while traced; the graphs are right (batch
            # 1 and 5 are tested), and these notes would drown out warnings about our own code.
            warnings.filterwarnings(
                "ignore",
                message="Converting a tensor to a Python",
                module=r"torch\.nn\.modules\.rnn",
            )
            warnings.filterwarnings("ignore", message=".*batch_size other than 1.*(LSTM|GRU)")
            # Pad's pads come from a reversed Slice the exporter cannot fold; ONNX Runtime folds
            # it when the session loads.
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(
                ProbabilityHead(model),
                dummy,
                str(path),
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={n: {0: BATCH_AXIS} for n in [*names, OUTPUT_NAME]},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)

    proto = onnx.load(str(path))
    graph_inputs = [i.name for i in proto.graph.input]
    if graph_inputs != names:
        raise ValueError(f"exported graph inputs {graph_inputs} != {names}: {path}")
    if metadata:
        onnx.helper.set_model_props(proto, dict(metadata))
        onnx.checker.check_model(proto)
        onnx.save(proto, str(Path(path)))


def onnx_parity(
    model: nn.Module,
    path: str | PathLike[str],
    inputs: Mapping[str, NDArray[np.floating]],
) -> float:
    """Max |PyTorch probs − ONNX Runtime probs| on the same inputs.

    Parameters
    ----------
    model : the model that was exported (run in eval mode, training flag restored)
    path : its ``.onnx`` file
    inputs : batched arrays, shape (batch, *per-sample shape), keyed by input name in forward order;
        cast to float32

    Returns
    -------
    float
        The largest absolute difference of the (batch, 2) probabilities.
    """
    feed = {name: np.ascontiguousarray(x, dtype=np.float32) for name, x in inputs.items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_probs = np.asarray(session.run([OUTPUT_NAME], feed)[0])

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(*(torch.from_numpy(x) for x in feed.values()))
            torch_probs = torch.sigmoid(logits).numpy()
    finally:
        model.train(was_training)
    if torch_probs.shape != onnx_probs.shape:
        raise ValueError(f"PyTorch gives {torch_probs.shape}, ONNX Runtime {onnx_probs.shape}")
    return float(np.max(np.abs(torch_probs - onnx_probs)))
