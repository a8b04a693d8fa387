"""Paper-faithful preprocessing options: Yang et al.'s per-second baseline subtraction, Tang et
al.'s 31–50 Hz γ band and athar70's HRV channel from PPG, computed by the one Preprocessor that
training and serving share, and carried by the model contract."""

from __future__ import annotations

import numpy as np
import pytest

from affectstream.models.contract import feature_from_dict, feature_to_dict
from affectstream.streaming.preprocess.eeg import (
    baseline_chunk,
    de_bands,
    deap_baseline_correct,
    eeg_band_de,
)
from affectstream.streaming.preprocess.peripheral import hrv_series, ppg_beats
from affectstream.streaming.preprocess.pipeline import Preprocessor, preprocess_recording
from affectstream.streaming.preprocess.spec import (
    OPT_BASELINE_SUBTRACT,
    OPT_DE_GAMMA_HI,
    OPT_HRV,
    ChannelRef,
    FeatureInput,
    FeatureKind,
    PreprocessSpec,
)

FS = 128.0
AUX = (ChannelRef("AUX", "a"), ChannelRef("AUX", "b"))


def _trial(seconds: int, seed: int = 0) -> np.ndarray:
    """Two channels: noise, a per-second pattern (what the baseline subtraction removes) and an
    offset that differs between the baseline and the rest."""
    rng = np.random.default_rng(seed)
    n = seconds * int(FS)
    pattern = np.sin(2 * np.pi * np.arange(int(FS)) / FS)[:, None] * np.array([[3.0, -2.0]])
    x = rng.normal(size=(n, 2)) + np.tile(pattern, (seconds, 1))
    x[int(3 * FS) :] += 5.0
    out: np.ndarray = x
    return out


def _yang_input(window_s: float = 1.0) -> FeatureInput:
    return FeatureInput(
        "x",
        FeatureKind.RAW,
        AUX,
        FS,
        window_s,
        baseline_s=3.0,
        options=((OPT_BASELINE_SUBTRACT, 1.0),),
    )


def test_baseline_subtraction_online_equals_yangs_trial_function() -> None:
    trial = _trial(13)
    reference = deap_baseline_correct(trial, FS)  # the stimulus part, corrected
    spec = PreprocessSpec((_yang_input(),), 0.25)
    got = list(preprocess_recording(spec, {"AUX": trial}, {"AUX": FS}, {"AUX": ("a", "b")}))
    assert got, "no windows"
    for t_end, feats in got:
        end = round((t_end - 3.0) * FS)  # samples after the baseline
        np.testing.assert_allclose(feats["x"], reference[end - int(FS) : end], atol=1e-12)
    # the per-second pattern is gone, the offset shift (+5) stays
    assert abs(reference.mean() - 5.0) < 0.1


def test_baseline_subtraction_does_not_depend_on_how_the_samples_arrive() -> None:
    """A live session's chunks are not whole seconds: pushing 37-sample chunks gives the same
    windows as the trial function (the phase within the second is carried across pushes)."""
    trial = _trial(9, seed=3)
    reference = deap_baseline_correct(trial, FS)
    pre = Preprocessor(PreprocessSpec((_yang_input(),), 0.25), {"AUX": FS}, {"AUX": ("a", "b")})
    pushed = 0
    for start in range(0, len(trial), 37):
        chunk = trial[start : start + 37]
        pre.push({"AUX": chunk})
        pushed += len(chunk)
        if pre.ready:
            end = pushed - int(3 * FS)
            np.testing.assert_allclose(
                pre.features()["x"], reference[end - int(FS) : end], atol=1e-12
            )
    assert pre.ready


def test_the_option_changes_the_features_and_the_contract_carries_it() -> None:
    trial = _trial(8, seed=1)
    plain = FeatureInput("x", FeatureKind.RAW, AUX, FS, 1.0, baseline_s=3.0)
    out = {}
    for name, inp in (("zscore", plain), ("yang", _yang_input())):
        spec = PreprocessSpec((inp,), 0.25)
        out[name] = [
            f["x"]
            for _, f in preprocess_recording(spec, {"AUX": trial}, {"AUX": FS}, {"AUX": ("a", "b")})
        ]
    assert len(out["zscore"]) == len(out["yang"])
    assert not np.allclose(out["zscore"][0], out["yang"][0])
    back = feature_from_dict(feature_to_dict(_yang_input()))
    assert dict(back.options)[OPT_BASELINE_SUBTRACT] == 1.0 and back == _yang_input()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"baseline_s": 0.0},  # no calibration period to take the chunk from
        {"baseline_s": 2.5},  # not whole seconds
        {"srate": 127.5, "window_s": 2.0},  # not a whole-number rate
    ],
)
def test_baseline_subtraction_needs_whole_seconds(kwargs: dict[str, float]) -> None:
    args = {"srate": FS, "window_s": 1.0, "baseline_s": 3.0, **kwargs}
    with pytest.raises(ValueError, match=OPT_BASELINE_SUBTRACT):
        FeatureInput(
            "x",
            FeatureKind.RAW,
            AUX,
            args["srate"],
            args["window_s"],
            baseline_s=args["baseline_s"],
            options=((OPT_BASELINE_SUBTRACT, 1.0),),
        )
    with pytest.raises(ValueError, match="whole seconds"):
        baseline_chunk(np.zeros((100, 2)), FS)


