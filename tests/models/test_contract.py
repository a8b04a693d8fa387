"""The model contract: round trip, and refusal of missing, malformed or mismatching models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_contract, write_tiny_onnx

from models.contract import (
    ContractError,
    ModelContract,
    file_sha256,
    load_contract,
)

onnx = pytest.importorskip("onnx")


def test_round_trip_keeps_everything() -> None:
    c = tiny_contract("abc")
    back = ModelContract.from_dict(json.loads(c.to_json()))
    assert back.to_dict() == c.to_dict()
    assert back.inputs[0].feature == c.inputs[0].feature
    assert back.preprocess_spec().inputs[0].shape == (3, 320)
    np.testing.assert_array_equal(back.inputs[0].mean, c.inputs[0].mean)


def test_normalise_casts_to_float32() -> None:
    x = np.ones((3, 320))
    z = tiny_contract().inputs[0].normalise(x)
    assert z.dtype == np.float32 and z[1, 0] == -1.0 and z[2, 0] == 1.0


def test_load_checks_the_hash(tmp_path: Path) -> None:
    write_tiny_onnx(tmp_path / "model.onnx")
    sha = file_sha256(tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text(tiny_contract(sha).to_json())
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
    write_tiny_onnx(tmp_path / "model.onnx")
    if content is not None:
        (tmp_path / "model.json").write_text(content)
    with pytest.raises(ContractError, match=fragment):
        load_contract(tmp_path)


def test_contract_must_match_the_onnx_inputs() -> None:
    c = tiny_contract()
    c.check_onnx({"eda": ("batch", 3, 320)}, ["probs"])
    with pytest.raises(ContractError, match="differ from the contract"):
        c.check_onnx({"x": ("batch", 3, 320)}, ["probs"])
    with pytest.raises(ContractError, match=r"has shape \['batch', 3, 2500\]"):
        c.check_onnx({"eda": ("batch", 3, 2500)}, ["probs"])
    with pytest.raises(ContractError, match="lack 'probs'"):
        c.check_onnx({"eda": ("batch", 3, 320)}, ["logits"])
