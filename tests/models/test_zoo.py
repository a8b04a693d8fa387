"""The shipped models: loadable with ONNX Runtime only (no torch), and honestly labelled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"
MODELS = sorted(p.parent for p in ZOO.glob("*/model.onnx"))


def test_at_least_the_two_default_models_ship() -> None:
    assert {"cnn-lstm", "rtcan1d"} <= {p.name for p in MODELS}


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_loads_and_runs_without_torch(model_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from affectstream.models.runner import ModelRunner

        r = ModelRunner({str(model_dir)!r})
        feats = [{{i.name: np.zeros(i.shape) for i in r.contract.inputs}} for _ in range(3)]
        probs = r.predict(feats)
        assert probs.shape == (3, 2) and ((probs >= 0) & (probs <= 1)).all()
        assert "torch" not in sys.modules
        print(r.name, r.provider)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "CPUExecutionProvider" in done.stdout or "CUDAExecutionProvider" in done.stdout


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_labelled_as_trained_on_synthetic_data(model_dir: Path) -> None:
    contract = json.loads((model_dir / "model.json").read_text())
    trained = contract["trained_on"]
    assert trained["dataset"]["synthetic"] is True
    assert trained["protocol"] == "subject"
    assert "Demo model trained on synthetic data" in (model_dir / "README.md").read_text()
    report = json.loads((model_dir / "training" / "report.json").read_text())
    assert report["dataset"]["synthetic"] is True and not report["leaky"]
    for fold in report["folds"]:
        assert not set(fold["test_subjects"]) & set(fold["train_subjects"])
    # the leaky split's figure is quoted beside it, labelled as such
    assert trained["comparison"]["leaky"] is True


# -- the models for the sensors people have (issue #14) --------------------------------------------

SENSOR_VARIANTS = {
    "cnn-lstm-lab": {"EEG", "GSR", "PPG", "RESP"},
    "mlstm-fcn-periph": {"GSR", "PPG", "RESP"},
    "rtcan1d-eda-bvp": {"GSR", "PPG"},
}
MAY_USE = {"cnn-lstm-lab": {"AUX"}}  # optional streams (trained with stream dropout)
VERSIONS = {"cnn-lstm-lab": "2"}


def test_the_sensor_variants_ship() -> None:
    assert set(SENSOR_VARIANTS) <= {p.name for p in MODELS}


@pytest.mark.parametrize("name", sorted(SENSOR_VARIANTS))
def test_sensor_variant_contracts_need_only_their_sensors(name: str) -> None:
    from affectstream.models.contract import load_contract

    contract, _ = load_contract(ZOO / name)  # valid for today's loader, hash checked
    assert contract.id == f"{name}@{VERSIONS.get(name, '1')}"
    spec = contract.preprocess_spec()
    assert set(spec.needed_streams) == SENSOR_VARIANTS[name]  # no AUX needed
    assert set(spec.optional_streams) == MAY_USE.get(name, set())
    if spec.optional_streams:  # a claim the model learnt: trained with stream dropout
        trained = contract.trained_on["optional_streams"]
        assert all(t["stream_dropout"]["p"] > 0 for t in trained.values()), trained
    for i in contract.inputs:
        for ref in i.feature.channels:
            if ref.stream in ("GSR", "PPG", "RESP"):
                assert ref.label == ref.stream  # one-channel streams by their type


@pytest.mark.parametrize("name", sorted(SENSOR_VARIANTS))
def test_sensor_variant_onnx_matches_its_contract(name: str) -> None:
    import onnxruntime as ort

    from affectstream.models.contract import load_contract

    contract, onnx_path = load_contract(ZOO / name)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    contract.check_onnx(
        {i.name: tuple(i.shape) for i in sess.get_inputs()}, [o.name for o in sess.get_outputs()]
    )
    embedded = json.loads(sess.get_modelmeta().custom_metadata_map["affectstream_contract"])
    on_disk = json.loads((ZOO / name / "model.json").read_text())
    assert {k: v for k, v in embedded.items() if k != "onnx_sha256"} == {
        k: v for k, v in on_disk.items() if k != "onnx_sha256"
    }
    card = (ZOO / name / "README.md").read_text()
    assert "max |PyTorch − ONNX Runtime|" in card


def test_the_lab_model_takes_partial_montages_and_reports_its_coverage_curve() -> None:
    model_dir = ZOO / "cnn-lstm-lab"
    contract = json.loads((model_dir / "model.json").read_text())
    grid = next(i for i in contract["inputs"] if i["tensor"] == "eeg_grid")
    assert grid["min_channels"] >= 1 and len(grid["optional_channels"]) == 32
    assert all("min_channels" not in i for i in contract["inputs"] if i is not grid)
    curve = json.loads((model_dir / "training" / "coverage.json").read_text())
    assert curve["data"]["synthetic"] is True
    report = json.loads((model_dir / "training" / "report.json").read_text())
    trained = {s for f in report["folds"] for s in f["train_subjects"] + f["test_subjects"]}
    assert not set(curve["data"]["held_out_subjects"]) & trained  # held-out subjects only
    assert {round(e["coverage"], 3) for e in curve["curve"]} >= {1.0, 0.5, 0.25, 0.125}
    card = (model_dir / "README.md").read_text()
    assert "accuracy against coverage (measured)" in card and "synthetic DEAP-format" in card


# -- calibration and the synthetic flag (issue #19) ------------------------------------------------


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_shipped_models_are_calibrated_on_validation_subjects_and_say_how_well(
    model_dir: Path,
) -> None:
    from affectstream.models.contract import load_contract

    contract, _ = load_contract(model_dir)
    cal = contract.calibration
    assert cal is not None and cal.kind == "temperature"
    # fitted on the final model's validation subjects (seed 0: 2 of subjects 1-10), measured on
    # subjects no part of training saw
    report = json.loads((model_dir / "training" / "report.json").read_text())
    trained = {s for f in report["folds"] for s in f["train_subjects"] + f["test_subjects"]}
    assert set(cal.fitted_on["subjects"]) <= trained
    held_out = cal.evaluation["subjects"]
    assert held_out and not set(held_out) & trained
    assert cal.evaluation["synthetic"] is True
    card = (model_dir / "README.md").read_text()
    assert "on held-out synthetic subjects" in card
    for dim in ("valence", "arousal"):
        e = cal.evaluation[dim]
        assert f"| {dim} | {e['ece_before']:.3f} | {e['ece_after']:.3f} |" in card
    assert (model_dir / "training" / "reliability.png").stat().st_size > 10_000


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_the_onnx_file_alone_says_synthetic(model_dir: Path) -> None:
    import onnx

    from affectstream.models.runner import ModelRunner

    props = {p.key: p.value for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    assert props["affectstream_synthetic"] == "true"
    assert json.loads(props["affectstream_contract"])["trained_on"]["dataset"]["synthetic"]
    runner = ModelRunner(model_dir, providers=["CPUExecutionProvider"])
    assert runner.synthetic and runner.describe()["synthetic"] is True


QUANTIZED = sorted(p.parent for p in ZOO.glob("*/quantized.json"))


def test_the_shipped_int8_variants() -> None:
    """Every shipped model ships its int8 variant (what the service serves by default)."""
    assert [p.name for p in QUANTIZED] == [p.name for p in MODELS]


@pytest.mark.parametrize("model_dir", QUANTIZED, ids=lambda p: p.name)
def test_an_int8_variant_is_served_and_its_card_says_what_was_measured(model_dir: Path) -> None:
    """The variant belongs to the folder's float model (the runner serves it), met the rule it was
    written under, was measured on subjects the model never trained on, on synthetic data, and the
    card's int8 section quotes the record."""
    from affectstream.models.runner import ModelRunner

    record = json.loads((model_dir / "quantized.json").read_text())
    runner = ModelRunner(model_dir, precision="int8")
    assert runner.precision == "int8" and runner.quantized == record
    ev, rule = record["evaluation"], record["accepted_if"]
    assert ev["synthetic"] is True
    dataset = runner.contract.trained_on["dataset"]  # the final model saw its data's subjects
    first = dataset["generator"].get("first_subject", 1)
    trained = set(range(first, first + dataset["subjects"]))
    assert not set(ev["subjects"]) & trained and set(record["calibration"]["subjects"]) <= trained
    for dim in ("valence", "arousal"):
        a = ev[dim]
        assert a["mean_abs_prob_diff"] <= rule["max_mean_abs_prob_diff"]
        assert a["decisive_agree"] is None or a["decisive_agree"] >= rule["min_decisive_agreement"]
    speed = record["cpu_ms_per_window"]
    assert speed["int8_b12"] < speed["float32_b12"]
    # what stayed float is what the patterns name, and those convolutions really read float weights
    import onnx

    patterns, kept = record["keep_float"], set(record["kept_float"])
    assert all(any(k in n for k in patterns) for n in kept) and bool(patterns) == bool(kept)
    graph = onnx.load(str(model_dir / "model.int8.onnx")).graph
    made = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "Conv":
            weight = made.get(node.input[1])
            quantized = weight is not None and weight.op_type == "DequantizeLinear"
            assert quantized != (node.name in kept), node.name
    card = (model_dir / "README.md").read_text()
    section = card.split("<!-- quantized:begin -->", 1)[1].split("<!-- quantized:end -->", 1)[0]
    assert f"{ev['windows']} windows of held-out synthetic subjects" in section
    for dim in ("valence", "arousal"):
        assert f"| {dim} | {ev[dim]['mean_abs_prob_diff']:.4f} |" in section
