"""EEG and peripheral features, and the rates on real recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectstream.streaming.formats.deap import EEG_NAMES
from affectstream.streaming.preprocess.eeg import (
    DE_BANDS,
    Standardizer,
    deap_baseline_correct,
    eeg_band_de,
    eeg_grid,
)
from affectstream.streaming.preprocess.montage import GRID_POSITIONS
from affectstream.streaming.preprocess.peripheral import breathing_rate, periph_stats, pulse_rate

DATA = Path(__file__).resolve().parents[2] / "data"


def test_de_is_half_log_of_band_power_for_a_tone() -> None:
    fs, t = 128.0, np.arange(512) / 128.0
    amp = 3.0
    x = np.column_stack([amp * np.sin(2 * np.pi * 10.0 * t), np.zeros(512) + 1e-9])
    de = eeg_band_de(x, fs)  # 2 steps × (4 bands × 2 channels)
    assert de.shape == (2, 8)
    bands = list(DE_BANDS)
    alpha_ch0 = de[:, bands.index("alpha") * 2 + 0]
    # a sine of amplitude A has power A²/2: DE = ½ ln(2πe A²/2), up to the Hann leakage (~1 %)
    np.testing.assert_allclose(alpha_ch0, 0.5 * np.log(2 * np.pi * np.e * amp**2 / 2), atol=0.02)
    others = [de[:, bands.index(b) * 2] for b in bands if b != "alpha"]
    assert all((o < alpha_ch0 - 3).all() for o in others)


def test_de_shape_and_errors() -> None:
    x = np.random.default_rng(0).normal(size=(128 * 10, 32))
    assert eeg_band_de(x, 128.0).shape == (5, 128)
    with pytest.raises(ValueError, match="whole number of 2 s steps"):
        eeg_band_de(x[:300], 128.0)


def test_grid_places_every_channel_once() -> None:
    x = np.arange(1, 33, dtype=float)[None, :]
    g = eeg_grid(x, EEG_NAMES)
    assert g.shape == (1, 9, 9)
    assert np.count_nonzero(g) == 32 and sorted(g[g != 0].tolist()) == list(range(1, 33))
    assert g[0, 0, 3] == 1.0 and g[0, 0, 5] == 17.0 and g[0, 8, 4] == 15.0  # Fp1, Fp2, Oz
    assert set(GRID_POSITIONS) == set(EEG_NAMES)


def test_deap_baseline_correction_removes_the_baseline_pattern() -> None:
    fs = 128
    pattern = np.sin(np.linspace(0, 2 * np.pi, fs))[:, None]
    trial = np.tile(pattern, (63, 2)) + 5.0
    out = deap_baseline_correct(trial, fs)
    assert out.shape == (60 * fs, 2)
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


def test_standardizer() -> None:
    x = np.random.default_rng(1).normal(3, 2, size=(1000, 4))
    z = Standardizer.fit(x).transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-12)


def test_periph_stats() -> None:
    x = np.arange(512, dtype=float).reshape(256, 2)
    s = periph_stats(x, 128.0, step_s=1.0)  # 2 steps × 6 stats × 2 channels
    assert s.shape == (2, 12)
    step0 = x[:128]
    expected = [
        step0.max(0),
        step0.min(0),
        step0.mean(0),
        step0.std(0),
        step0.var(0),
        (step0**2).sum(0),
    ]
    np.testing.assert_allclose(s[0], np.concatenate(expected))


def test_pulse_and_breathing_rate_on_a_real_recording() -> None:
    """NeuroKit2's resting recording (MIT): pulse about 87 bpm, breathing 16-17 per minute."""
    data = np.loadtxt(DATA / "neurokit_resting_60s_100hz_ppg_rsp.csv", delimiter=",", skiprows=1)
    ppg, rsp = data[:, 0], data[:, 1]
    hr = pulse_rate(ppg, 100.0)
    br = breathing_rate(rsp, 100.0)
    assert hr is not None and 80 < hr < 95, hr
    assert br is not None and 14 < br < 19, br
    # a flat or too-short segment has no rate rather than a made-up one
    assert pulse_rate(np.zeros(3000), 100.0) is None
    assert breathing_rate(rsp[:500], 100.0) is None


@pytest.mark.parametrize(
    ("seconds", "fs", "band"),
    [(10, 128.0, (40, 210)), (30, 128.0, (6, 42)), (10, 64.0, (40, 210)), (30, 25.0, (6, 42))],
)
def test_dominant_rate_is_the_detrended_windowed_spectrum_peak(
    seconds: int, fs: float, band: tuple[int, int]
) -> None:
    """#16: the rate is computed with its per-length plan cached and the detrend in closed form;
    it must equal the textbook computation (scipy's detrend, a Hann window, |rfft|², the
    parabola) on any signal."""
    from scipy import signal

    from affectstream.streaming.preprocess.peripheral import dominant_rate

    lo, hi = band[0] / 60, band[1] / 60
    rng = np.random.default_rng(seconds + int(fs))
    t = np.arange(int(seconds * fs)) / fs
    for _ in range(5):
        f = rng.uniform(lo, hi)
        x = np.sin(2 * np.pi * f * t) + rng.normal(0, 0.5, len(t)) + rng.normal() * t + 3.0
        y = signal.detrend(x) * np.hanning(len(x))
        n_fft = max(len(x), int(8 * fs / lo))
        spec = np.abs(np.fft.rfft(y, n_fft)) ** 2
        freqs = np.fft.rfftfreq(n_fft, 1 / fs)
        sel = np.flatnonzero((freqs >= lo) & (freqs <= hi))
        k = sel[np.argmax(spec[sel])]
        a, b, c = np.log(spec[k - 1 : k + 2])
        expected = (freqs[k] + 0.5 * (a - c) / (a - 2 * b + c) * freqs[1]) * 60
        assert dominant_rate(x, fs, lo, hi) == pytest.approx(expected, rel=1e-9)
        assert abs(expected - f * 60) < 6  # and it finds the rhythm put in
