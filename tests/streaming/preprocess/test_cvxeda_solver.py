"""The cvxEDA solver family's structure: one parameter object, and one iteration whose
numpy/LAPACK kernels and loop twins (what numba compiles) are the same algorithm."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.signal as ss

from affectstream.streaming.preprocess.cvxeda import ipm
from affectstream.streaming.preprocess.cvxeda.model import (
    CvxEdaModel,
    lower_toeplitz_apply,
    lower_toeplitz_apply_t,
)
from affectstream.streaming.preprocess.cvxeda.params import CvxEdaParams
from affectstream.streaming.preprocess.eda import OnlineCvxEda, cvxeda

DATA = Path(__file__).resolve().parents[2] / "data" / "neurokit_eventrelated_eda_100hz.csv"


def zscored_segment(start: int, n: int) -> np.ndarray:
    eda = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=0)
    y = ss.resample_poly(eda, 4, 25, padtype="line")[start : start + n]  # 100 → 16 Hz
    return np.asarray((y - y.mean()) / y.std())


def test_params_defaults_and_validation() -> None:
    p = CvxEdaParams()
    assert (p.tau0, p.tau1, p.delta_knot, p.alpha, p.gamma) == (2.0, 0.7, 10.0, 8e-4, 1e-2)
    assert p.replace(max_iter=40.0).max_iter == 40  # feature options arrive as floats
    with pytest.raises(ValueError, match="time constants"):
        CvxEdaParams(tau0=1.0, tau1=1.0)
    with pytest.raises(ValueError, match="gamma"):
        p.replace(gamma=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        p.replace(max_iter=2.5)
    with pytest.raises(TypeError):
        p.replace(beta=1.0)


def test_entry_points_take_the_parameter_object_or_overrides() -> None:
    params = CvxEdaParams(alpha=1e-3)
    assert OnlineCvxEda(16, 10, params=params).params == params
    assert OnlineCvxEda(16, 10, alpha=1e-3).params == params
    assert OnlineCvxEda(16, 10, params=params, gamma=0.1).params == params.replace(gamma=0.1)
    y = zscored_segment(0, 160)
    a, b = cvxeda(y, 16, params), cvxeda(y, 16, alpha=1e-3)
    np.testing.assert_array_equal(a.tonic, b.tonic)
    with pytest.raises(TypeError):
        OnlineCvxEda(16, 10, beta=1.0)


def test_toeplitz_twins() -> None:
    rng = np.random.default_rng(1)
    taps, x = rng.normal(size=3), rng.normal(size=50)
    np.testing.assert_allclose(ipm.toeplitz_apply_loops(taps, x), lower_toeplitz_apply(taps, x))
    np.testing.assert_allclose(ipm.toeplitz_apply_t_loops(taps, x), lower_toeplitz_apply_t(taps, x))


def test_iteration_with_the_loop_twins_is_the_same_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The iteration run from Python with every kernel swapped for the twin numba compiles:
    same iteration counts (cold and warm start), same solution to rounding. This checks the
    twins without numba; the compiled run is compared in test_eda_online.py."""
    n = 160
    solver = ipm.BandedIpm(CvxEdaModel.build(n, 16.0, CvxEdaParams()))
    y0, y1 = zscored_segment(0, n), zscored_segment(4, n)

    def run() -> tuple[ipm.IpmResult, ipm.IpmResult]:
        cold = solver.solve(y0, solver.cold_start(y0))
        warm = solver.solve(y1, solver.warm_start(y1, cold.state, 4, 1.0))
        return cold, warm

    numpy_run = run()
    calls: list[str] = []

    def counted(twin: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append(twin.__name__)
            return twin(*args)

        return call

    for plain, twin in ipm.COMPILED_AS.items():
        monkeypatch.setattr(ipm, plain.__name__, counted(twin))
    loops_run = run()
    assert set(calls) == {twin.__name__ for twin in ipm.COMPILED_AS.values()}
    for a, b in zip(numpy_run, loops_run, strict=True):
        assert a.converged and b.converged
        assert a.iterations == b.iterations
        np.testing.assert_allclose(
            b.state.q, a.state.q, rtol=0, atol=1e-9 * np.abs(a.state.q).max()
        )
        np.testing.assert_allclose(
            b.state.w, a.state.w, rtol=0, atol=1e-9 * np.abs(a.state.w).max()
        )


def test_failed_factorisation_ends_the_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    def indefinite(*args: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        return ipm.SCHUR, args[4], args[5], args[6]

    solver = ipm.BandedIpm(CvxEdaModel.build(64, 16.0, CvxEdaParams()))
    y = zscored_segment(0, 64)
    monkeypatch.setattr(ipm, "factorise", indefinite)
    result = solver.solve(y, solver.cold_start(y))
    assert not result.converged and result.reason == "schur" and result.iterations == 0
