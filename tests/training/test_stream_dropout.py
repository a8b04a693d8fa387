"""Stream dropout (issue #14): training a model on sessions that lack a stream it may use feeds
that stream's columns exactly as serving does without it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affectstream.models.contract import InputContract  # noqa: E402
from affectstream.streaming.preprocess.pipeline import (  # noqa: E402
    Preprocessor,
    column_streams,
)
from affectstream.training.augment import StreamDropout, optional_columns  # noqa: E402
from affectstream.training.presets import PRESETS, STREAM_LABELS  # noqa: E402
from affectstream.training.train import TrainConfig, model_inputs, stream_dropout  # noqa: E402

LAB = PRESETS["cnn-lstm-lab"]
PERIPH = next(f for f in LAB.spec.inputs if f.name == "periph")


def test_the_lab_preset_needs_eeg_and_peripherals_and_may_use_aux() -> None:
    assert LAB.spec.needed_streams == ("EEG", "GSR", "PPG", "RESP")
    assert LAB.spec.optional_streams == ("AUX",)
    assert LAB.stream_dropout is not None and LAB.stream_dropout.p > 0
    cols = optional_columns(PERIPH)
    assert list(cols) == ["AUX"] and list(cols["AUX"]) == [3, 4, 5, 6, 7]
    assert [column_streams(PERIPH)[i] for i in cols["AUX"]] == ["AUX"] * 5


def test_invalid_probability_is_refused() -> None:
    with pytest.raises(ValueError, match="not in"):
        StreamDropout(p=1.5)


def _dropout(p: float, mean: np.ndarray, std: np.ndarray, seed: int = 0):  # type: ignore[no-untyped-def]
    cfg = TrainConfig(model="cnn-lstm", stream_dropout=StreamDropout(p=p))
    inputs = model_inputs("cnn-lstm", LAB.spec)
    norms = {
        "eeg_grid": (np.zeros((1, 1, 1)), np.ones((1, 1, 1))),
        "periph": (mean[None, :], std[None, :]),
    }
    return inputs, stream_dropout(cfg, inputs, norms, seed)


def test_dropped_windows_get_the_normalised_zero_signal_and_nothing_else_changes() -> None:
    mean = np.array([4.0, 0.5, 900.0, 1.0, -2.0, 3.0, 0.25, 31.0])
    std = np.array([1.0, 0.2, 100.0, 30.0, 30.0, 10.0, 10.0, 2.0])
    inputs, apply = _dropout(0.5, mean, std)
    assert apply is not None
    k = inputs.names.index("periph")
    rng = np.random.default_rng(1)
    shapes = {"eeg_grid": (128, 9, 9), "periph": (128, 8)}
    batch = [
        torch.from_numpy(rng.normal(size=(400, *shapes[n])).astype(np.float32))
        for n in inputs.names
    ]
    out = apply(batch)
    x, y = batch[k].numpy(), out[k].numpy()
    fill = (-mean / std).astype(np.float32)
    dropped = np.all(y[:, :, 3:] == fill[3:], axis=(1, 2))
    kept = np.all(y[:, :, 3:] == x[:, :, 3:], axis=(1, 2))
    assert np.all(dropped ^ kept)  # every window: AUX wholly dropped or wholly kept
    assert 0.4 < dropped.mean() < 0.6  # p = 0.5 over 400 windows
    np.testing.assert_array_equal(y[:, :, :3], x[:, :, :3])  # GSR, PPG, RESP untouched
    other = [i for i in range(len(batch)) if i != k]
    for i in other:
        assert out[i] is batch[i]
    assert _dropout(0.0, mean, std)[1] is None


def test_training_fills_what_serving_feeds_without_the_stream() -> None:
    """The service's Preprocessor without AUX, normalised by the contract (as the runner does),
    gives the AUX columns exactly the value stream dropout trains with."""
    rates = {"EEG": 128.0, "GSR": 128.0, "PPG": 128.0, "RESP": 128.0}
    labels = {s: STREAM_LABELS[s] for s in rates}
    labels |= {"GSR": ("GSR",), "PPG": ("PPG",), "RESP": ("RESP",)}
    pre = Preprocessor(LAB.spec, rates, labels)
    rng = np.random.default_rng(2)
    while not pre.ready:
        pre.push({s: rng.normal(5.0, 1.0, (32, len(labels[s]))) for s in rates})
    mean = np.array([4.0, 0.5, 900.0, 1.0, -2.0, 3.0, 0.25, 31.0])
    std = np.array([1.0, 0.2, 100.0, 30.0, 30.0, 10.0, 10.0, 2.0])
    served = InputContract(PERIPH, PERIPH.shape, mean[None, :], std[None, :]).normalise(
        pre.features()["periph"]
    )
    inputs, apply = _dropout(1.0, mean, std)
    assert apply is not None
    batch = [
        torch.zeros((1, *((128, 9, 9) if n == "eeg_grid" else (128, 8)))) for n in inputs.names
    ]
    trained = apply(batch)[inputs.names.index("periph")].numpy()[0]
    np.testing.assert_array_equal(served[:, 3:], trained[:, 3:])
    assert np.any(served[:, :3] != trained[:, :3])


def test_the_coverage_evaluation_removes_exactly_the_optional_stream() -> None:
    """evaluate-coverage's rows "without AUX" zero the AUX columns of the raw features (what the
    Preprocessor feeds without the stream) and nothing else."""
    from affectstream.training.coverage import _without

    inp = InputContract(PERIPH, PERIPH.shape, np.zeros((1, 8)), np.ones((1, 8)))
    x = np.random.default_rng(0).normal(size=(5, *PERIPH.shape))
    out = _without(x, inp, "AUX")
    assert np.all(out[..., 3:] == 0.0)
    np.testing.assert_array_equal(out[..., :3], x[..., :3])
    np.testing.assert_array_equal(_without(x, inp, "EEG"), x)  # not optional: untouched
