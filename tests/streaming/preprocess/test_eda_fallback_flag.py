"""The online cvxEDA's fallback reaches the caller of the :class:`Preprocessor`: a window whose
tonic/phasic come from the flat fallback (flat segment, both solvers failing) is named by
``Preprocessor.fallbacks()``, and the flag clears once a segment solves again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss

import affectstream.streaming.preprocess.cvxeda.ipm as ipm_module
import affectstream.streaming.preprocess.eda as eda_module
from affectstream.streaming.preprocess.pipeline import Preprocessor, hop_bounds
from affectstream.streaming.preprocess.spec import (
    ChannelRef,
    FeatureInput,
    FeatureKind,
    PreprocessSpec,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "neurokit_eventrelated_eda_100hz.csv"
FS, HOP, WINDOW = 16.0, 0.25, 10.0
EDA = FeatureInput("eda", FeatureKind.EDA_CVX3, (ChannelRef("GSR", "GSR"),), FS, WINDOW)
PPG = FeatureInput("bvp", FeatureKind.RAW, (ChannelRef("PPG", "PPG"),), 32.0, WINDOW)
LABELS = {"GSR": ("GSR",), "PPG": ("PPG",)}
RATES = {"GSR": FS, "PPG": 32.0}


def real_eda(seconds: float) -> np.ndarray:
    """Real skin conductance (µS), 100 Hz → 16 Hz."""
    eda = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=0)
    return ss.resample_poly(eda, 4, 25, padtype="line")[: round(seconds * FS)]


def push_all(pre: Preprocessor, streams: dict[str, np.ndarray], rates: dict[str, float]) -> None:
    """Push whole recordings hop by hop, as training and serving do."""
    n_hops = min(round(len(x) / (HOP * rates[s])) for s, x in streams.items())
    for k in range(n_hops):
        pre.push(
            {
                s: x[hop_bounds(k, HOP, rates[s]) : hop_bounds(k + 1, HOP, rates[s]), None]
                for s, x in streams.items()
            }
        )


def test_flat_segment_raises_the_flag_and_a_real_one_clears_it() -> None:
    pre = Preprocessor(PreprocessSpec((EDA,), HOP), RATES, LABELS)
    push_all(pre, {"GSR": np.full(round(WINDOW * FS), 7.5)}, RATES)  # a detached sensor
    assert pre.ready
    flags = pre.fallbacks()
    assert list(flags) == ["eda"] and flags["eda"].startswith("flat-segment")
    x = pre.features()["eda"]  # what the model would get: [origin, tonic, phasic]
    np.testing.assert_array_equal(x[1], x[0])
    assert not x[2].any()

    push_all(pre, {"GSR": real_eda(WINDOW)}, RATES)  # the segment is real signal again
    assert pre.fallbacks() == {}


def test_solver_failure_raises_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_convergence(
        self: ipm_module.BandedIpm, y: np.ndarray, start: ipm_module.IpmState
    ) -> ipm_module.IpmResult:
        return ipm_module.IpmResult(start, 0, False, "schur")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("Rank(A) < p or Rank([P; A; G]) < n")

    spec = PreprocessSpec((EDA, PPG), HOP)
    pre = Preprocessor(spec, RATES, LABELS)
    y = real_eda(WINDOW)
    ppg = np.sin(np.arange(round(WINDOW * 32.0)) * 2 * np.pi * 1.2 / 32.0)
    push_all(pre, {"GSR": y[: -round(HOP * FS)], "PPG": ppg[: -round(HOP * 32.0)]}, RATES)
    assert not pre.ready and pre.fallbacks() == {}  # solved while filling: no flag

    monkeypatch.setattr(ipm_module.BandedIpm, "solve", no_convergence)
    monkeypatch.setattr(eda_module, "solve_cvxopt", broken)
    pre.push({"GSR": y[-round(HOP * FS) :, None], "PPG": ppg[-round(HOP * 32.0) :, None]})
    assert pre.ready
    flags = pre.fallbacks()
    assert list(flags) == ["eda"]  # the raw PPG input has no fallback
    assert flags["eda"].startswith("solver-failed") and "tonic = signal" in flags["eda"]
    np.testing.assert_array_equal(pre.features()["eda"][1], y)

    monkeypatch.undo()
    pre.push({"GSR": y[-round(HOP * FS) :, None], "PPG": ppg[-round(HOP * 32.0) :, None]})
    assert pre.fallbacks() == {}


def test_reset_clears_the_flag() -> None:
    pre = Preprocessor(PreprocessSpec((EDA,), HOP), RATES, LABELS)
    push_all(pre, {"GSR": np.full(round(WINDOW * FS), 7.5)}, RATES)
    assert pre.fallbacks()
    pre.reset()
    assert pre.fallbacks() == {}
