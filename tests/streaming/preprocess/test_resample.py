"""The streaming rational resampler: any chunking equals one batch call, the filter does what
docs/resampling.md says (stopband, passband, delay), and the ratios are the expected fractions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from affectstream.streaming.preprocess.resample import Resampler, rational_ratio, resample

# the ratios, plus an upsampling one (mixed-rate streams are brought up by the same class)
RATIOS = [
    (256.0, 128.0),
    (500.0, 128.0),
    (51.2, 16.0),
    (50.0, 16.0),
    (512.0, 128.0),
    (250.0, 128.0),
    (64.0, 32.0),
    (4.0, 16.0),
]


def _signal(n: int, ch: int = 3, seed: int = 0) -> np.ndarray:
    """A random walk on a large DC level plus white noise: every frequency, a non-zero mean."""
    rng = np.random.default_rng(seed)
    return 10.0 + np.cumsum(rng.normal(size=(n, ch)), axis=0) * 0.1 + rng.normal(size=(n, ch))


def _chunks(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    bounds = sorted({0, len(x), *(c % (len(x) + 1) for c in cuts)})
    return [x[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=120, deadline=None)
@given(
    rates=st.sampled_from(RATIOS),
    cuts=st.lists(st.integers(0, 5000), max_size=40),
    seconds=st.floats(1.0, 12.0),
)
def test_any_chunking_equals_one_batch_call(
    rates: tuple[float, float], cuts: list[int], seconds: float
) -> None:
    rate_in, rate_out = rates
    x = _signal(max(1, round(seconds * rate_in)))
    batch = resample(x, rate_in, rate_out)
    r = Resampler(rate_in, rate_out)
    chunked = np.concatenate([r.process(c) for c in _chunks(x, cuts)])
    assert len(batch) == len(chunked) == r.n_outputs(len(x))
    # float rounding only: each output is the same sum of products, whatever the chunking
    np.testing.assert_allclose(chunked, batch, rtol=1e-12, atol=1e-12 * np.abs(x).max())


@pytest.mark.parametrize(("rate_in", "rate_out"), RATIOS)
def test_equals_the_textbook_upsample_filter_downsample(rate_in: float, rate_out: float) -> None:
    """Polyphase = zero-stuff by L, filter with the taps, keep every M-th (history: the first
    sample repeated)."""
    x = _signal(700, 2)
    r = Resampler(rate_in, rate_out)
    L, M, T = r.up, r.down, r.taps_per_output
    padded = np.concatenate([np.repeat(x[:1], T, axis=0), x])
    stuffed = np.zeros((len(padded) * L, 2))
    stuffed[::L] = padded
    expected = signal.lfilter(r.taps, 1.0, stuffed, axis=0)[T * L :: M][: r.n_outputs(len(x))]
    np.testing.assert_allclose(r.process(x), expected, rtol=0, atol=1e-11)


def test_ratios_are_the_exact_fractions() -> None:
    assert rational_ratio(256.0, 128.0) == (1, 2)
    assert rational_ratio(500.0, 128.0) == (32, 125)
    assert rational_ratio(51.2, 16.0) == (5, 16)
    assert rational_ratio(50.0, 16.0) == (8, 25)
    assert rational_ratio(250.0, 128.0) == (64, 125)
    assert rational_ratio(4.0, 16.0) == (4, 1)
    # 128 / 127.98 = 6400/6399 is beyond the bound: the closest fraction (1/1), its rate error
    # reported (the model then sees the signal 0.016 % fast; no drift, outputs follow inputs)
    r = Resampler(127.98, 128.0)
    assert (r.up, r.down) == (1, 1) and r.rate_error == pytest.approx(-1.5625e-4, rel=1e-6)
    assert rational_ratio(127.98, 128.0, max_denominator=10_000) == (6400, 6399)
    with pytest.raises(ValueError, match="finite and > 0"):
        rational_ratio(0.0, 16.0)


def test_output_count_follows_the_span_covered() -> None:
    """After N inputs: floor((N-1) L / M) + 1 outputs — so a 0.5 s hop of 51.2 Hz input (25 or
    26 samples, starting on the hop grid) always yields 8 outputs at 16 Hz."""
    r = Resampler(51.2, 16.0)
    x = _signal(512, 1)
    bounds = [int(np.ceil(k * 25.6 - 1e-9)) for k in range(21)]
    counts = [len(r.process(x[a:b])) for a, b in itertools.pairwise(bounds)]
    assert counts == [8] * 20
    assert [r.n_outputs(n) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]  # output 1 at input 3.2


def _tone_fit(y: np.ndarray, fs: float, f: float) -> tuple[float, float, float]:
    """Least-squares amplitude and phase of a sine at f, and the RMS of what is left."""
    t = np.arange(len(y)) / fs
    basis = np.column_stack([np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)])
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    rest = y - basis @ coef
    return float(np.hypot(*coef)), float(np.arctan2(-coef[1], coef[0])), float(rest.std())


@pytest.mark.parametrize(("rate_in", "rate_out"), [r for r in RATIOS if r[0] > r[1]])
def test_a_tone_above_the_output_nyquist_is_removed(rate_in: float, rate_out: float) -> None:
    """Designed: ≥ 60 dB from the output Nyquist up (Kaiser estimate; measured ≥ 59.3 dB), so
    nothing folds back with more than -58 dB anywhere."""
    n = round(40 * rate_in)
    t = np.arange(n) / rate_in
    worst = 0.0
    for f in np.linspace(rate_out / 2, rate_in / 2, 23)[:-1]:
        y = resample(np.sin(2 * np.pi * f * t), rate_in, rate_out)
        worst = max(worst, np.abs(y[len(y) // 4 :]).max())  # after the start-up
    assert 20 * np.log10(worst) < -58


@pytest.mark.parametrize(("rate_in", "rate_out"), RATIOS)
def test_a_passband_tone_passes_unchanged_and_delayed_by_delay_s(
    rate_in: float, rate_out: float
) -> None:
    """Ripple ±0.009 dB designed (< 0.1 dB asked); the right frequency (nothing left beside the
    fitted sine); the phase is the one of a pure delay of ``delay_s``."""
    r = Resampler(rate_in, rate_out)
    n = round(60 * rate_in)
    t = np.arange(n) / rate_in
    for frac in (0.05, 0.3, 0.6, 0.78):
        f = frac * min(rate_in, rate_out) / 2
        r.reset()
        y = r.process(np.sin(2 * np.pi * f * t))
        steady = y[len(y) // 4 :]
        t0 = (len(y) - len(steady)) / r.rate_out_actual
        amp, phase, rest = _tone_fit(steady, r.rate_out_actual, f)
        assert abs(20 * np.log10(amp)) < 0.02, f
        assert rest < 1e-3, f
        expected = -2 * np.pi * f * (r.delay_s - t0) - np.pi / 2  # sin(2πf(t - delay))
        assert abs(np.angle(np.exp(1j * (phase - expected)))) < 1e-3, f


def test_design_figures() -> None:
    r = Resampler(51.2, 16.0)
    assert (r.passband_hz, r.stopband_hz) == pytest.approx((6.4, 8.0))
    assert r.numtaps % 2 == 1
    assert r.delay_s == pytest.approx((r.numtaps - 1) / 2 / (5 * 51.2))
    assert 17 < r.delay_out_samples < 19  # docs/resampling.md: ≈ 18 output samples
    assert r.taps_per_output == -(-r.numtaps // 5)


def test_a_constant_level_starts_without_a_transient() -> None:
    y = Resampler(50.0, 16.0).process(np.full((500, 2), 12.5))
    np.testing.assert_allclose(y, 12.5, rtol=1e-3)  # each phase's gain is 1 within the ripple


def test_shapes_empty_chunks_and_reset() -> None:
    r = Resampler(500.0, 128.0)
    assert r.process(np.empty((0, 4))).shape == (0, 4)
    x = _signal(1000, 4)
    first = r.process(x)
    assert first.shape == (r.n_outputs(1000), 4)
    assert r.process(np.empty((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match="channels"):
        r.process(np.zeros((3, 2)))
    r.reset()
    np.testing.assert_array_equal(r.process(x), first)
    one = Resampler(500.0, 128.0).process(x[:, 0])
    np.testing.assert_allclose(one, first[:, 0], rtol=1e-13)
