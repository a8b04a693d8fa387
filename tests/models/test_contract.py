"""The model contract: round trip, and refusal of missing, malformed or mismatching models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.contract import (
    ContractError,
    InputContract,
    ModelContract,
    file_sha256,
    load_contract,
)
from streaming.preprocess.filters import FilterSpec
from streaming.preprocess.pipeline import ChannelRef, FeatureInput, FeatureKind

onnx = pytest.importorskip("onnx")


def _contract(sha: str = "") -> ModelContract:
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


def _onnx(path: Path, shape: tuple[int, ...] = (3, 320), name: str = "eda") -> None:
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_round_trip_keeps_everything() -> None:
    c = _contract("abc")
    back = ModelContract.from_dict(json.loads(c.to_json()))
    assert back.to_dict() == c.to_dict()
    assert back.inputs[0].feature == c.inputs[0].feature
    assert back.preprocess_spec().inputs[0].shape == (3, 320)
    np.testing.assert_array_equal(back.inputs[0].mean, c.inputs[0].mean)


def test_normalise_casts_to_float32() -> None:
    x = np.ones((3, 320))
    z = _contract().inputs[0].normalise(x)
    assert z.dtype == np.float32 and z[1, 0] == -1.0 and z[2, 0] == 1.0


def test_load_checks_the_hash(tmp_path: Path) -> None:
    _onnx(tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text(_contract(file_sha256(tmp_path / "model.onnx")).to_json())
    contract, path = load_contract(tmp_path)
    assert contract.id == "tiny@3" and path.name == "model.onnx"
    with (tmp_path / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ContractError, match="differs from the contract"):
        load_contract(tmp_path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no model.json"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"contract_version": 1, "name": "x"}', "malformed contract"),
        ('{"contract_version": 9}', "contract_version 9"),
    ],
)
def test_missing_or_malformed_contract(tmp_path: Path, content: str | None, fragment: str) -> None:
    _onnx(tmp_path / "model.onnx")
    if content is not None:
        (tmp_path / "model.json").write_text(content)
    with pytest.raises(ContractError, match=fragment):
        load_contract(tmp_path)


def test_contract_must_match_the_onnx_inputs() -> None:
    c = _contract()
    c.check_onnx({"eda": ("batch", 3, 320)}, ["probs"])
    with pytest.raises(ContractError, match="differ from the contract"):
        c.check_onnx({"x": ("batch", 3, 320)}, ["probs"])
    with pytest.raises(ContractError, match=r"has shape \['batch', 3, 2500\]"):
        c.check_onnx({"eda": ("batch", 3, 2500)}, ["probs"])
    with pytest.raises(ContractError, match="lack 'probs'"):
        c.check_onnx({"eda": ("batch", 3, 320)}, ["logits"])
