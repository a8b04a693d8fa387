"""What a model card says about labels and the DEAP baseline is what training did (issue #19):
the label rule in full (not just "threshold"), and whether training windows held seconds of the
pre-trial baseline, checked against the presets and against the shipped cards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from affectstream.models.contract import load_contract
from affectstream.streaming.preprocess.pipeline import preprocess_recording
from affectstream.streaming.replay.deap import deap_trial_streams
from affectstream.streaming.synthetic.deap import generate_subject
from affectstream.training.datasets.deap import RATES
from affectstream.training.export import baseline_text, label_rule_text
from affectstream.training.presets import preset, stream_labels

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


def test_label_rule_text_says_what_high_means() -> None:
    threshold = label_rule_text({"kind": "threshold", "value": 5.0}, "rtcan1d")
    assert "> 5" in threshold and "k-means" in threshold  # the paper's rule is named as not used
    assert "k-means" not in label_rule_text({"kind": "threshold", "value": 5.0}, "cnn-lstm")
    kmeans = label_rule_text({"kind": "kmeans"}, "rtcan1d")
    assert "1-D" in kmeans and "each dimension" in kmeans and "higher cluster" in kmeans


@pytest.mark.parametrize(
    ("name", "baseline_windows"), [("rtcan1d", 2), ("rtcan1d-eda-bvp", 0), ("mlstm-fcn", 0)]
)
def test_baseline_windows_match_the_training_windows(name: str, baseline_windows: int) -> None:
    """Count, on a real preprocessing run of one synthetic DEAP trial, the windows that start
    inside the 3 s baseline, and compare with what the card would say."""
    p = preset(name)
    spec = dataclasses.replace(p.spec, hop_s=p.stride_s)
    data, _ = generate_subject(1, n_trials=1)
    ends = [
        t
        for t, _ in preprocess_recording(
            spec, deap_trial_streams(data[0]), RATES, stream_labels(p.spec)
        )
    ]
    plain = [i for i in p.spec.inputs if i.baseline_s == 0]
    inside = [e for e in ends if any(e - i.window_s < 3.0 for i in plain)]
    assert len(inside) == baseline_windows
    text = baseline_text(p.spec.inputs, p.stride_s, 3.0)
    if baseline_windows:
        assert text is not None and f"first {baseline_windows} training windows" in text
        assert " and ".join(f"{e:g}" for e in inside) in text
    else:
        assert text is None


@pytest.mark.parametrize(
    "model", sorted(d.name for d in ZOO.iterdir() if (d / "model.json").exists())
)
def test_shipped_cards_state_the_label_rule_and_baseline(model: str) -> None:
    contract, _ = load_contract(ZOO / model)
    card = (ZOO / model / "README.md").read_text()
    assert "Label rule: " + label_rule_text(contract.label_rule, contract.architecture) in card
    stride = float(contract.trained_on["dataset"].get("stride_s") or 0.0)
    said = baseline_text([i.feature for i in contract.inputs], stride, 3.0)
    assert (said is None and "Pre-trial baseline:" not in card) or (
        said is not None and said in card
    )
