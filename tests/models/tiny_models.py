"""Shared helpers for model tests: a tiny ONNX graph and a matching contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectstream.models.contract import InputContract, ModelContract, file_sha256
from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind, FilterSpec


def tiny_contract(sha: str = "") -> ModelContract:
    eda = FeatureInput(
        "eda",
        FeatureKind.EDA_CVX3,
        (ChannelRef("GSR", "GSR"),),
        16.0,
        20.0,
        filters=(FilterSpec("lowpass", (2.0,), 2),),
        options=(("alpha", 8e-4),),
    )
    return ModelContract(
        name="tiny",
        version="3",
        architecture="rtcan1d",
        inputs=(InputContract(eda, (3, 320), np.array([[1.0], [2.0], [0.0]]), np.ones((3, 1))),),
        hop_s=0.25,
        label_rule={"kind": "threshold", "value": 5.0},
        trained_on={"dataset": {"name": "synthetic", "synthetic": True}},
        created="2026-11-21T00:00:00+00:00",
        onnx_sha256=sha,
    )


def write_tiny_onnx(path: Path, shape: tuple[int, ...] = (3, 320), name: str = "eda") -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])
    const = helper.make_tensor("half", TensorProto.FLOAT, [1, 2], [0.5, 0.5])
    shape_node = helper.make_node("Shape", [name], ["s"], end=1)
    ones = helper.make_node(
        "ConstantOfShape",
        ["s"],
        ["ones"],
        value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
    )
    reshape_shape = helper.make_tensor("rs", TensorProto.INT64, [2], [-1, 1])
    r = helper.make_node("Reshape", ["ones", "rs"], ["col"])
    mul = helper.make_node("Mul", ["col", "half"], ["probs"])
    graph = helper.make_graph([shape_node, ones, r, mul], "g", [x], [y], [const, reshape_shape])
    # IR 9: what onnxruntime 1.17+ reads (onnx 1.23 would write 14, too new for onnxruntime 1.31)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))


def write_tiny_model(folder: Path) -> Path:
    """model.onnx (output 0.5 for both classes) + its contract, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_onnx(folder / "model.onnx")
    (folder / "model.json").write_text(tiny_contract(file_sha256(folder / "model.onnx")).to_json())
    return folder


def write_logit_onnx(path: Path, metadata: dict[str, str] | None = None) -> None:
    """A graph whose logits follow the input: ``probs = sigmoid(mean over time of eda[:, :2])``,
    input ``eda`` (batch, 3, 320); so ``eda[:, 0] = a`` gives P(valence high) = sigmoid(a)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("eda", TensorProto.FLOAT, ["batch", 3, 320])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [2])
    slice_axes = helper.make_tensor("slice_axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceMean", ["eda", "axes"], ["m"], keepdims=0),
        helper.make_node("Slice", ["m", "starts", "ends", "slice_axes"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probs"]),
    ]
    graph = helper.make_graph(nodes, "logit", [x], [y], [axes, starts, ends, slice_axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
