"""Paper-faithful training options and comparison tasks: each is selectable on `affectstream
train`, runs, and is labelled in the report; the preprocessing ones reach the exported contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from affectstream.models.contract import load_contract
from affectstream.models.runner import ModelRunner
from affectstream.service.cli import main
from affectstream.streaming.formats.deap import read_deap
from affectstream.streaming.preprocess.pipeline import Preprocessor, preprocess_recording
from affectstream.streaming.preprocess.spec import OPT_BASELINE_SUBTRACT, OPT_DE_GAMMA_HI, OPT_HRV
from affectstream.streaming.replay.deap import deap_trial_streams
from affectstream.training.optim import make_optimizer
from affectstream.training.options import OPTIMIZERS, apply_preprocessing_options
from affectstream.training.presets import preset, stream_labels
from affectstream.training.tasks import (
    QUADRANTS,
    nine_class_labels,
    quadrant_metrics,
    summarise_quadrant,
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("tiny-deap-options")
    write_synthetic_deap(out, n_subjects=3, n_trials=2, seed=5)
    return out


def test_quadrant_metrics_by_hand() -> None:
    y_true = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y_pred = np.array([[0, 0], [0, 0], [1, 0], [1, 1]])  # LVHA taken for LVLA
    m = quadrant_metrics(y_true, y_pred)
    assert QUADRANTS == ("LVLA", "LVHA", "HVLA", "HVHA")
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == 0.75
    assert m["confusion"][1] == [1, 0, 0, 0] and np.trace(m["confusion"]) == 3
    s = summarise_quadrant([m, quadrant_metrics(y_true, y_true)])
    assert s["accuracy"]["mean"] == pytest.approx(0.875) and s["accuracy"]["std"] == 0.125
    assert np.sum(s["confusion"]) == 8


def test_nine_class_labels_round_halves_up_and_clip() -> None:
    r = np.array([[1.0, 1.49], [1.5, 4.5], [8.6, 9.0], [0.2, 9.7]])
    assert nine_class_labels(r).tolist() == [[0, 0], [1, 4], [8, 8], [0, 8]]
    with pytest.raises(ValueError, match="finite"):
        nine_class_labels(np.array([[np.nan, 1.0]]))


def test_rtcan_sgd_schedule_multiplies_the_rate_every_15_epochs() -> None:
    setup = OPTIMIZERS["sgd-rtcan"]
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt, schedule = make_optimizer(
        setup.algorithm,
        params,
        lr=setup.lr,
        weight_decay=setup.weight_decay,
        momentum=setup.momentum,
        lr_step_epochs=setup.lr_step_epochs,
        lr_gamma=setup.lr_gamma,
    )
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert schedule is not None
    rates = []
    for _ in range(31):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates[0] == rates[14] == pytest.approx(1e-3)
    assert rates[15] == pytest.approx(9e-4) and rates[30] == pytest.approx(8.1e-4)
    code = OPTIMIZERS["sgd-rtcan-code"]
    assert (code.lr, code.weight_decay, code.batch_size, code.epochs) == (0.1, 1e-3, 300, 300)
    _, none = make_optimizer("adam", params, lr=1e-3, weight_decay=1e-4)
    assert none is None
    with pytest.raises(ValueError, match="unknown optimiser"):
        make_optimizer("rmsprop", params, lr=1e-3, weight_decay=0.0)


def test_preprocessing_options_change_the_preset_spec() -> None:
    base = preset("bimodal-lstm")
    assert apply_preprocessing_options(base, baseline="zscore", de_gamma_hi=45.0) is base
    tang = apply_preprocessing_options(base, baseline="zscore", de_gamma_hi=50.0)
    de = next(i for i in tang.spec.inputs if i.name == "eeg_de")
    assert dict(de.options)[OPT_DE_GAMMA_HI] == 50.0
    yang = apply_preprocessing_options(preset("cnn-lstm"), baseline="yang", de_gamma_hi=45.0)
    assert all(dict(i.options).get(OPT_BASELINE_SUBTRACT) == 1.0 for i in yang.spec.inputs)
    # an input without a calibration period gets Yang's 3 s
    yb = apply_preprocessing_options(base, baseline="yang", de_gamma_hi=45.0)
    assert all(i.baseline_s == 3.0 for i in yb.spec.inputs)
    with pytest.raises(ValueError, match="differential-entropy"):
        apply_preprocessing_options(preset("cnn-lstm"), baseline="zscore", de_gamma_hi=50.0)
    with pytest.raises(ValueError, match="cvxEDA only"):
        apply_preprocessing_options(preset("rtcan1d"), baseline="yang", de_gamma_hi=45.0)


def _train(data: Path, out: Path, *extra: str) -> int:
    args = ["train", "--data", str(data), "--folds", "2", "--epochs", "1", "--seed", "1"]
    return main([*args, "--quiet", "--out", str(out), *extra])


@pytest.mark.slow  # about 25 s on a loaded 2-core machine (training, final model, export)
@pytest.mark.timeout(300)
def test_paper_options_run_are_reported_and_reach_the_contract(
    tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    code = _train(
        tiny_data,
        run,
        "--model",
        "mlstm-fcn-athar",
        "--baseline",
        "yang",
        "--optimizer",
        "sgd-rtcan",
        "--label-rule",
        "kmeans2d",
        "--protocol",
        "random70",
        "--task",
        "quadrant",
    )
    assert code == 0
    report = json.loads((run / "report.json").read_text())
    opts = report["config"]["paper_options"]
    assert opts["baseline"] == "yang" and opts["optimizer"] == "sgd-rtcan"
    assert opts["label_rule"] == "kmeans2d" and opts["task"] == "quadrant"
    assert report["label_rule"]["kind"] == "kmeans2d" and report["protocol"] == "random70"
    assert report["config"]["batch_size"] == 256 and report["config"]["lr"] == 1e-3
    assert len(report["folds"]) == 1
    q = report["config"]["quadrant_task"]
    n_test = report["folds"][0]["n_test"]
    assert np.sum(q["confusion"]) == n_test and 0 <= q["accuracy"]["mean"] <= 1
    md = (run / "report.md").read_text()
    for text in ("Leaky protocol (random70)", "--baseline yang", "sgd-rtcan", "kmeans2d"):
        assert text in md, text
    assert "4-class quadrant task" in md
    assert "--baseline yang" in report["config"]["command"]

    zoo = tmp_path / "zoo"
    assert main(["export", "--run", str(run), "--out", str(zoo)]) == 0
    contract, _ = load_contract(zoo)
    (feature,) = (i.feature for i in contract.inputs if i.feature is not None)
    assert dict(feature.options) == {OPT_HRV: 1.0, OPT_BASELINE_SUBTRACT: 1.0}
    assert feature.shape == (640, 5)

    # serving: the contract's spec, fed live-sized chunks, computes training's features, and the
    # runner turns them into probabilities
    runner = ModelRunner(zoo)
    spec = runner.contract.preprocess_spec()
    trial = deap_trial_streams(read_deap(tiny_data / "s01.dat").data[0])
    labels = stream_labels(spec)
    live = Preprocessor(spec, dict.fromkeys(spec.streams, 128.0), labels)
    for start in range(0, 20 * 128, 32):  # 0.25 s hops up to 20 s
        live.push({s: trial[s][start : start + 32] for s in spec.streams})
    athar = apply_preprocessing_options(
        preset("mlstm-fcn-athar"), baseline="yang", de_gamma_hi=45.0
    )
    offline = dict(preprocess_recording(athar.spec, trial, dict.fromkeys(trial, 128.0), labels))
    np.testing.assert_allclose(live.features()["x"], offline[20.0]["x"], atol=1e-9)
    probs = runner.predict([live.features()])
    assert probs.shape == (1, 2) and ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.timeout(300)
def test_nine_class_task_is_offline_only(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "nine"
    code = _train(
        tiny_data,
        run,
        "--model",
        "mlstm-fcn-athar",
        "--task",
        "nine-class",
        "--protocol",
        "segment",
    )
    assert code == 0
    report = json.loads((run / "report.json").read_text())
    assert report["task"] == "nine-class" and report["exportable"] is False
    assert report["leaky"] is True and len(report["folds"]) == 2
    for fold in report["folds"]:
        for dim in ("valence", "arousal"):
            confusion = np.array(fold["metrics"][dim]["confusion"])
            assert confusion.shape == (9, 9) and confusion.sum() == fold["n_test"]
    assert sum(report["class_counts"]["valence"]) == report["dataset"]["windows"]
    assert not (run / "final.pt").exists()  # nothing to export
    md = (run / "report.md").read_text()
    assert "Not exportable" in md and "Leaky protocol" in md
