"""Stateful filters and decimation: any chunking equals one batch call."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from affectstream.streaming.preprocess.filters import (
    CausalFilter,
    Decimator,
    design_sos,
    is_compiled,
)
from affectstream.streaming.preprocess.spec import FilterSpec

SPECS = [
    FilterSpec("lowpass", (5.0,), 4),
    FilterSpec("highpass", (0.5,), 2),
    FilterSpec("bandpass", (4.0, 45.0), 4),
    FilterSpec("notch", (50.0,)),
]


def _signal(n: int = 1000, ch: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10.0 + np.cumsum(rng.normal(size=(n, ch)), axis=0) * 0.1 + rng.normal(size=(n, ch))


def _chunks(x: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    bounds = sorted({0, len(x), *(c % (len(x) + 1) for c in cuts)})
    return [x[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60, deadline=None)
@given(spec=st.sampled_from(SPECS), cuts=st.lists(st.integers(0, 1000), max_size=30))
def test_filter_any_chunking_equals_batch(spec: FilterSpec, cuts: list[int]) -> None:
    x = _signal()
    batch = CausalFilter.from_spec(spec, 128.0).process(x)
    f = CausalFilter.from_spec(spec, 128.0)
    chunked = np.concatenate([f.process(c) for c in _chunks(x, cuts)])
    np.testing.assert_allclose(chunked, batch, rtol=0, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(factor=st.sampled_from([1, 2, 4, 8]), cuts=st.lists(st.integers(0, 1000), max_size=30))
def test_decimator_any_chunking_equals_batch(factor: int, cuts: list[int]) -> None:
    x = _signal()
    batch = Decimator(factor, 128.0).process(x)
    d = Decimator(factor, 128.0)
    chunked = np.concatenate([d.process(c) for c in _chunks(x, cuts)])
    assert len(batch) == -(-len(x) // factor)
    np.testing.assert_allclose(chunked, batch, rtol=0, atol=1e-10)


def test_filter_matches_scipy_sosfilt_started_at_the_first_level() -> None:
    x = _signal(500, 1)[:, 0]
    sos = design_sos(FilterSpec("lowpass", (2.0,), 4), 32.0)
    expected, _ = signal.sosfilt(sos, x, zi=signal.sosfilt_zi(sos) * x[0])
    np.testing.assert_allclose(CausalFilter(sos).process(x), expected, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_compiled_kernel_equals_scipy_sosfilt_chunk_by_chunk(spec: FilterSpec) -> None:
    """The compiled recurrence (what serving runs) gives scipy's output and state, hop by hop,
    for 2-D and 1-D input, also from a non-contiguous view."""
    assert is_compiled(), "numba is a dependency: the filters must run compiled here"
    x = _signal(640, 32, seed=3)
    sos = design_sos(spec, 128.0)
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    f = CausalFilter(sos)
    for a in range(0, len(x), 32):
        expected, zi = signal.sosfilt(sos, x[a : a + 32], axis=0, zi=zi)
        np.testing.assert_allclose(f.process(x[a : a + 32]), expected, rtol=1e-12, atol=1e-12)
    strided = x[:, ::4]  # a column subset, as the pipeline's channel selection can give
    g = CausalFilter(sos)
    expected, _ = signal.sosfilt(
        sos, strided, axis=0, zi=signal.sosfilt_zi(sos)[:, :, None] * strided[0][None, None, :]
    )
    np.testing.assert_allclose(g.process(strided), expected, rtol=1e-12, atol=1e-12)
    one = CausalFilter(sos)
    expected, _ = signal.sosfilt(sos, x[:, 0], zi=signal.sosfilt_zi(sos) * x[0, 0])
    np.testing.assert_allclose(one.process(x[:, 0]), expected, rtol=1e-12, atol=1e-12)


def test_without_the_kernel_scipy_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path without numba (scipy's sosfilt on the shared, read-only design) gives what the
    kernel gives; more than two dimensions are refused."""
    from affectstream.streaming.preprocess import filters

    x = _signal(300, 4, seed=5)
    spec = FilterSpec("bandpass", (4.0, 45.0), 4)
    compiled = CausalFilter.from_spec(spec, 128.0).process(x)
    monkeypatch.setattr(filters, "_kernel", None)
    f = CausalFilter.from_spec(spec, 128.0)
    assert not f.sos.flags.writeable
    plain = np.concatenate([f.process(x[a : a + 32]) for a in range(0, 300, 32)])
    np.testing.assert_allclose(plain, compiled, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="n_samples, n_channels"):
        CausalFilter.from_spec(spec, 128.0).process(x.reshape(300, 2, 2))


def test_sos_shape_and_a0_checked() -> None:
    sos = design_sos(FilterSpec("lowpass", (5.0,), 4), 128.0)
    with pytest.raises(ValueError, match="n_sections, 6"):
        CausalFilter(sos[:, :5])
    bad = sos.copy()
    bad[0, 3] = 2.0
    with pytest.raises(ValueError, match="a0"):
        CausalFilter(bad)


def test_initialised_on_the_first_level_no_step_transient() -> None:
    x = np.full(200, 12.5)  # skin conductance with a large DC level
    y = CausalFilter.from_spec(FilterSpec("lowpass", (1.0,), 4), 32.0).process(x)
    np.testing.assert_allclose(y, 12.5, atol=1e-9)


def test_decimator_removes_what_would_alias() -> None:
    fs, t = 128.0, np.arange(2560) / 128.0
    tone = np.sin(2 * np.pi * 30.0 * t)  # 30 Hz would alias to 2 Hz at 16 Hz
    y = Decimator(8, fs).process(tone)
    assert np.abs(y[64:]).max() < 0.01
    slow = np.sin(2 * np.pi * 0.5 * t)
    assert np.abs(Decimator(8, fs).process(slow)[64:]).max() > 0.9


def test_bad_specs() -> None:
    with pytest.raises(ValueError, match="needs 2 frequency"):
        FilterSpec("bandpass", (4.0,))
    with pytest.raises(ValueError, match="below Nyquist"):
        design_sos(FilterSpec("lowpass", (70.0,)), 128.0)
    with pytest.raises(ValueError, match="unknown filter kind"):
        FilterSpec("comb", (1.0,))
