"""Any rate in, the model's rate out: the preprocessing plans, resamples and re-plans streams at
rates that are no whole multiple of the feature rate, offline and online alike."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

from affectstream.streaming.ingest.ring_buffer import RingBuffer
from affectstream.streaming.ingest.windows import Windower
from affectstream.streaming.preprocess.filters import Decimator
from affectstream.streaming.preprocess.pipeline import (
    Preprocessor,
    WindowFeeder,
    delivery_window_s,
    hop_bounds,
    preprocess_recording,
    source_rate_plan,
)
from affectstream.streaming.preprocess.resample import Resampler
from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    FilterSpec,
    PreprocessSpec,
)

EEG_LABELS = ("Fp1", "Fz", "Cz", "O2")
LABELS = {"EEG": EEG_LABELS, "GSR": ("GSR",)}
EEG_DE = FeatureInput(
    "eeg_de",
    FeatureKind.EEG_DE,
    tuple(ChannelRef("EEG", c) for c in EEG_LABELS),
    128.0,
    10.0,
    filters=(FilterSpec("bandpass", (4.0, 45.0)),),
)
EDA = FeatureInput("eda", FeatureKind.RAW, (ChannelRef("GSR", "GSR"),), 16.0, 10.0)
SPEC = PreprocessSpec((EEG_DE, EDA), hop_s=0.5)

Signal = Callable[[np.ndarray], np.ndarray]


def eeg(t: np.ndarray) -> np.ndarray:
    """Four channels of sines at whole multiples of 0.5 Hz (whole periods in every 2 s step, so
    band powers do not depend on where a step starts), 5-40 Hz, plus 100 Hz that must not alias
    (above the 64 Hz output Nyquist; it would fold to 28 Hz from 256 Hz)."""
    return eeg_in_band(t) + np.sin(2 * np.pi * 100.0 * t)[:, None]


def eeg_in_band(t: np.ndarray) -> np.ndarray:
    """What a device at 128 Hz would record of :func:`eeg` (its own anti-aliasing removes the
    100 Hz)."""
    freqs = np.array([5.0, 7.5, 10.0, 12.5, 18.0, 24.5, 33.0, 40.0])
    rng = np.random.default_rng(7)
    amp = rng.uniform(0.5, 2.0, (4, len(freqs)))
    phase = rng.uniform(0, 2 * np.pi, (4, len(freqs)))
    arg = 2 * np.pi * freqs[None, None, :] * t[:, None, None] + phase[None]
    out: np.ndarray = (amp[None] * np.sin(arg)).sum(axis=2)
    return out


def gsr(t: np.ndarray) -> np.ndarray:
    """Skin conductance: a 8 µS level, slow swings, and 20 Hz interference (above the 8 Hz output
    Nyquist: it would fold to 4 Hz from 50 Hz)."""
    slow = (
        0.5 * np.sin(2 * np.pi * 0.05 * t)
        + 0.2 * np.sin(2 * np.pi * 0.3 * t + 1.0)
        + 0.05 * np.sin(2 * np.pi * 1.2 * t + 2.0)
    )
    return (8.0 + slow + 0.05 * np.sin(2 * np.pi * 20.0 * t))[:, None]


def _sampled(rates: dict[str, float], seconds: float) -> dict[str, np.ndarray]:
    fn = {"EEG": eeg, "GSR": gsr}
    return {s: fn[s](np.arange(round(seconds * r)) / r) for s, r in rates.items()}


# -- planning ------------------------------------------------------------------------------------


def test_plan_delivers_native_whenever_it_is_at_or_above_the_feature_rate() -> None:
    for eeg_rate in (128.0, 250.0, 256.0, 500.0, 512.0):
        for gsr_rate in (16.0, 50.0, 51.2, 64.0):
            plan = source_rate_plan(SPEC, {"EEG": eeg_rate, "GSR": gsr_rate})
            assert plan == {"EEG": eeg_rate, "GSR": gsr_rate}
    # below the one feature rate: the windowing layer interpolates (4 Hz Empatica EDA → 16 Hz)
    assert source_rate_plan(SPEC, {"EEG": 256.0, "GSR": 4.0}) == {"EEG": 256.0, "GSR": 16.0}
    # one stream feeding 32 Hz (above) and 8 Hz (below): delivered native, brought up and down
    mixed = PreprocessSpec(
        (
            FeatureInput("up", FeatureKind.RAW, EDA.channels, 32.0, 10.0),
            FeatureInput("down", FeatureKind.RAW, EDA.channels, 8.0, 10.0),
        ),
        hop_s=0.5,
    )
    assert source_rate_plan(mixed, {"GSR": 16.0}) == {"GSR": 16.0}
    with pytest.raises(ValueError, match="finite"):
        source_rate_plan(SPEC, {"EEG": 256.0, "GSR": 0.0})


def test_conversion_per_rate() -> None:
    """Whole factors keep the Decimator (what shipped models were trained with, bit for bit);
    every other ratio takes the Resampler."""
    kinds = {}
    for rate in (128.0, 250.0, 256.0, 500.0, 512.0):
        pre = Preprocessor(SPEC, {"EEG": rate, "GSR": 51.2}, LABELS)
        conv = pre._states[0].decimators.get("EEG")
        kinds[rate] = type(conv).__name__ if conv is not None else None
        assert isinstance(pre._states[1].decimators["GSR"], Resampler)
    assert kinds == {
        128.0: None,
        250.0: "Resampler",
        256.0: "Decimator",
        500.0: "Resampler",
        512.0: "Decimator",
    }
    delays = Preprocessor(SPEC, {"EEG": 500.0, "GSR": 50.0}, LABELS).delays_s()
    assert delays["eeg_de"]["EEG"] == pytest.approx(Resampler(500.0, 128.0).delay_s)
    assert delays["eda"]["GSR"] == pytest.approx(Resampler(50.0, 16.0).delay_s)
    assert Preprocessor(SPEC, {"EEG": 256.0, "GSR": 16.0}, LABELS).delays_s() == {
        "eeg_de": {"EEG": pytest.approx(Decimator(2, 256.0).delay_s)},
        "eda": {"GSR": 0.0},
    }


def test_hop_bounds_and_delivery_window() -> None:
    assert [hop_bounds(k, 0.5, 51.2) for k in range(6)] == [0, 26, 52, 77, 103, 128]
    assert [hop_bounds(k, 0.5, 250.0) for k in range(3)] == [0, 125, 250]
    assert delivery_window_s(10.0, [51.2, 250.0]) == 10.0
    assert delivery_window_s(1.0, [51.2, 128.0]) == 1.015625  # 52 and 130 samples
    with pytest.raises(ValueError, match="whole samples"):
        delivery_window_s(1.0, [127.98, 51.2])  # whole samples at both: 50 s


# -- features at other rates equal the features at the feature rate ------------------------------


@pytest.mark.parametrize(
    ("eeg_rate", "gsr_rate"), [(256.0, 50.0), (512.0, 51.2), (250.0, 51.2), (500.0, 50.0)]
)
def test_features_from_other_rates_match_the_native_ones(eeg_rate: float, gsr_rate: float) -> None:
    """The same continuous signals sampled at the device's rates and at the features' rates.

    - EEG differential entropy (½ ln 2πe σ² per band): a gain error of g dB moves it by
      0.115 g. The Resampler's ripple is ≤ 0.011 dB (0.0013) and its stopband ≥ 59 dB (the 100
      Hz tone adds ≤ 1e-6 of a band's variance): 0.003. The Decimator's Butterworth (order 6,
      -3 dB at 51.2 Hz) loses 0.23 dB at 40 Hz (0.026 for a lone 40 Hz tone; the γ band also
      holds 33 Hz) and lets the 100 Hz tone fold to 28 Hz at -35 dB from 256 Hz: 0.03.
    - EDA samples: the Resampler's output for instant t is the input at t - delay_s (linear
      phase), so they equal the in-band signal there to its ripple (1.2e-3 of the 0.75 µS swing)
      and its stopband (20 Hz at -60 dB: 5e-5 µS): 2e-3 µS.
    Compared from 20 s on (10 s window + filter start-up), against the signals a device at the
    feature rate would have recorded (without what lies above their Nyquist frequency).
    """
    rates = {"EEG": eeg_rate, "GSR": gsr_rate}
    pre = Preprocessor(SPEC, source_rate_plan(SPEC, rates), LABELS)
    d_eeg, d_gsr = pre.delays_s()["eeg_de"]["EEG"], pre.delays_s()["eda"]["GSR"]
    got = dict(preprocess_recording(SPEC, _sampled(rates, 40.0), rates, LABELS))
    native_rates = {"EEG": 128.0, "GSR": 16.0}
    t128 = np.arange(40 * 128) / 128 - d_eeg  # the native samples, delayed alike
    native_streams = {"EEG": eeg_in_band(t128), "GSR": slow_gsr(t128[::8])}
    native = dict(preprocess_recording(SPEC, native_streams, native_rates, LABELS))
    assert sorted(got) == sorted(native) and len(got) == 61  # windows end 10.0, 10.5, …, 40.0 s
    worst_de = worst_eda = 0.0
    for t_end, feats in got.items():
        assert all(np.isfinite(v).all() for v in feats.values())
        if t_end < 20:
            continue
        worst_de = max(worst_de, np.abs(feats["eeg_de"] - native[t_end]["eeg_de"]).max())
        t = (np.arange(160) + 16 * (t_end - 10)) / 16 - d_gsr
        worst_eda = max(worst_eda, np.abs(feats["eda"] - slow_gsr(t)).max())
    assert worst_de < (0.03 if eeg_rate in (256.0, 512.0) else 0.003)
    assert worst_eda < 2e-3


def test_mixed_rates_on_one_stream_go_up_and_down() -> None:
    """A 16 Hz stream feeding 32 Hz (Resampler, up) and 8 Hz (Decimator, down) features; a slow
    signal (no interference: at 16 Hz the device itself would have folded it into the band)."""
    spec = PreprocessSpec(
        (
            FeatureInput("up", FeatureKind.RAW, EDA.channels, 32.0, 10.0),
            FeatureInput("down", FeatureKind.RAW, EDA.channels, 8.0, 10.0),
        ),
        hop_s=0.5,
    )
    pre = Preprocessor(spec, {"GSR": 16.0}, LABELS)
    delays = pre.delays_s()
    x = slow_gsr(np.arange(30 * 16) / 16)
    feats = dict(preprocess_recording(spec, {"GSR": x}, {"GSR": 16.0}, LABELS))[30.0]
    assert feats["up"].shape == (320, 1) and feats["down"].shape == (80, 1)
    # going up, the newest output is at the newest input's instant (29.9375 s), one 32 Hz sample
    # before a 32 Hz device's newest: the one between needs the next input (docs/resampling.md)
    t_up = (np.arange(320) + 639) / 32 - delays["up"]["GSR"]
    np.testing.assert_allclose(feats["up"], slow_gsr(t_up), atol=2e-3)
    t_down = (np.arange(80) + 160) / 8 - delays["down"]["GSR"]
    # the Butterworth's delay at 1.2 Hz is not quite its delay at 0 Hz: 1e-2 µS
    np.testing.assert_allclose(feats["down"], slow_gsr(t_down), atol=1e-2)


def slow_gsr(t: np.ndarray) -> np.ndarray:
    return gsr(t) - 0.05 * np.sin(2 * np.pi * 20.0 * t)[:, None]


# -- offline equals online -----------------------------------------------------------------------


def _online(
    spec: PreprocessSpec,
    rates: dict[str, float],
    seconds: float,
    t0: float,
    seed: int,
) -> tuple[dict[float, dict[str, np.ndarray]], WindowFeeder, Windower]:
    """Stream the signals, stamped from t0, into ring buffers in random chunks; poll in between."""
    feeder, wspec = WindowFeeder.for_spec(spec, rates, LABELS)
    streams = {s: fn(np.arange(round(seconds * r)) / r) for s, r, fn in _fns(rates)}
    sources = {
        s: SimpleNamespace(
            buffer=RingBuffer(8192, x.shape[1]), stream=SimpleNamespace(nominal_srate=rates[s])
        )
        for s, x in streams.items()
    }
    windower = Windower(wspec, sources.get)
    rng = np.random.default_rng(seed)
    out: dict[float, dict[str, np.ndarray]] = {}
    done = dict.fromkeys(streams, 0)
    for now in np.arange(0.0, seconds + 0.05, 0.05):
        for s, x in streams.items():  # each stream its own, irregular chunks
            upto = min(len(x), round(now * rates[s]) + int(rng.integers(0, 3)))
            k = done[s]
            if upto > k:
                sources[s].buffer.write(x[k:upto], t0 + np.arange(k, upto) / rates[s])
                done[s] = upto
        for w in windower.poll():
            feats = feeder.feed(w)
            if feats is not None:
                out[round(w.t_end - t0, 6)] = feats
    return out, feeder, windower


def _fns(rates: dict[str, float]) -> list[tuple[str, float, Signal]]:
    fn = {"EEG": eeg, "GSR": gsr}
    return [(s, r, fn[s]) for s, r in rates.items()]


CHAIN = PreprocessSpec(
    (
        EEG_DE,
        FeatureInput(
            "eda",
            FeatureKind.RAW,
            EDA.channels,
            16.0,
            10.0,
            filters=(FilterSpec("lowpass", (1.0,), 2),),
        ),
    ),
    hop_s=0.5,
)


def test_offline_equals_online_at_non_integer_ratios() -> None:
    """250 → 128 Hz and 51.2 → 16 Hz (a 0.5 s hop is 25.6 samples there): training's whole
    recording and serving's windows over ring buffers give the same features, to float rounding.
    The stamps start on the hop grid (5000 s is a whole number of samples at both rates), as the
    recording starts at t = 0 offline."""
    rates = {"EEG": 250.0, "GSR": 51.2}
    offline = {
        round(t, 6): f for t, f in preprocess_recording(CHAIN, _sampled(rates, 30.0), rates, LABELS)
    }
    online, feeder, windower = _online(CHAIN, rates, 30.0, t0=5000.0, seed=1)
    assert feeder.resets == 0 and windower.skipped == {}
    common = sorted(set(offline) & set(online))
    assert len(common) >= len(offline) - 1 and len(offline) == 41
    for t in common:
        for name, value in offline[t].items():
            np.testing.assert_allclose(
                online[t][name], value, rtol=1e-9, atol=1e-9, err_msg=f"{name} at {t} s"
            )


def test_online_off_the_hop_grid_loses_and_repeats_no_sample() -> None:
    """Stamps that fall anywhere between hop instants: each hop holds 25 or 26 new 51.2 Hz
    samples depending on the phase; the feeder finds which (no reset), so the state after each
    window is the state of one batch call on every sample from the first window's start to the
    window's end."""
    rates = {"EEG": 250.0, "GSR": 51.2}
    t0, seconds = 5000.0137, 30.0
    online, feeder, windower = _online(CHAIN, rates, seconds, t0=t0, seed=3)
    assert feeder.resets == 0 and windower.skipped == {}
    assert len(online) == 40  # every hop from the first full window on
    streams = _sampled(rates, seconds)
    first_start = min(online) - 10.0  # relative to t0, as the keys
    for t_end in sorted(online)[::7]:
        ref = Preprocessor(CHAIN, rates, LABELS)
        ref.push(
            {
                s: x[np.ceil((first_start * r) - 1e-6).astype(int) : int(np.ceil(t_end * r - 1e-6))]
                for s, (x, r) in {s: (streams[s], rates[s]) for s in streams}.items()
            }
        )
        for name, value in ref.features().items():
            np.testing.assert_allclose(online[t_end][name], value, rtol=1e-9, atol=1e-9)