def test_tang_gamma_band_reaches_50_hz() -> None:
    t = np.arange(int(2 * FS)) / FS
    x = np.sin(2 * np.pi * 47.0 * t)[:, None]  # between 45 and 50 Hz
    default = eeg_band_de(x, FS, step_s=2.0)
    tang = eeg_band_de(x, FS, step_s=2.0, bands=de_bands(50.0))
    assert de_bands(50.0)["gamma"] == (31.0, 50.0) and de_bands()["gamma"] == (31.0, 45.0)
    np.testing.assert_array_equal(default[:, :3], tang[:, :3])  # θ, α, β untouched
    # the 47 Hz power is in Tang's γ, and only its Hann-window leakage in the default γ
    assert tang[0, 3] - default[0, 3] > 3.0


def test_gamma_option_reaches_the_pipeline_and_is_checked() -> None:
    eeg = tuple(ChannelRef("EEG", n) for n in ("Fz", "Cz"))
    inp = FeatureInput("de", FeatureKind.EEG_DE, eeg, FS, 2.0, options=((OPT_DE_GAMMA_HI, 50.0),))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(int(4 * FS), 2))
    spec = PreprocessSpec((inp,), 0.25)
    feats = list(preprocess_recording(spec, {"EEG": x}, {"EEG": FS}, {"EEG": ("Fz", "Cz")}))
    t_end, last = feats[-1]
    end = round(t_end * FS)
    expected = eeg_band_de(x[end - int(2 * FS) : end], FS, step_s=2.0, bands=de_bands(50.0))
    np.testing.assert_allclose(last["de"], expected)
    with pytest.raises(ValueError, match="eeg_de"):
        FeatureInput("x", FeatureKind.RAW, AUX, FS, 1.0, options=((OPT_DE_GAMMA_HI, 50.0),))
    with pytest.raises(ValueError, match="not in"):
        FeatureInput("de", FeatureKind.EEG_DE, eeg, 64.0, 2.0, options=((OPT_DE_GAMMA_HI, 50.0),))


def _ppg(beats_s: np.ndarray, seconds: float) -> np.ndarray:
    """A pulse wave: one smooth bump (SD 80 ms) per beat time."""
    t = np.arange(int(seconds * FS)) / FS
    out: np.ndarray = np.sum(np.exp(-0.5 * ((t[:, None] - beats_s[None, :]) / 0.08) ** 2), axis=1)
    return out


def test_hrv_series_is_the_change_of_successive_inter_beat_intervals() -> None:
    ibis = np.array([0.8, 0.9, 0.8, 1.0, 0.85, 0.95, 0.8])
    beats = 0.4 + np.concatenate([[0.0], np.cumsum(ibis)])
    x = _ppg(beats, 7.5)
    found = ppg_beats(x, FS) / FS
    assert len(found) == len(beats)
    np.testing.assert_allclose(found, beats, atol=2 / FS)
    hrv = hrv_series(x, FS)
    changes = np.abs(np.diff(ibis))  # at beats 2, 3, …
    for k, change in enumerate(changes):
        after = round(beats[k + 2] * FS) + 3  # just after that beat
        assert hrv[after] == pytest.approx(change, abs=2.5 / FS)
    assert hrv[0] == pytest.approx(changes[0], abs=2.5 / FS)  # held back to the start
    assert hrv[-1] == pytest.approx(changes[-1], abs=2.5 / FS)  # held to the end


def test_hrv_of_a_flat_or_beatless_signal_is_zero() -> None:
    assert not hrv_series(np.zeros(640), FS).any()
    assert not hrv_series(_ppg(np.array([1.0, 2.0]), 5.0), FS).any()  # two beats: no change


def test_hrv_channel_in_the_pipeline_is_computed_on_each_window() -> None:
    chans = (ChannelRef("GSR", "GSR"), ChannelRef("PPG", "Plethysmograph"))
    inp = FeatureInput(
        "x", FeatureKind.RAW, chans, FS, 5.0, baseline_s=3.0, options=((OPT_HRV, 1.0),)
    )
    assert inp.shape == (640, 3)
    rng = np.random.default_rng(4)
    beats = np.cumsum(rng.uniform(0.7, 1.1, size=16))
    ppg = _ppg(beats, 13.0)[:, None] + 0.01 * rng.normal(size=(int(13 * FS), 1))
    gsr = 5 + 0.1 * rng.normal(size=(int(13 * FS), 1))
    spec = PreprocessSpec((inp,), 0.25)
    streams = {"GSR": gsr, "PPG": ppg}
    rates = {"GSR": FS, "PPG": FS}
    feats = list(
        preprocess_recording(spec, streams, rates, {"GSR": ("GSR",), "PPG": ("Plethysmograph",)})
    )
    assert feats
    for _, f in feats[:: max(1, len(feats) // 4)]:
        x = f["x"]
        assert x.shape == (640, 3)
        np.testing.assert_array_equal(x[:, 2], hrv_series(x[:, 1], FS))
        assert x[:, 2].max() > 0.01  # the random intervals change by tens of ms
    with pytest.raises(ValueError, match="PPG"):
        FeatureInput("x", FeatureKind.RAW, AUX, FS, 5.0, options=((OPT_HRV, 1.0),))
