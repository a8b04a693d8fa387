"""Calibration in the contract (stored → loaded → applied by the runner; invalid ones refused) and
the synthetic flag read from the ONNX file itself."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_models import tiny_contract, write_logit_onnx

from affectstream.models.contract import (
    ONNX_CONTRACT_KEY,
    ONNX_SYNTHETIC_KEY,
    Calibration,
    ContractError,
    ModelContract,
    file_sha256,
    load_contract,
)
from affectstream.models.runner import ModelLoadError, ModelRunner

pytest.importorskip("onnx")

CAL = Calibration(
    temperature=(2.0, 0.5),
    fitted_on={"subjects": [5, 7], "windows": 40},
    evaluation={"valence": {"ece_before": 0.2, "ece_after": 0.1}},
)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _model(
    folder: Path,
    contract: ModelContract,
    metadata: dict[str, str] | None = None,
    edit: dict[str, Any] | None = None,
) -> Path:
    """The logit graph with ``contract`` (its JSON changed by ``edit``) beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    write_logit_onnx(folder / "model.onnx", metadata)
    doc = json.loads(
        dataclasses.replace(contract, onnx_sha256=file_sha256(folder / "model.onnx")).to_json()
    )
    doc.update(edit or {})
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def _inputs(a: float, b: float) -> dict[str, np.ndarray]:
    x = np.zeros((1, 3, 320), np.float32)
    x[0, 0], x[0, 1] = a, b
    return {"eda": x}


def test_calibration_round_trips_through_the_contract(tmp_path: Path) -> None:
    c = dataclasses.replace(tiny_contract("abc"), calibration=CAL)
    back = ModelContract.from_dict(json.loads(c.to_json()))
    assert back.calibration == CAL
    assert back.to_dict() == c.to_dict()
    assert json.loads(c.to_json())["calibration"]["temperature"] == {"valence": 2.0, "arousal": 0.5}


def test_a_contract_without_calibration_loads_and_serves_the_onnx_output(tmp_path: Path) -> None:
    folder = _model(tmp_path / "m", tiny_contract())
    assert "calibration" not in json.loads((folder / "model.json").read_text())
    contract, _ = load_contract(folder)
    assert contract.calibration is None
    probs = ModelRunner(folder).run(_inputs(1.5, -2.0))
    np.testing.assert_allclose(probs[0], [_sigmoid(1.5), _sigmoid(-2.0)], rtol=1e-5)


def test_the_runner_serves_calibrated_probabilities(tmp_path: Path) -> None:
    folder = _model(tmp_path / "m", dataclasses.replace(tiny_contract(), calibration=CAL))
    runner = ModelRunner(folder)
    assert runner.contract.calibration == CAL
    raw = runner.run(_inputs(1.5, -2.0), calibrated=False)
    np.testing.assert_allclose(raw[0], [_sigmoid(1.5), _sigmoid(-2.0)], rtol=1e-5)
    served = runner.run(_inputs(1.5, -2.0))
    np.testing.assert_allclose(served[0], [_sigmoid(1.5 / 2.0), _sigmoid(-2.0 / 0.5)], rtol=1e-4)
    # predict (what the scheduler calls) normalises first: the contract's means are 1, 2, 0
    windows = [{"eda": np.full((3, 320), 2.5)}]
    np.testing.assert_allclose(
        runner.predict(windows)[0], [_sigmoid(1.5 / 2.0), _sigmoid(0.5 / 0.5)], rtol=1e-4
    )
    assert runner.describe()["calibration"]["temperature"] == {"valence": 2.0, "arousal": 0.5}


def test_calibration_keeps_every_decision_and_saturated_outputs_stay_finite() -> None:
    p = np.array([[0.0, 1.0], [0.3, 0.7], [0.5, 0.5], [1e-9, 1 - 1e-9]], np.float32)
    out = CAL.apply(p)
    assert np.isfinite(out).all() and ((out > 0.5) == (p > 0.5)).all()
    assert out[2].tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("calibration", "reason"),
    [
        ({"kind": "temperature", "temperature": {"valence": 0, "arousal": 1}}, "finite number > 0"),
        ({"kind": "temperature", "temperature": {"valence": 1, "arousal": -2}}, "arousal is -2"),
        ({"kind": "temperature", "temperature": {"valence": math.nan, "arousal": 1}}, "nan"),
        ({"kind": "temperature", "temperature": {"valence": math.inf, "arousal": 1}}, "inf"),
        ({"kind": "temperature", "temperature": {"valence": "2", "arousal": 1}}, "not a number"),
        ({"kind": "temperature", "temperature": {"valence": True, "arousal": 1}}, "not a number"),
        ({"kind": "temperature", "temperature": {"valence": 1.0}}, "map each output"),
        ({"kind": "isotonic", "temperature": {"valence": 1, "arousal": 1}}, "kind 'isotonic'"),
        ([1.0, 2.0], "expected an object"),
    ],
)
def test_an_invalid_calibration_is_refused_with_its_reason(
    tmp_path: Path, calibration: object, reason: str
) -> None:
    folder = _model(tmp_path / "m", tiny_contract(), edit={"calibration": calibration})
    with pytest.raises(ContractError, match="calibration") as info:
        load_contract(folder)
    assert reason in str(info.value)
    with pytest.raises(ModelLoadError, match="calibration"):
        ModelRunner(folder)


def test_a_calibration_cannot_be_built_invalid() -> None:
    with pytest.raises(ValueError, match="temperature of valence"):
        Calibration(temperature=(0.0, 1.0))
    with pytest.raises(ValueError, match="2 outputs"):
        Calibration(temperature=(1.0,))  # type: ignore[arg-type]


# -- the synthetic flag in the ONNX file --------------------------------------------------------


def test_the_runner_reads_the_synthetic_flag_from_the_onnx_metadata(tmp_path: Path) -> None:
    c = tiny_contract()
    assert c.synthetic
    runner = ModelRunner(_model(tmp_path / "m", c, {ONNX_SYNTHETIC_KEY: "true"}))
    assert runner.synthetic and runner.describe()["synthetic"] is True
    real = dataclasses.replace(c, trained_on={"dataset": {"name": "DEAP", "synthetic": False}})
    assert not ModelRunner(_model(tmp_path / "r", real, {ONNX_SYNTHETIC_KEY: "false"})).synthetic


def test_a_contract_that_drops_the_onnx_files_synthetic_flag_is_refused(tmp_path: Path) -> None:
    edited = {"trained_on": {"dataset": {"name": "DEAP", "synthetic": False}}}
    folder = _model(tmp_path / "m", tiny_contract(), {ONNX_SYNTHETIC_KEY: "true"}, edited)
    with pytest.raises(ModelLoadError, match="ONNX metadata says trained on synthetic data"):
        ModelRunner(folder)
    # an older export has only the embedded contract: the flag is read from it
    embedded = {ONNX_CONTRACT_KEY: tiny_contract().to_json()}
    with pytest.raises(ModelLoadError, match=r"model\.json says real"):
        ModelRunner(_model(tmp_path / "old", tiny_contract(), embedded, edited))


def test_a_malformed_synthetic_flag_is_refused(tmp_path: Path) -> None:
    folder = _model(tmp_path / "m", tiny_contract(), {ONNX_SYNTHETIC_KEY: "yes"})
    with pytest.raises(ModelLoadError, match="not true/false"):
        ModelRunner(folder)
