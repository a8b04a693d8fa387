"""Optional streams (issue #14, "needs and may use"): a raw input may name streams a session may
lack; the Preprocessor then feeds their channels as zeros, leaves the other columns as they would
be with the stream, and the rate plan and feeder work without it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from affectstream.models.contract import feature_from_dict, feature_to_dict
from affectstream.streaming.preprocess.pipeline import (
    Preprocessor,
    column_streams,
    preprocess_recording,
    source_rate_plan,
)
from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    PreprocessSpec,
)

AUX = tuple(ChannelRef("AUX", x) for x in ("hEOG", "vEOG", "Temperature"))
PERIPH = (ChannelRef("GSR", "GSR"), ChannelRef("AUX", "zEMG"), ChannelRef("PPG", "PPG"))


def _spec(optional: tuple[str, ...] = ("AUX",), baseline_s: float = 1.0) -> PreprocessSpec:
    periph = FeatureInput(
        "periph",
        FeatureKind.RAW,
        PERIPH + AUX,
        32.0,
        2.0,
        baseline_s=baseline_s,
        optional_streams=optional,
    )
    return PreprocessSpec((periph,), 0.25)


LABELS = {"GSR": ("GSR",), "PPG": ("PPG",), "AUX": ("hEOG", "vEOG", "zEMG", "Temperature")}


def _recording(seconds: float = 6.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    n64, n32 = int(seconds * 64), int(seconds * 32)
    return {
        "GSR": 5.0 + np.cumsum(rng.normal(0, 0.01, (n32, 1)), axis=0),
        "PPG": np.sin(np.arange(n64) / 64 * 2 * np.pi * 1.2)[:, None]
        + rng.normal(0, 0.05, (n64, 1)),
        "AUX": rng.normal(0, 20.0, (n32, 4)),
    }


RATES = {"GSR": 32.0, "PPG": 64.0, "AUX": 32.0}


def test_needed_and_optional_streams_of_a_spec() -> None:
    spec = _spec()
    assert spec.streams == ("GSR", "AUX", "PPG")
    assert spec.needed_streams == ("GSR", "PPG")
    assert spec.optional_streams == ("AUX",)
    # a stream optional in one input and needed by another is needed
    other = FeatureInput("aux_too", FeatureKind.RAW, AUX, 32.0, 2.0)
    both = PreprocessSpec((*spec.inputs, other), 0.25)
    assert both.needed_streams == ("GSR", "AUX", "PPG") and both.optional_streams == ()


@pytest.mark.parametrize(
    ("kind", "optional", "why"),
    [
        (FeatureKind.RAW, ("EEG",), "not all among its streams"),
        (FeatureKind.RAW, ("GSR", "AUX", "PPG"), "at least one stream that is not optional"),
        (FeatureKind.PERIPH_STATS, ("AUX",), "need a raw input"),
    ],
)
def test_invalid_optional_streams_are_refused(
    kind: FeatureKind, optional: tuple[str, ...], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        FeatureInput("periph", kind, PERIPH + AUX, 32.0, 2.0, optional_streams=optional)


def test_the_contract_keeps_optional_streams() -> None:
    feature = _spec().inputs[0]
    d = feature_to_dict(feature)
    assert d["optional_streams"] == ["AUX"]
    assert feature_from_dict(d) == feature
    plain = dataclasses.replace(feature, optional_streams=())
    assert "optional_streams" not in feature_to_dict(plain)  # old contracts read the same


def test_rate_plan_without_the_optional_stream_and_a_missing_needed_one() -> None:
    spec = _spec()
    assert source_rate_plan(spec, {"GSR": 32.0, "PPG": 64.0}) == {"GSR": 32.0, "PPG": 64.0}
    with pytest.raises(ValueError, match="no PPG stream"):
        source_rate_plan(spec, {"GSR": 32.0, "AUX": 32.0})


def test_column_layout_is_the_preprocessors() -> None:
    """column_streams (training's stream dropout reads it) names the stream of each column the
    Preprocessor lays out: stream by stream in order of first use."""
    spec = _spec(baseline_s=0.0)
    feature = spec.inputs[0]
    assert column_streams(feature) == ("GSR", "AUX", "AUX", "AUX", "AUX", "PPG")
    pre = Preprocessor(spec, {"GSR": 32.0, "PPG": 32.0, "AUX": 32.0}, LABELS)
    marks = {"GSR": 1.0, "PPG": 2.0, "AUX": 3.0}
    n = 16
    while not pre.ready:
        pre.push({s: np.full((n, len(LABELS[s])), v) for s, v in marks.items()})
    x = pre.features()["periph"]
    assert list(x[-1]) == [marks[s] for s in column_streams(feature)]


def test_absent_optional_stream_is_zeros_and_leaves_the_other_columns_alone() -> None:
    spec = _spec()
    rec = _recording()
    with_aux = list(preprocess_recording(spec, rec, RATES, LABELS))
    without = {s: v for s, v in rec.items() if s != "AUX"}
    labels = {s: v for s, v in LABELS.items() if s != "AUX"}
    rates = {s: v for s, v in RATES.items() if s != "AUX"}
    pre = Preprocessor(spec, rates, labels)
    assert pre.streams == ("GSR", "PPG") and pre.absent_optional() == ("AUX",)
    no_aux = list(preprocess_recording(spec, without, rates, labels))
    assert len(no_aux) == len(with_aux) > 0
    aux = [i for i, s in enumerate(column_streams(spec.inputs[0])) if s == "AUX"]
    rest = [i for i in range(6) if i not in aux]
    for (t1, a), (t2, b) in zip(with_aux, no_aux, strict=True):
        assert t1 == t2
        assert np.all(b["periph"][:, aux] == 0.0)
        assert np.any(a["periph"][:, aux] != 0.0)
        np.testing.assert_allclose(
            a["periph"][:, rest], b["periph"][:, rest], rtol=1e-12, atol=1e-12
        )
