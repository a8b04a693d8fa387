"""The presets for the sensors people have (issue #14): they build, read no AUX stream, train in a
tiny run and export a model the service side loads; the coverage curve of a grid model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from affectstream.models import registry
from affectstream.training.presets import (
    PRESETS,
    STREAM_LABELS,
    architecture_of,
    preset,
    stream_labels,
)

VARIANTS = {
    "cnn-lstm-lab": ("cnn-lstm", {"EEG", "GSR", "PPG", "RESP"}),
    "mlstm-fcn-periph": ("mlstm-fcn", {"GSR", "PPG", "RESP"}),
    "rtcan1d-eda-bvp": ("rtcan1d-bvp", {"GSR", "PPG"}),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_presets_need_only_the_named_sensors(name: str) -> None:
    arch, streams = VARIANTS[name]
    p = preset(name)
    assert architecture_of(name) == arch and name in PRESETS
    assert set(p.spec.needed_streams) == streams  # no AUX (EOG, EMG, temperature) needed
    assert set(p.spec.optional_streams) == ({"AUX"} if name == "cnn-lstm-lab" else set())
    assert (p.stream_dropout is not None) == bool(p.spec.optional_streams)
    for f in p.spec.inputs:
        for ref in f.channels:
            if ref.stream in ("GSR", "PPG", "RESP"):  # one-channel streams by their type
                assert ref.label == ref.stream
    assert registry.resolve_dims(arch, {f.name: f.shape for f in p.spec.inputs})
    assert (p.electrode_dropout is not None) == (name == "cnn-lstm-lab")


def test_architecture_of_a_registry_name_is_itself_and_unknown_names_fail() -> None:
    assert architecture_of("cnn-lstm") == "cnn-lstm"
    with pytest.raises(ValueError, match="cnn-lstm-lab"):
        preset("cnn-lstm-lab-2")
    with pytest.raises(ValueError, match="no pmemo preset"):
        preset("cnn-lstm-lab", "pmemo")


def test_stream_labels_follow_the_spec() -> None:
    assert stream_labels(preset("cnn-lstm").spec) == STREAM_LABELS  # DEAP names, unchanged
    lab = stream_labels(preset("cnn-lstm-lab").spec)
    assert lab["PPG"] == ("PPG",) and lab["RESP"] == ("RESP",) and lab["GSR"] == ("GSR",)
    assert lab["EEG"] == STREAM_LABELS["EEG"]


def test_the_bvp_architecture_builds_and_keeps_rtcan1d_as_it_was() -> None:
    torch = pytest.importorskip("torch")
    model = registry.build("rtcan1d-bvp", {"eda": (3, 320), "bvp": (640, 1)})
    out = model(torch.zeros((2, 3, 320)), torch.zeros((2, 640, 1)))
    assert out.shape == (2, 2)
    n = sum(p.numel() for p in model.parameters())
    assert 200_000 < n < 1_000_000
    # the EDA-only model's parameters are unchanged by the shared trunk builder
    names = list(registry.build("rtcan1d").state_dict())
    assert names[0] == "shallow.0.weight" and names[-1] == "classifier.4.bias"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("tiny-deap-variants")
    write_synthetic_deap(out, n_subjects=4, n_trials=2, seed=11)
    return out


def _train_export(data: Path, name: str, out: Path) -> Path:
    from affectstream.service.cli import main

    run = out / f"run-{name}"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--model",
            name,
            "--folds",
            "2",
            "--epochs",
            "1",
            "--seed",
            "1",
            "--quiet",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    zoo = out / "zoo" / name
    assert main(["export", "--run", str(run), "--out", str(zoo)]) == 0
    return zoo


@pytest.fixture(scope="module")
def lab_model(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return _train_export(tiny_data, "cnn-lstm-lab", tmp_path_factory.mktemp("lab"))


def _check_loadable(zoo: Path, name: str) -> dict[str, object]:
    import onnxruntime as ort

    from affectstream.models.contract import load_contract
    from affectstream.models.runner import ModelRunner

    contract, onnx_path = load_contract(zoo)  # today's loader reads it
    arch, streams = VARIANTS[name]
    assert contract.id == f"{name}@1" and contract.architecture == arch
    assert set(contract.preprocess_spec().needed_streams) == streams
    assert contract.trained_on["dataset"]["synthetic"] is True
    assert "Demo model trained on synthetic data" in (zoo / "README.md").read_text()
    runner = ModelRunner(zoo, providers=["CPUExecutionProvider"])
    feats = [{i.name: np.zeros(i.shape) for i in contract.inputs} for _ in range(2)]
    probs = runner.predict(feats)
    assert probs.shape == (2, 2) and ((probs >= 0) & (probs <= 1)).all()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["affectstream_contract"])
    on_disk = json.loads((zoo / "model.json").read_text())
    assert {k: v for k, v in on_disk.items() if k != "onnx_sha256"} == {
        k: v for k, v in meta.items() if k != "onnx_sha256"
    }
    return on_disk


@pytest.mark.timeout(120)
def test_tiny_lab_run_exports_a_partial_montage_contract(lab_model: Path) -> None:
    doc = _check_loadable(lab_model, "cnn-lstm-lab")
    inputs = doc["inputs"]
    assert isinstance(inputs, list)
    grid = next(i for i in inputs if i["tensor"] == "eeg_grid")
    periph = next(i for i in inputs if i["tensor"] == "periph")
    assert grid["min_channels"] == 2 and len(grid["optional_channels"]) == 32
    assert "min_channels" not in periph  # GSR, PPG and RESP are needed
    trained_on = doc["trained_on"]
    assert isinstance(trained_on, dict)
    assert trained_on["montage"]["eeg_grid"]["electrode_dropout"]["p"] == 0.5
    assert "Partial EEG montages" in (lab_model / "README.md").read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["mlstm-fcn-periph", "rtcan1d-eda-bvp"])
def test_tiny_peripheral_runs_export_loadable_models(
    name: str, tiny_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    doc = _check_loadable(_train_export(tiny_data, name, tmp_path), name)
    assert all("min_channels" not in i for i in doc["inputs"])  # type: ignore[union-attr]


@pytest.mark.timeout(120)
def test_coverage_curve_of_a_grid_model(lab_model: Path, tiny_data: Path) -> None:
    from affectstream.training.commands.coverage import main

    out = lab_model / "training" / "coverage.json"
    code = main(
        [
            str(lab_model),
            "--data",
            str(tiny_data),
            "--subjects",
            "3",
            "4",
            "--coverage",
            "1",
            "0.125",
            "--repeats",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["data"]["synthetic"] is True and doc["data"]["held_out_subjects"] == [3, 4]
    assert [e["coverage"] for e in doc["curve"]] == [1.0, 0.125]
    assert [e["repeats"] for e in doc["curve"]] == [1, 2]
    for e in doc["curve"] + doc["named_montages"]:
        for dim in ("valence", "arousal"):
            m = e["metrics"][dim]["balanced_accuracy"]
            value = m["mean"] if isinstance(m, dict) else m
            assert 0 <= value <= 1
    assert doc["named_montages"][0]["electrodes"] == ["T7", "F7", "F8", "T8"]
    card = (lab_model / "README.md").read_text()
    assert card.count("accuracy against coverage (measured)") == 1
    assert "synthetic DEAP-format data" in card
    # a second run replaces the section; a re-export keeps it
    assert main([str(lab_model), "--data", str(tiny_data), "--subjects", "4", "-q"]) == 0
    assert (lab_model / "README.md").read_text().count("coverage:start") == 1
