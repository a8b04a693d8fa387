"""BDDAE end to end: a tiny run on synthetic DEAP-format data trains with the reconstruction term,
exports a serving graph without decoders, and the runner turns the service's own features into
probabilities."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from affectstream.models import registry
from affectstream.training.presets import architecture_of, preset

EPOCHS = 3


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread (tiny layers on a shared 2-core machine run faster so)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> tuple[Path, Path]:
    """(run dir, exported model dir) of ``bddae-quick`` trained on 4 synthetic subjects."""
    from affectstream.service.cli import main
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    root = tmp_path_factory.mktemp("bddae")
    data = root / "data"
    write_synthetic_deap(data, n_subjects=4, n_trials=2, seed=11)
    run = root / "run"
    args = ["train", "--data", str(data), "--model", "bddae-quick", "--folds", "2"]
    args += ["--epochs", str(EPOCHS), "--patience", str(EPOCHS), "--seed", "1", "--quiet"]
    assert main([*args, "--out", str(run)]) == 0
    zoo = root / "zoo" / "bddae-quick"
    assert main(["export", "--run", str(run), "--out", str(zoo)]) == 0
    return run, zoo


def test_presets_feed_the_registry_shapes() -> None:
    for name in ("bddae", "bddae-quick"):
        p = preset(name)
        assert architecture_of(name) == "bddae"
        shapes = {f.name: f.shape for f in p.spec.inputs}
        assert shapes == {"eeg_de": (1, 128), "periph_stats": (1, 48)}  # one 2 s step
        assert registry.resolve_dims("bddae", shapes)["n_steps"] == 1
    assert preset("bddae-quick").hyper == {"hidden_eeg": 16, "hidden_periph": 8, "hidden_shared": 8}


def test_only_a_model_with_the_hook_gets_an_auxiliary_term() -> None:
    import torch

    from affectstream.models.architectures.bddae import BDDAE
    from affectstream.training.train import auxiliary_loss

    xs = [torch.randn(3, *s) for s in registry.default_input_shapes("bddae").values()]
    bddae = registry.build("bddae").train()
    assert isinstance(bddae, BDDAE)
    aux = auxiliary_loss(bddae, xs)
    assert aux is not None and aux.shape == () and float(aux.detach()) > 0
    bddae.recon_weight = 0.0
    with torch.no_grad():
        assert float(auxiliary_loss(bddae, xs)) == 0.0  # type: ignore[arg-type]
    xs_lstm = [torch.randn(3, *s) for s in registry.default_input_shapes("bimodal-lstm").values()]
    assert auxiliary_loss(registry.build("bimodal-lstm"), xs_lstm) is None


@pytest.mark.timeout(300)
def test_training_adds_the_reconstruction_term(tiny_run: tuple[Path, Path]) -> None:
    run, _ = tiny_run
    report = json.loads((run / "report.json").read_text())
    assert report["model"] == "bddae"
    for fold in report["folds"]:
        history = fold["history"]
        n = len(history["train_loss"])
        assert n == EPOCHS  # patience = epochs: no early stop
        aux = history["train_aux_loss"]
        assert len(aux) == n and all(math.isfinite(v) and v > 0 for v in aux)
        assert len(history["val_loss"]) == n
    final = json.loads((run / "final.json").read_text())
    assert final["architecture"] == "bddae" and final["preset"] == "bddae-quick"
    assert final["hyper"] == preset("bddae-quick").hyper


@pytest.mark.timeout(300)
def test_exported_bddae_serves_probabilities(tiny_run: tuple[Path, Path]) -> None:
    import onnx

    from affectstream.models.contract import load_contract
    from affectstream.models.runner import ModelRunner
    from affectstream.streaming.preprocess.pipeline import preprocess_recording
    from affectstream.streaming.replay.deap import deap_trial_streams
    from affectstream.streaming.synthetic.deap import generate_subject
    from affectstream.training.datasets.deap import RATES
    from affectstream.training.presets import stream_labels

    _, zoo = tiny_run
    contract, onnx_path = load_contract(zoo)
    assert contract.id == "bddae-quick@1" and contract.architecture == "bddae"
    assert [(i.name, i.shape) for i in contract.inputs] == [
        ("eeg_de", (1, 128)),
        ("periph_stats", (1, 48)),
    ]
    # the served graph: encoders + classifier (16·128+16 + 8·48+8 + 8·24+8 + 2·8+2 weights)
    proto = onnx.load(str(onnx_path))
    stored = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    assert stored == (16 * 128 + 16) + (8 * 48 + 8) + (8 * 24 + 8) + (2 * 8 + 2)
    assert not any("decoder" in t.name for t in proto.graph.initializer)
    card = (zoo / "README.md").read_text()
    assert "Demo model trained on synthetic data" in card and "Departures from the paper" in card

    # a subject the run never saw, through the preprocessing the service runs
    spec = contract.preprocess_spec()
    data, _ = generate_subject(7, n_trials=1, seed=99)
    windows = [
        feats
        for _, feats in preprocess_recording(
            spec, deap_trial_streams(data[0]), RATES, stream_labels(spec), stride_s=2.0
        )
    ]
    assert len(windows) >= 20
    runner = ModelRunner(zoo, providers=["CPUExecutionProvider"])
    probs = runner.predict(windows)
    assert probs.shape == (len(windows), 2) and probs.dtype == np.float32
    assert np.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all()
    assert np.ptp(probs, axis=0).min() > 0  # the windows' features reach the output