# -- re-planning ---------------------------------------------------------------------------------


def test_a_stream_back_at_another_rate_is_replanned_counted_and_reported() -> None:
    spec = PreprocessSpec((EDA,), hop_s=0.5)
    feeder, wspec = WindowFeeder.for_spec(spec, {"GSR": 50.0}, LABELS)
    assert [(i.type, i.srate) for i in wspec.inputs] == [("GSR", 50.0)]
    assert not feeder.needs_replan({"GSR": 50.0})
    assert feeder.needs_replan({"GSR": 51.2})
    wspec = feeder.replan({"GSR": 51.2})
    assert [(i.type, i.srate) for i in wspec.inputs] == [("GSR", 51.2)]
    assert (feeder.replans, feeder.last_replan, feeder.last_end) == (1, "GSR 50 → 51.2 Hz", None)
    assert isinstance(feeder.pre._states[0].decimators["GSR"], Resampler)
    assert feeder.pre._states[0].decimators["GSR"].up == 5
    assert not feeder.needs_replan({"GSR": 51.2})
    # a rate the plan does not depend on: 4 Hz and 2 Hz EDA are both interpolated to 16 Hz
    feeder.replan({"GSR": 4.0})
    assert feeder.plan == {"GSR": 16.0} and not feeder.needs_replan({"GSR": 2.0})
    # a rate that cannot be: refused with the reason, nothing changed
    assert feeder.needs_replan({"GSR": float("nan")})
    with pytest.raises(ValueError, match="finite"):
        feeder.replan({"GSR": float("nan")})
    assert feeder.replans == 2 and feeder.plan == {"GSR": 16.0}


def test_replanned_feeder_serves_the_new_rate() -> None:
    spec = PreprocessSpec((EDA,), hop_s=0.5)
    online_50, _, _ = _online(spec, {"GSR": 50.0}, 15.0, t0=100.0, seed=4)
    feeder, _ = WindowFeeder.for_spec(spec, {"GSR": 50.0}, LABELS)
    feeder.replan({"GSR": 51.2})
    x = gsr(np.arange(round(15 * 51.2)) / 51.2)
    from affectstream.streaming.ingest.windows import Window

    n = round(10 * 51.2)
    feats = feeder.feed(Window(0.0, 10.0, {"GSR": x[:n]}))
    assert feats is not None and feats["eda"].shape == (160, 1)
    assert len(online_50) == 11
