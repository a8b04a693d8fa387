"""One preprocessing path: a synthetic DEAP trial preprocessed whole (training) and streamed
through ring buffers and sliding windows (serving) gives the same features."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from affectstream.streaming.formats.deap import CHANNELS, SFREQ
from affectstream.streaming.ingest.ring_buffer import RingBuffer
from affectstream.streaming.ingest.windows import Windower
from affectstream.streaming.preprocess.pipeline import (
    WindowFeeder,
    preprocess_recording,
    source_rate_plan,
)
from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    FilterSpec,
    PreprocessSpec,
)
from affectstream.streaming.replay.deap import REPLAY_STREAMS, deap_trial_streams
from affectstream.streaming.synthetic.deap import generate_subject

LABELS = {s.type: tuple(CHANNELS[i].name for i in s.channels) for s in REPLAY_STREAMS}
RATES = {s.type: SFREQ for s in REPLAY_STREAMS}
PERIPH = (
    ChannelRef("AUX", "hEOG"),
    ChannelRef("AUX", "vEOG"),
    ChannelRef("AUX", "zEMG"),
    ChannelRef("AUX", "tEMG"),
    ChannelRef("GSR", "GSR"),
    ChannelRef("RESP", "Respiration"),
    ChannelRef("PPG", "Plethysmograph"),
    ChannelRef("AUX", "Temperature"),
)
EEG = tuple(ChannelRef("EEG", name) for name in LABELS["EEG"])

SPEC = PreprocessSpec(
    inputs=(
        FeatureInput(
            "eeg_de",
            FeatureKind.EEG_DE,
            EEG,
            128.0,
            10.0,
            filters=(FilterSpec("bandpass", (4.0, 45.0)),),
        ),
        FeatureInput("periph", FeatureKind.PERIPH_STATS, PERIPH, 128.0, 10.0),
        FeatureInput(
            "grid",
            FeatureKind.EEG_GRID,
            EEG,
            128.0,
            1.0,
            filters=(FilterSpec("highpass", (1.0,), 2),),
        ),
        FeatureInput(
            "eda16",
            FeatureKind.RAW,
            (ChannelRef("GSR", "GSR"),),
            16.0,
            10.0,
            filters=(FilterSpec("lowpass", (1.0,), 2),),
        ),
        FeatureInput("periph_cal", FeatureKind.RAW, PERIPH[4:7], 128.0, 2.0, baseline_s=3.0),
    ),
    hop_s=0.5,
)


@pytest.fixture(scope="module")
def trial() -> dict[str, np.ndarray]:
    data, _ = generate_subject(1, n_trials=1, seed=3)
    return deap_trial_streams(data[0])


def _online(
    trial: dict[str, np.ndarray], seed: int, t0: float = 5000.0, tails: bool = False
) -> dict[float, dict[str, np.ndarray]]:
    """Stream the trial into ring buffers in random chunks, polling the windower in between
    (with ``tails``, as the service does: windows after the first cut as their last hop only)."""
    feeder, wspec = WindowFeeder.for_spec(SPEC, RATES, LABELS)
    sources = {
        kind: SimpleNamespace(
            buffer=RingBuffer(4096, x.shape[1]), stream=SimpleNamespace(nominal_srate=RATES[kind])
        )
        for kind, x in trial.items()
        if kind in SPEC.streams
    }
    windower = Windower(wspec, sources.get, tails=tails)
    rng = np.random.default_rng(seed)
    n = len(trial["EEG"])
    ts = t0 + np.arange(n) / SFREQ
    out: dict[float, dict[str, np.ndarray]] = {}
    k = 0
    while k < n:
        step = int(rng.integers(1, 40))
        for kind, src in sources.items():  # streams arrive in their own chunks
            src.buffer.write(trial[kind][k : k + step], ts[k : k + step])
        k += step
        for w in windower.poll():
            feats = feeder.feed(w)
            if feats is not None:
                out[round(w.t_end - t0, 6)] = feats
    assert feeder.resets == 0 and windower.skipped == {}
    assert (windower.tails_cut >= len(out) - 1) if tails else windower.tails_cut == 0
    return out


def test_source_rate_plan() -> None:
    plan = source_rate_plan(SPEC, RATES)
    assert plan == dict.fromkeys(("EEG", "AUX", "GSR", "RESP", "PPG"), 128.0)
    # 128 → 48 Hz is no whole factor: once refused, now delivered at 128 Hz and resampled by 3/8
    # (docs/resampling.md; tests/streaming/preprocess/test_resample_pipeline.py)
    other = PreprocessSpec(
        (FeatureInput("x", FeatureKind.RAW, (ChannelRef("GSR", "GSR"),), 48.0, 1.0),), hop_s=0.5
    )
    assert source_rate_plan(other, RATES) == {"GSR": 128.0}


@pytest.mark.parametrize("tails", [False, True])
def test_offline_equals_online_on_a_synthetic_trial(
    trial: dict[str, np.ndarray], tails: bool
) -> None:
    offline = {round(t, 6): f for t, f in preprocess_recording(SPEC, trial, RATES, LABELS)}
    online = _online(trial, seed=1, tails=tails)
    # windows end every 0.5 s from 10 s (first full window) to the trial's last sample
    assert len(offline) == (63 - 10) * 2 + 1
    common = sorted(set(offline) & set(online))
    assert len(common) >= len(offline) - 1  # the very last hop may not be due online yet
    for t in common:
        for name, value in offline[t].items():
            # tolerance: float rounding only (the same operations in another chunking)
            np.testing.assert_allclose(
                online[t][name], value, rtol=1e-9, atol=1e-9, err_msg=f"{name} at {t} s"
            )
    shapes = {k: v.shape for k, v in offline[10.0].items()}
    assert shapes == {
        "eeg_de": (5, 128),
        "periph": (5, 48),
        "grid": (128, 9, 9),
        "eda16": (160, 1),
        "periph_cal": (256, 3),
    }


def test_calibration_period_standardises_later_samples(trial: dict[str, np.ndarray]) -> None:
    inp = FeatureInput(
        "gsr", FeatureKind.RAW, (ChannelRef("GSR", "GSR"),), 128.0, 2.0, baseline_s=3.0
    )
    spec = PreprocessSpec((inp,), hop_s=0.5)
    windows = dict(preprocess_recording(spec, trial, RATES, LABELS))
    assert min(windows) == 5.0  # 3 s calibration + a 2 s window: never includes the baseline
    gsr = trial["GSR"][:, 0]
    base = gsr[:384]
    expected = (gsr[384:640] - base.mean()) / base.std()
    np.testing.assert_allclose(windows[5.0]["gsr"][:, 0], expected, rtol=1e-12)


def test_two_online_chunkings_agree(trial: dict[str, np.ndarray]) -> None:
    a, b = _online(trial, seed=2), _online(trial, seed=3, t0=7000.0)
    for t in sorted(set(a) & set(b))[::10]:
        for name in a[t]:
            np.testing.assert_allclose(a[t][name], b[t][name], rtol=1e-9, atol=1e-9)


def test_a_gap_resets_the_state(trial: dict[str, np.ndarray]) -> None:
    feeder, _ = WindowFeeder.for_spec(SPEC, RATES, LABELS)
    from affectstream.streaming.ingest.windows import Window

    n = round(SPEC.window_s * 128)
    data = {k: trial[k][:n] for k in SPEC.streams}
    assert feeder.feed(Window(0.0, 10.0, data)) is not None
    assert feeder.feed(Window(5.0, 15.0, data)) is not None  # not one hop later: reset
    assert feeder.resets == 1


@pytest.mark.slow
def test_cvxeda_input_offline_equals_online(trial: dict[str, np.ndarray]) -> None:
    """RTCAN-1D's input: online cvxEDA of the trailing 20 s at 16 Hz. Offline and online reach
    the same QP optimum from different warm-start histories (the online path starts with a whole
    window, the offline one hop by hop): equal to the solver's tolerance (1e-4 of the range)."""
    spec = PreprocessSpec(
        (FeatureInput("eda", FeatureKind.EDA_CVX3, (ChannelRef("GSR", "GSR"),), 16.0, 20.0),),
        hop_s=0.5,
    )
    offline = {round(t, 6): f["eda"] for t, f in preprocess_recording(spec, trial, RATES, LABELS)}
    feeder, wspec = WindowFeeder.for_spec(spec, RATES, LABELS)
    gsr = trial["GSR"]
    rb = RingBuffer(4096, 1)
    src = SimpleNamespace(buffer=rb, stream=SimpleNamespace(nominal_srate=128.0))
    windower = Windower(wspec, {"GSR": src}.get)
    t0, compared = 9000.0, 0
    for k in range(0, len(gsr), 37):
        rb.write(gsr[k : k + 37], t0 + np.arange(k, min(k + 37, len(gsr))) / 128.0)
        for w in windower.poll():
            out = feeder.feed(w)
            t = round(w.t_end - t0, 6)
            if out is not None and t in offline and t % 5 == 0:
                x, ref = out["eda"], offline[t]
                assert x.shape == ref.shape == (3, 320)
                span = np.ptp(ref[0])
                np.testing.assert_allclose(x, ref, rtol=0, atol=1e-4 * span, err_msg=str(t))
                compared += 1
    assert compared >= 8
