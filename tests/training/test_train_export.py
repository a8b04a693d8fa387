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
