"""The model contract: round trip, and refusal of missing, malformed or mismatching models."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_contract, write_tiny_onnx

from affectstream.models.contract import (
    STIMULUS_TABLE,
    ContractError,
    ModelContract,
    StimulusInput,
    file_sha256,
    load_contract,
    load_stimulus_table,
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


def test_a_contract_whose_preprocessing_cannot_be_built_is_refused_at_load(tmp_path: Path) -> None:
    write_tiny_onnx(tmp_path / "model.onnx")
    d = tiny_contract(file_sha256(tmp_path / "model.onnx")).to_dict()
    d["hop_s"] = 0.3  # 4.8 samples at 16 Hz: no whole hop
    (tmp_path / "model.json").write_text(json.dumps(d))
    with pytest.raises(ContractError, match=r"preprocessing cannot be built.*hop_s"):
        load_contract(tmp_path)


# -- the stimulus input of fusion models -------------------------------------------------------


def _stimulus(tmp_path: Path, ids: list[str], values: np.ndarray) -> StimulusInput:
    np.savez(
        tmp_path / STIMULUS_TABLE, ids=np.array(ids), names=np.array(["a", "b"]), values=values
    )
    return StimulusInput(
        "music",
        2,
        "test",
        np.zeros(2),
        np.ones(2),
        STIMULUS_TABLE,
        file_sha256(tmp_path / STIMULUS_TABLE),
    )


def test_stimulus_input_round_trips_and_counts_as_an_onnx_input(tmp_path: Path) -> None:
    stim = _stimulus(tmp_path, ["7", "9"], np.arange(4.0).reshape(2, 2))
    c = dataclasses.replace(tiny_contract("abc"), stimulus=stim)
    back = ModelContract.from_dict(json.loads(c.to_json()))
    assert back.to_dict() == c.to_dict()
    assert back.stimulus is not None and back.stimulus.table_sha256 == stim.table_sha256
    assert [t.name for t in back.tensors] == ["eda", "music"]
    back.check_onnx({"eda": ("batch", 3, 320), "music": ("batch", 2)}, ["probs"])
    with pytest.raises(ContractError, match="differ from the contract"):
        back.check_onnx({"eda": ("batch", 3, 320)}, ["probs"])
    index, values = load_stimulus_table(tmp_path, stim)
    assert index == {"7": 0, "9": 1} and values[1].tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    ("ids", "values", "fragment"),
    [
        (["7", "7"], np.zeros((2, 2)), "unique: 1"),
        (["7"], np.zeros((2, 2)), "values [2, 2] for 1 ids"),
        (["7", "8"], np.zeros((2, 3)), "expected [2, 2]"),
        (["7", "8"], np.array([[0.0, np.nan], [1, 1]]), "NaN/Inf"),
    ],
)
def test_malformed_stimulus_tables_are_refused(
    tmp_path: Path, ids: list[str], values: np.ndarray, fragment: str
) -> None:
    stim = _stimulus(tmp_path, ids, values)
    with pytest.raises(ContractError, match=re.escape(fragment)):
        load_stimulus_table(tmp_path, stim)


def test_a_missing_or_changed_stimulus_table_is_refused(tmp_path: Path) -> None:
    stim = _stimulus(tmp_path, ["7", "8"], np.zeros((2, 2)))
    np.savez(
        tmp_path / STIMULUS_TABLE,
        ids=np.array(["7", "8"]),
        names=np.array(["a", "b"]),
        values=np.ones((2, 2)),
    )
    with pytest.raises(ContractError, match="sha256 differs"):
        load_stimulus_table(tmp_path, stim)
    (tmp_path / STIMULUS_TABLE).unlink()
    with pytest.raises(ContractError, match="is missing"):
        load_stimulus_table(tmp_path, stim)


def test_a_contract_without_stream_inputs_or_with_bad_stimulus_statistics_is_refused(
    tmp_path: Path,
) -> None:
    write_tiny_onnx(tmp_path / "model.onnx")
    sha = file_sha256(tmp_path / "model.onnx")
    stim = _stimulus(tmp_path, ["7", "8"], np.zeros((2, 2)))
    no_streams = dataclasses.replace(tiny_contract(sha), inputs=(), stimulus=stim)
    (tmp_path / "model.json").write_text(no_streams.to_json())
    with pytest.raises(ContractError, match="no stream input"):
        load_contract(tmp_path)
    bad = dataclasses.replace(
        tiny_contract(sha), stimulus=dataclasses.replace(stim, mean=np.zeros(3))
    )
    (tmp_path / "model.json").write_text(bad.to_json())
    with pytest.raises(ContractError, match="3 means and 2 standard deviations for 2 features"):
        load_contract(tmp_path)
