"""Structured interior-point solver for the cvxEDA QP (the fast path of ``OnlineCvxEda``).

The same QP as the cvxopt reference (``_cvxeda_cvxopt``), solved by Mehrotra's
predictor-corrector on the constraint ``s = A q ≥ 0`` with multiplier ``λ ≥ 0``. Each Newton
step solves

    [ MᵀM + Aᵀ D A   MᵀE          ] [Δq]   [a]
    [ EᵀM            EᵀE + ridge  ] [Δw] = [b],      D = diag(λ / s),

with a banded Cholesky ``K = MᵀM + AᵀDA = RᵀR`` (pentadiagonal, LAPACK ``dpbtrf``) and a Schur
complement for the ``m = 2 + n_knots`` tonic columns: ``V = R⁻ᵀ MᵀE`` (m triangular sweeps),
``S = EᵀE + ridge − VᵀV`` (m × m). Cost per iteration is linear in ``n``.

Choices, each measured on the 2-core development VM (OpenBLAS):

- Forming ``AᵀDA`` instead of the augmented system ``[MᵀM, Aᵀ; A, −D⁻¹]``: LAPACK's banded LU
  on the augmented system (twice the unknowns, bandwidth 4) cost 4–6× the banded Cholesky.
  Forming ``AᵀDA`` loses ``MᵀM`` digits once ``D`` spans ~20 decades (DESIGN.md §7); this
  solver stops at an average complementarity ``μ ≤ 3e-9`` where ``D`` spans about 12, and a
  failed Cholesky or an indefinite Schur complement ends the solve (the caller falls back).
- Stopping at ``μ ≤ 3e-9`` puts tonic and phasic within 2e-5 of the segment range of the exact
  optimum on the event-related recording (max over 8 segment sizes, 16/32 Hz; cvxopt's own
  stopping leaves it 3–12e-6 away) and within 6.3e-5 of cvxopt on the 8-min resting one. The
  deviation grows roughly as ``sqrt(μ)``; "equal accuracy" here means within 1e-4 of cvxopt.
- Warm start: the previous solution shifted by the hop and lifted (see :meth:`warm_start`);
  7–10 iterations per 0.25-s hop instead of 14–19 from a cold start.
- Python overhead: about 50 numpy/LAPACK calls per iteration at ~1 µs each dominate below
  n ≈ 500, so ``s`` and ``λ`` live in one array (one call per step-length test and update) and
  the linear residuals are scaled by ``1 − step`` instead of recomputed (exact for Newton
  directions; recomputed before the final convergence test). OpenBLAS's banded routines add
  ~70 ns per column (``dpbtrf``) and ~10–17 ns per column and right-hand side (``dtbtrs``).
  Net: 4–7× faster than cvxopt per 0.25-s hop (``bench/cvxeda.py``); the same algorithm as a
  compiled loop measured 12–21×, so reaching 10× everywhere needs one (e.g. numba).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg import lapack
from scipy.signal import lfilter

from affectstream.streaming.preprocess.cvxeda.model import (
    CvxEdaModel,
    FloatArray,
    lower_toeplitz_apply,
    lower_toeplitz_apply_t,
    mtm_band,
)

#: Fraction of the distance to the boundary taken by each step (a standard value; 0.995 and
#: 0.999 gave the same iteration counts here).
STEP_FRACTION = 0.99
#: Average complementarity ``sᵀλ / n`` at which the solve stops (see the module docstring).
MU_TOL = 3e-9
#: Max-norm of the dual residuals (gradient of the Lagrangian in q and w) at which it stops.
RES_TOL = 1e-6
#: Warm-start lift: every driver and multiplier entry is raised to at least this × its mean.
LIFT = 0.3


@dataclass
class IpmState:
    """Primal-dual point: ``q`` (n,), ``w`` (m,), driver ``s = Aq`` (n,), ``lam`` (n,)."""

    q: FloatArray
    w: FloatArray
    s: FloatArray
    lam: FloatArray


@dataclass(frozen=True)
class IpmResult:
    """Outcome of :meth:`BandedIpm.solve`; ``reason`` is ``"converged"``, ``"max-iter"``,
    ``"cholesky"`` or ``"schur"`` (the last two: a factorisation lost positive definiteness)."""

    state: IpmState
    iterations: int
    converged: bool
    reason: str


class BandedIpm:
    """Mehrotra predictor-corrector for one segment length (matrices precomputed).

    Parameters
    ----------
    model : CvxEdaModel
        The QP's fixed matrices.
    mu_tol, res_tol : float
        Stopping thresholds (see :data:`MU_TOL`, :data:`RES_TOL`).
    max_iter : int
        Give up (``converged=False``) after this many iterations.
    """

    def __init__(
        self,
        model: CvxEdaModel,
        *,
        mu_tol: float = MU_TOL,
        res_tol: float = RES_TOL,
        max_iter: int = 50,
    ) -> None:
        self.model = model
        self.mu_tol = mu_tol
        self.res_tol = res_tol
        self.max_iter = max_iter
        n, ar, ma, E = model.n, model.ar, model.ma, model.E
        self._K0 = mtm_band(ma, n)
        # AᵀDA in the same band storage is Cm @ [D_j; D_{j+1}; D_{j+2}] column by column (D = 0
        # past the end): diag_j = Σ_t ar_t² D_{j+t}, (j−1, j) = ar0 ar1 D_j + ar1 ar2 D_{j+1},
        # (j−2, j) = ar0 ar2 D_j. The band's unused corners are never read by LAPACK.
        self._Cm = np.array(
            [
                [ar[0] * ar[2], 0.0, 0.0],
                [ar[0] * ar[1], ar[1] * ar[2], 0.0],
                [ar[0] ** 2, ar[1] ** 2, ar[2] ** 2],
            ]
        )
        self._Dpad = np.zeros(n + 2)
        self._Dshift = as_strided(self._Dpad, shape=(3, n), strides=(8, 8), writeable=False)
        self._band = np.empty((3, n), order="F")
        self._U = np.asfortranarray(
            np.column_stack([lower_toeplitz_apply_t(ma, E[:, j]) for j in range(E.shape[1])])
        )
        self._S0 = E.T @ E + np.diag(model.ridge)
        self._S0_inv = np.linalg.inv(self._S0)
        self._aAt1 = model.alpha * lower_toeplitz_apply_t(ar, np.ones(n))
        self._x = np.empty(2 * n)  # [s; λ]
        self._dx = np.empty(2 * n)  # [Δs; Δλ]

    # -- starting points ------------------------------------------------------------------
    def cold_start(self, y: FloatArray) -> IpmState:
        """A start that knows nothing about the solution: a constant driver of the size of
        ``y``'s spread, the tonic fitted to the rest, multipliers ``10 α``."""
        scale = max(float(np.std(y)), 1e-12)
        lam = np.full(self.model.n, 10.0 * max(self.model.alpha, 1e-4))
        return self._from_driver(y, np.full(self.model.n, scale), lam)

    def warm_start(self, y: FloatArray, prev: IpmState, shift: int, ratio: float) -> IpmState:
        """Start from a previous solution whose segment began ``shift`` samples earlier.

        ``q`` (whose first samples hold the filter state) is shifted and multiplied by
        ``ratio`` = previous std / new std, so the driver at the start of the new segment
        absorbs the response already under way; samples past the previous end get the mean
        driver and multiplier. ``prev`` may be shorter than this solver's segment (while the
        online segment fills). Every entry is then lifted to at least :data:`LIFT` × its mean:
        a point that close to the previous boundary stalls Mehrotra's steps (measured on the
        real recording: 7–10 iterations with the lift at 0.3, 9–13 at 0.1, 17–40 for a
        perfectly centred point at μ = 1e-4 … 1e-7).
        """
        n, ar = self.model.n, self.model.ar
        head = lower_toeplitz_apply(ar, prev.q[shift:] * ratio)[:n]
        lam_head = prev.lam[shift : shift + head.size]
        extra = n - head.size
        p = np.concatenate([head, np.full(extra, max(float(head.mean()), 1e-12))])
        lam = np.concatenate([lam_head, np.full(extra, float(prev.lam.mean()))])
        np.maximum(p, LIFT * float(np.abs(p).mean()), out=p)
        np.maximum(lam, LIFT * float(lam.mean()), out=lam)
        return self._from_driver(y, p, lam)

    def _from_driver(self, y: FloatArray, s: FloatArray, lam: FloatArray) -> IpmState:
        """State with driver ``s`` (``q = A⁻¹s``, so ``Aq = s`` exactly) and the tonic fitted
        to what the phasic leaves."""
        model = self.model
        q = lfilter([1.0], model.ar, s)
        w = self._S0_inv @ (model.E.T @ (y - lower_toeplitz_apply(model.ma, q)))
        return IpmState(q=q, w=w, s=s, lam=lam)

    # -- the iteration ----------------------------------------------------------------------
    def solve(self, y: FloatArray, start: IpmState) -> IpmResult:
        """Run Mehrotra's method from ``start`` (its arrays are not modified) on ``y`` (n,).

        ``start.s`` must be positive and equal to ``A start.q`` (as the starting points above
        are): ``s = Aq`` then holds at every iterate because ``Δs = AΔq``.
        """
        model = self.model
        n = model.n
        ar, ma, E, ridge = model.ar, model.ma, model.E, model.ridge
        x, dx = self._x, self._dx
        s, lam, ds, dlam = x[:n], x[n:], dx[:n], dx[n:]
        s[:] = start.s
        lam[:] = start.lam
        q = start.q.copy()
        w = start.w.copy()
        D = self._Dpad[:n]
        convolve = np.convolve

        def at(v: FloatArray) -> FloatArray:  # Aᵀv
            return convolve(v[::-1], ar)[n - 1 :: -1]

        def residuals() -> tuple[FloatArray, FloatArray, FloatArray]:
            f = convolve(q, ma)[:n] + E @ w - y
            g = convolve(f[::-1], ma)[n - 1 :: -1] + self._aAt1  # objective gradient in q
            return g, g - at(lam), E.T @ f + ridge * w

        def result(it: int, converged: bool, reason: str) -> IpmResult:
            return IpmResult(IpmState(q, w, s.copy(), lam.copy()), it, converged, reason)

        g, rq, rw = residuals()
        fresh = True
        for it in range(self.max_iter + 1):
            mu = float(s @ lam) / n
            if mu <= self.mu_tol:
                if not fresh:  # scaled residuals drift from the true ones: recompute
                    g, rq, rw = residuals()
                    fresh = True
                if max(float(np.abs(rq).max()), float(np.abs(rw).max())) <= self.res_tol:
                    return result(it, True, "converged")
            if it == self.max_iter:
                break
            # -- factorise K = MᵀM + AᵀDA = RᵀR and the tonic Schur complement S = ScᵀSc
            np.divide(lam, s, out=D)
            band = np.matmul(self._Cm, self._Dshift, out=self._band)
            band += self._K0
            R, info = lapack.dpbtrf(band, lower=0, overwrite_ab=1)
            if info != 0:
                return result(it, False, "cholesky")
            V = lapack.dtbtrs(R, self._U, uplo="U", trans="T")[0]
            Sc, info = lapack.dpotrf(self._S0 - V.T @ V)
            if info != 0:
                return result(it, False, "schur")

            # -- predictor (affine scaling). With s = Aq exact the right-hand side
            #    −rq − Aᵀ(λ) reduces to −g; solve for +g and flip signs below.
            dq, dw = _newton(R, V, Sc, g, rw)
            ds[:] = convolve(dq, ar)[:n]  # = −Δs_aff
            np.multiply(D, ds, out=dlam)
            dlam -= lam  # Δλ_aff = −λ − DΔs_aff
            np.negative(ds, out=ds)
            step = _max_step(x, dx)
            trial = x + step * dx
            sigma = (float(trial[:n] @ trial[n:]) / n / mu) ** 3
            # -- corrector: complementarity target σμ plus the second-order term Δs∘Δλ
            c = (ds * dlam - sigma * mu) / s
            dq, dw = _newton(R, V, Sc, g + at(c), rw)
            ds[:] = convolve(dq, ar)[:n]  # = −Δs
            np.multiply(D, ds, out=dlam)
            dlam -= lam
            dlam -= c  # Δλ = −λ − c − DΔs
            np.negative(ds, out=ds)
            step = min(1.0, STEP_FRACTION * _max_step(x, dx))
            x += step * dx
            q -= step * dq
            w -= step * dw
            # Newton directions solve the linear KKT rows exactly: those residuals shrink by
            # (1 − step), and g = rq + Aᵀλ follows.
            rq *= 1.0 - step
            rw *= 1.0 - step
            g = rq + at(lam)
            fresh = False
        return result(self.max_iter, False, "max-iter")


def _newton(
    R: FloatArray, V: FloatArray, Sc: FloatArray, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Solve ``[K, MᵀE; EᵀM, S0] [Δq; Δw] = [a; b]`` given ``K = RᵀR`` (band storage),
    ``V = R⁻ᵀMᵀE`` and the Cholesky factor ``Sc`` of ``S0 − VᵀV``: two triangular sweeps."""
    t = lapack.dtbtrs(R, a, uplo="U", trans="T")[0]
    dw = lapack.dpotrs(Sc, b - V.T @ t)[0]
    return lapack.dtbtrs(R, t - V @ dw, uplo="U", trans="N")[0], dw


def _max_step(x: FloatArray, dx: FloatArray) -> float:
    """Largest ``t ≤ 1`` with ``x + t·dx ≥ 0`` (``x > 0``)."""
    worst = float((dx / x).min())
    return 1.0 if worst >= -1.0 else -1.0 / worst
