"""A short training run on tiny synthetic data writes a complete report; export gives a model the
service side can load with ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from affectstream.models.contract import load_contract
from affectstream.service.cli import main


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("tiny-deap")
    write_synthetic_deap(out, n_subjects=4, n_trials=2, seed=11)
    return out


@pytest.mark.timeout(300)
def test_train_writes_a_complete_report_and_export_loads(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--model",
            "bimodal-lstm",
            "--folds",
            "2",
            "--epochs",
            "2",
            "--seed",
            "1",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    report = json.loads((run / "report.json").read_text())
    assert report["model"] == "bimodal-lstm" and report["protocol"] == "subject"
    assert report["dataset"]["synthetic"] is True and report["leaky"] is False
    assert len(report["folds"]) == 2
    for fold in report["folds"]:
        assert fold["test_subjects"] and fold["train_subjects"]
        assert not set(fold["test_subjects"]) & set(fold["train_subjects"] + fold["val_subjects"])
        for dim in ("valence", "arousal"):
            m = fold["metrics"][dim]
            assert 0 <= m["accuracy"] <= 1 and 0 <= m["f1"] <= 1
            assert np.array(fold["confusion"][dim]).sum() == fold["n_test"]
    assert set(report["summary"]) == {"valence", "arousal"}
    for name in ("report.md", "confusion.png", "learning_curves.png", "final.pt", "final.json"):
        assert (run / name).stat().st_size > 0, name
    assert "Synthetic data, not DEAP" in (run / "report.md").read_text()

    out = tmp_path / "zoo" / "bimodal-lstm"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    contract, onnx_path = load_contract(out)
    assert contract.architecture == "bimodal-lstm"
    assert contract.trained_on["dataset"]["synthetic"] is True
    card = (out / "README.md").read_text()
    assert "Demo model trained on synthetic data" in card and "affectstream train" in card
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    contract.check_onnx(
        {i.name: tuple(i.shape) for i in sess.get_inputs()}, [o.name for o in sess.get_outputs()]
    )
    feeds = {i.name: np.zeros((3, *i.shape), np.float32) for i in contract.inputs}
    (probs,) = sess.run(["probs"], feeds)
    assert probs.shape == (3, 2) and ((probs >= 0) & (probs <= 1)).all()
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["affectstream_contract"])["architecture"] == "bimodal-lstm"
    assert meta["affectstream_synthetic"] == "true"
    embedded = json.loads(meta["affectstream_contract"])
    assert embedded["calibration"] == json.loads((out / "model.json").read_text())["calibration"]

    # calibration: fitted per fold on validation subjects and for the final model, exported,
    # quoted in the card and applied by the runner
    for fold in report["folds"]:
        for dim in ("valence", "arousal"):
            c = fold["calibration"][dim]
            assert c["temperature"] > 0 and 0 <= c["ece_before"] <= 1 and 0 <= c["ece_after"] <= 1
            assert c["fitted"] is True and sum(c["bins_before"]["count"]) == fold["n_test"]
    assert set(report["summary_calibration"]) >= {"valence", "arousal", "n_bins"}
    assert (run / "reliability.png").stat().st_size > 0
    final = json.loads((run / "final.json").read_text())
    assert contract.calibration is not None
    assert final["calibration"]["temperature"] == dict(
        zip(("valence", "arousal"), contract.calibration.temperature, strict=True)
    )
    val_subjects = final["calibration"]["fitted_on"]["subjects"]
    assert val_subjects and set(val_subjects) <= {1, 2, 3, 4}
    ece = contract.calibration.evaluation["valence"]["ece_before"]
    assert ece == report["summary_calibration"]["valence"]["ece_before"]
    assert "## Calibration" in card and "held-out synthetic subjects" in card
    assert f"valence T = {contract.calibration.temperature[0]:.3f}" in card

    from affectstream.models.runner import ModelRunner

    runner = ModelRunner(out)
    assert runner.synthetic and runner.describe()["synthetic"] is True
    rng = np.random.default_rng(0)
    x = {i.name: rng.normal(size=(5, *i.shape)).astype(np.float32) for i in contract.inputs}
    raw = runner.run(x, calibrated=False)
    np.testing.assert_allclose(runner.run(x), contract.calibration.apply(raw), atol=1e-6)
    np.testing.assert_array_equal(runner.run(x) > 0.5, raw > 0.5)
