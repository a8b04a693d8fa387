"""Structured interior-point solver for the cvxEDA QP (the fast path of ``OnlineCvxEda``).

The same QP as the cvxopt reference (:mod:`~affectstream.streaming.preprocess.cvxeda.reference`),
solved by Mehrotra's predictor-corrector on the constraint ``s = A q ≥ 0`` with multiplier
``λ ≥ 0``. Each Newton step solves

    [ MᵀM + Aᵀ D A   MᵀE          ] [Δq]   [a]
    [ EᵀM            EᵀE + ridge  ] [Δw] = [b],      D = diag(λ / s),

with a banded Cholesky ``K = MᵀM + AᵀDA = RᵀR`` (pentadiagonal) and a Schur complement for the
``m = 2 + n_knots`` tonic columns: ``V = R⁻ᵀ MᵀE`` (m triangular sweeps), ``S = EᵀE + ridge −
VᵀV`` (m × m). Cost per iteration is linear in ``n``.

One iteration, two ways to run it
---------------------------------
:func:`iterate` is written once, as a plain function over numpy arrays in the subset of Python
that numba compiles. Its linear algebra goes through five small kernels:
:func:`factorise`, :func:`newton`, :func:`max_step` here and
:func:`~affectstream.streaming.preprocess.cvxeda.model.lower_toeplitz_apply` /
:func:`~affectstream.streaming.preprocess.cvxeda.model.lower_toeplitz_apply_t`. Called from
Python, they run in numpy and LAPACK (``dpbtrf``, ``dtbtrs``, ``dpotrf``, ``dpotrs``); compiled
with numba (:mod:`~affectstream.streaming.preprocess.cvxeda.jit`), each is replaced by its twin in
:data:`COMPILED_AS`: the same factorisation or solve as explicit loops (a hand-written
pentadiagonal ``LDLᵀ`` instead of LAPACK's banded Cholesky). Same algorithm, same starting points,
steps and stopping: the two runs take the same number of iterations and agree to rounding.
The starting points (:func:`start_point`, :func:`warm_point`) are written the same way, so the
compiled build runs the whole update but the z-scoring and the mapping back: one call for the
start, one for the iteration.

Why both kernels are kept: the loops run uncompiled cost ~1 µs of interpreter time per scalar
operation; on real skin conductance at 16 Hz, warm 0.25-s hops took 37 ms (10-s segment) and
225 ms (60-s segment) that way against 1.5 and 5.9 ms with the numpy/LAPACK kernels, which are
what runs without numba or while it compiles. Compiled, the loops avoid the ~1 µs Python and
BLAS call overhead per numpy/LAPACK call that dominates below n ≈ 500: 3–4× faster per update
than the numpy/LAPACK run (``python -m affectstream.bench.cvxeda --compiled``).

Choices, each measured on a 2-core VM (OpenBLAS):

- Forming ``AᵀDA`` instead of factorising the augmented system ``[MᵀM, Aᵀ; A, −D⁻¹]``: LAPACK's
  banded LU on the augmented system (twice the unknowns, bandwidth 4) cost 4–6× the banded
  Cholesky. Forming ``AᵀDA`` loses the digits of ``MᵀM`` once ``D = λ/s`` spans ~20 decades
  (``s`` and ``λ`` both tend to 0 on complementary sets); stopping at an average
  complementarity of 1e-7 (:attr:`CvxEdaParams.mu_tol`) keeps it well within that, and a
  failed Cholesky or an indefinite Schur complement ends the solve (the caller falls back).
- The stopping point is tied to the accuracy required (issue #16): tonic and phasic within
  1e-3 of the segment range of the exact optimum. ``mu_tol`` 1e-7 leaves at most 3.4e-4
  (measured on 0.25-s hops over the real event-related recording and synthetic DEAP GSR; the
  deviation grows about as ``sqrt(mu_tol)``, see :class:`CvxEdaParams`).
- Warm start: the previous solution shifted by the hop and lifted (see
  :meth:`BandedIpm.warm_start`); about 6 iterations per 0.25-s hop (at most 14 measured)
  instead of 11–15 from a cold start.
- Loop kernels shaped by latency: the pentadiagonal factorisation is a chain from row to row,
  so it is an ``LDLᵀ`` (one division per row, no square root), and ``V = L⁻¹U`` is computed in
  the same pass (its ``m`` independent columns fill the chain's wait; ``Vᵀd⁻¹V`` is one BLAS
  call after it, faster than accumulating it row by row); :func:`newton_loops` accumulates
  ``Vᵀd⁻¹t`` in the forward sweep and applies ``VΔw`` in the backward one. Fastest of batches
  of calls at n = 480 (a loaded 2-core VM): factorisation 16.6 → 10.2 µs, Newton solve
  9.1 → 6.6 µs, against the former Cholesky with separate passes.
- ``s`` and ``λ`` live in one array (one call per step-length test and update), and the linear
  residuals are scaled by ``1 − step`` instead of recomputed (exact for Newton directions;
  recomputed before the final convergence test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

__all__ = [
    "CHOLESKY",
    "COMPILED_AS",
    "CONVERGED",
    "MAX_ITER",
    "REASONS",
    "SCHUR",
    "BandedIpm",
    "IpmResult",
    "IpmState",
    "ar_inverse",
    "factorise",
    "finish",
    "iterate",
    "max_step",
    "newton",
    "residuals",
    "start_point",
    "warm_point",
]

#: Status codes returned by :func:`iterate`, and their names in :attr:`IpmResult.reason`.
CONVERGED, CHOLESKY, SCHUR, MAX_ITER = 0, 1, 2, 3
REASONS = ("converged", "cholesky", "schur", "max-iter")


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


# -- the iteration, written once ------------------------------------------------------------


def residuals(
    y: FloatArray,
    q: FloatArray,
    w: FloatArray,
    lam: FloatArray,
    ar: FloatArray,
    ma: FloatArray,
    E: FloatArray,
    ridge: FloatArray,
    aAt1: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Objective gradient in ``q`` (``g``) and the dual residuals in ``q`` and ``w``.

    ``f = Mq + Ew − y``; ``g = Mᵀf + α Aᵀ1``; ``rq = g − Aᵀλ``; ``rw = Eᵀf + ridge ∘ w``.
    """
    f = lower_toeplitz_apply(ma, q) + E @ w - y
    g = lower_toeplitz_apply_t(ma, f) + aAt1
    return g, g - lower_toeplitz_apply_t(ar, lam), E.T @ f + ridge * w


def iterate(
    y: FloatArray,
    q: FloatArray,
    w: FloatArray,
    x: FloatArray,
    ar: FloatArray,
    ma: FloatArray,
    E: FloatArray,
    ridge: FloatArray,
    aAt1: FloatArray,
    K0: FloatArray,
    Cm: FloatArray,
    U: FloatArray,
    S0: FloatArray,
    Dpad: FloatArray,
    Dshift: FloatArray,
    band: FloatArray,
    mu_tol: float,
    res_tol: float,
    max_iter: int,
    step_fraction: float,
) -> tuple[int, int]:
    """Mehrotra's predictor-corrector from ``(q, w, x = [s; λ])``, updated in place.

    ``s = x[:n]`` must be positive and equal to ``A q``; it stays so at every iterate because
    ``Δs = AΔq``. The matrices are those :class:`BandedIpm` precomputes: taps ``ar``, ``ma``,
    tonic basis ``E`` (n, m), ``ridge`` (m,), ``aAt1 = α Aᵀ1`` (n,), ``K0 = MᵀM`` in upper band
    storage (3, n), ``Cm`` (3, 3) the tap products that map ``[D_j; D_{j+1}; D_{j+2}]`` to
    column ``j`` of ``AᵀDA`` in the same storage, ``U = MᵀE`` (n, m), ``S0 = EᵀE + diag(ridge)``;
    workspace ``Dpad`` (n + 2, last two entries 0), ``Dshift`` its (3, n) shifted view and
    ``band`` (3, n, Fortran order).

    Returns
    -------
    iterations : int
    status : int
        :data:`CONVERGED`, :data:`CHOLESKY`, :data:`SCHUR` or :data:`MAX_ITER`.
    """
    n = y.size
    s = x[:n]
    lam = x[n:]
    dx = np.empty(2 * n)  # [Δs; Δλ]
    ds = dx[:n]
    dlam = dx[n:]
    D = Dpad[:n]
    g, rq, rw = residuals(y, q, w, lam, ar, ma, E, ridge, aAt1)
    fresh = True
    for it in range(max_iter + 1):
        mu = float(s @ lam) / n
        if mu <= mu_tol:
            if not fresh:  # scaled residuals drift from the true ones: recompute
                g, rq, rw = residuals(y, q, w, lam, ar, ma, E, ridge, aAt1)
                fresh = True
            if max(float(np.abs(rq).max()), float(np.abs(rw).max())) <= res_tol:
                return it, CONVERGED
        if it == max_iter:
            break
        # -- factorise K = MᵀM + AᵀDA = RᵀR and the tonic Schur complement
        np.divide(lam, s, D)
        status, R, V, Sc = factorise(K0, Cm, Dpad, Dshift, band, U, S0)
        if status != CONVERGED:
            return it, status
        # -- predictor (affine scaling). With s = Aq exact the right-hand side −rq − Aᵀλ
        #    reduces to −g; solve for +g and flip signs below.
        dq, dw = newton(R, V, Sc, g, rw)
        ds[:] = lower_toeplitz_apply(ar, dq)  # = −Δs_aff
        np.multiply(D, ds, dlam)
        dlam -= lam  # Δλ_aff = −λ − DΔs_aff
        np.negative(ds, ds)
        step = max_step(x, dx)
        trial = x + step * dx
        sigma = (float(trial[:n] @ trial[n:]) / n / mu) ** 3
        # -- corrector: complementarity target σμ plus the second-order term Δs∘Δλ
        c = (ds * dlam - sigma * mu) / s
        dq, dw = newton(R, V, Sc, g + lower_toeplitz_apply_t(ar, c), rw)
        ds[:] = lower_toeplitz_apply(ar, dq)  # = −Δs
        np.multiply(D, ds, dlam)
        dlam -= lam
        dlam -= c  # Δλ = −λ − c − DΔs
        np.negative(ds, ds)
        step = min(1.0, step_fraction * max_step(x, dx))
        x += step * dx
        q -= step * dq
        w -= step * dw
        # Newton directions solve the linear KKT rows exactly: those residuals shrink by
        # (1 − step), and g = rq + Aᵀλ follows.
        rq *= 1.0 - step
        rw *= 1.0 - step
        g = rq + lower_toeplitz_apply_t(ar, lam)
        fresh = False
    return max_iter, MAX_ITER


def start_point(
    y: FloatArray,
    s: FloatArray,
    lam: FloatArray,
    ar: FloatArray,
    ma: FloatArray,
    E: FloatArray,
    S0_inv: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """A starting point with driver ``s > 0`` and multipliers ``lam > 0``: ``q = A⁻¹s`` (so
    ``Aq = s`` exactly) and the tonic fitted to what the phasic leaves.

    Returns ``(q, w, x = [s; λ])``.
    """
    q = ar_inverse(ar, s)
    w = S0_inv @ (E.T @ (y - lower_toeplitz_apply(ma, q)))
    return q, w, np.concatenate((s, lam))


def warm_point(
    y: FloatArray,
    q_prev: FloatArray,
    lam_prev: FloatArray,
    shift: int,
    ratio: float,
    lift: float,
    ar: FloatArray,
    ma: FloatArray,
    E: FloatArray,
    S0_inv: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The warm start (see :meth:`BandedIpm.warm_start`) as :func:`start_point` arguments,
    then :func:`start_point`."""
    n = y.size
    head = lower_toeplitz_apply(ar, q_prev[shift:] * ratio)[:n]
    k = head.size
    s = np.empty(n)
    lam = np.empty(n)
    s[:k] = head
    lam[:k] = lam_prev[shift : shift + k]
    if k < n:
        s[k:] = max(float(head.mean()), 1e-12)
        lam[k:] = float(lam_prev.mean())
    s = np.maximum(s, lift * float(np.abs(s).mean()))
    lam = np.maximum(lam, lift * float(lam.mean()))
    return start_point(y, s, lam, ar, ma, E, S0_inv)


def finish(
    z: FloatArray,
    q: FloatArray,
    w: FloatArray,
    driver: FloatArray,
    ma: FloatArray,
    E: FloatArray,
    ridge: FloatArray,
    alpha: float,
    mean: float,
    std: float,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """A solution of the z-scored segment ``z`` mapped back to input units.

    Returns ``(phasic, tonic, driver, objective)``: ``std·Mq``, ``std·Ew + mean``,
    ``std·driver`` and the QP objective at ``(q, w)`` in z-scored units (with ``driver`` for
    ``Aq``, which the iteration keeps equal to it up to rounding).
    """
    phasic = lower_toeplitz_apply(ma, q)
    tonic = E @ w
    e = phasic + tonic - z
    objective = 0.5 * float(e @ e) + alpha * float(driver.sum()) + 0.5 * float((ridge * w) @ w)
    return std * phasic, std * tonic + mean, std * driver, objective


# -- kernels: numpy/LAPACK (run from Python) ------------------------------------------------


def factorise(
    K0: FloatArray,
    Cm: FloatArray,
    Dpad: FloatArray,
    Dshift: FloatArray,
    band: FloatArray,
    U: FloatArray,
    S0: FloatArray,
) -> tuple[int, FloatArray, FloatArray, FloatArray]:
    """Factor ``K = MᵀM + AᵀDA = RᵀR`` (``D = Dpad[:n]``), ``V = R⁻ᵀU`` and the Cholesky factor
    of the Schur complement ``S0 − VᵀV``, with LAPACK.

    Returns ``(status, R, V, Sc)``: ``R`` in upper band storage (``dpbtrf``, overwriting
    ``band``), ``Sc`` upper triangular; ``status`` :data:`CHOLESKY` or :data:`SCHUR` when a
    factorisation fails (the arrays are then not meaningful), else :data:`CONVERGED`.
    """
    np.matmul(Cm, Dshift, out=band)
    band += K0
    R, info = lapack.dpbtrf(band, lower=0, overwrite_ab=1)
    if info != 0:
        return CHOLESKY, R, U, S0
    V = lapack.dtbtrs(R, U, uplo="U", trans="T")[0]
    Sc, info = lapack.dpotrf(S0 - V.T @ V)
    if info != 0:
        return SCHUR, R, V, Sc
    return CONVERGED, R, V, Sc


def newton(
    R: FloatArray, V: FloatArray, Sc: FloatArray, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Solve ``[K, MᵀE; EᵀM, S0] [Δq; Δw] = [a; b]`` given the factors of :func:`factorise`:
    two banded triangular sweeps around the Schur solve."""
    t = lapack.dtbtrs(R, a, uplo="U", trans="T")[0]
    dw = lapack.dpotrs(Sc, b - V.T @ t)[0]
    return lapack.dtbtrs(R, t - V @ dw, uplo="U", trans="N")[0], dw


def max_step(x: FloatArray, dx: FloatArray) -> float:
    """Largest ``t ≤ 1`` with ``x + t·dx ≥ 0`` (``x > 0``)."""
    worst = float((dx / x).min())
    return 1.0 if worst >= -1.0 else -1.0 / worst


def ar_inverse(ar: FloatArray, s: FloatArray) -> FloatArray:
    """``A⁻¹ s``: the driver ``s`` filtered by the AR part (scipy's ``lfilter``)."""
    q: FloatArray = lfilter([1.0], ar, s)
    return q


# -- kernels: explicit loops (their twins when numba compiles iterate) -----------------------


def toeplitz_apply_loops(taps: FloatArray, x: FloatArray) -> FloatArray:
    """:func:`lower_toeplitz_apply` as a loop."""
    n = x.size
    out = np.empty(n)
    for i in range(min(n, 2)):
        out[i] = taps[0] * x[i] + (taps[1] * x[0] if i == 1 else 0.0)
    for i in range(2, n):
        out[i] = taps[0] * x[i] + taps[1] * x[i - 1] + taps[2] * x[i - 2]
    return out


def toeplitz_apply_t_loops(taps: FloatArray, x: FloatArray) -> FloatArray:
    """:func:`lower_toeplitz_apply_t` as a loop."""
    n = x.size
    out = np.empty(n)
    for i in range(n - 2):
        out[i] = taps[0] * x[i] + taps[1] * x[i + 1] + taps[2] * x[i + 2]
    if n >= 2:
        out[n - 2] = taps[0] * x[n - 2] + taps[1] * x[n - 1]
    if n >= 1:
        out[n - 1] = taps[0] * x[n - 1]
    return out


def ar_inverse_loops(ar: FloatArray, s: FloatArray) -> FloatArray:
    """:func:`ar_inverse` as a loop (forward substitution through the three AR taps)."""
    n = s.size
    q = np.empty(n)
    for i in range(n):
        v = s[i]
        if i >= 1:
            v -= ar[1] * q[i - 1]
        if i >= 2:
            v -= ar[2] * q[i - 2]
        q[i] = v / ar[0]
    return q


def factorise_loops(
    K0: FloatArray,
    Cm: FloatArray,
    Dpad: FloatArray,
    Dshift: FloatArray,
    band: FloatArray,
    U: FloatArray,
    S0: FloatArray,
) -> tuple[int, FloatArray, FloatArray, FloatArray]:
    """:func:`factorise` with a pentadiagonal ``K = L diag(d) Lᵀ`` (``L`` unit lower) written
    out: no square root in the row-to-row recurrence, which is what bounds this loop.

    ``band`` receives ``band[0, i] = L[i, i−2]``, ``band[1, i] = L[i, i−1]``,
    ``band[2, i] = 1 / d[i]``. The returned ``V`` is ``L⁻¹ U`` (n, m), computed in the same pass
    as ``L`` (its ``m`` independent columns fill the recurrence's wait), and ``Sc`` the lower
    Cholesky factor of ``S0 − Uᵀ K⁻¹ U = S0 − Vᵀ diag(d)⁻¹ V`` (one BLAS product after the
    pass). ``Dshift`` is not used (the loops read ``Dpad``).
    """
    n, m = U.shape
    l2, l1, dinv = band[0], band[1], band[2]
    V = np.empty((n, m))
    Ls = np.zeros((m, m))
    for i in range(n):
        k0 = K0[2, i] + Cm[2, 0] * Dpad[i] + Cm[2, 1] * Dpad[i + 1] + Cm[2, 2] * Dpad[i + 2]
        if i >= 2:
            k2 = K0[0, i] + Cm[0, 0] * Dpad[i]
            c1 = K0[1, i] + Cm[1, 0] * Dpad[i] + Cm[1, 1] * Dpad[i + 1] - k2 * l1[i - 1]
            a2 = k2 * dinv[i - 2]
            a1 = c1 * dinv[i - 1]
            d = k0 - a1 * c1 - a2 * k2
        elif i == 1:
            c1 = K0[1, i] + Cm[1, 0] * Dpad[i] + Cm[1, 1] * Dpad[i + 1]
            a2 = 0.0
            a1 = c1 * dinv[0]
            d = k0 - a1 * c1
        else:
            a2 = a1 = 0.0
            d = k0
        if d <= 0.0:
            return CHOLESKY, band, V, Ls
        inv = 1.0 / d
        dinv[i] = inv
        l1[i] = a1
        l2[i] = a2
        if i >= 2:
            for j in range(m):
                V[i, j] = U[i, j] - a1 * V[i - 1, j] - a2 * V[i - 2, j]
        elif i == 1:
            for j in range(m):
                V[i, j] = U[i, j] - a1 * V[i - 1, j]
        else:
            for j in range(m):
                V[i, j] = U[i, j]
    S = S0 - np.dot(V.T * dinv, V)  # one BLAS call: faster than accumulating row by row
    for j in range(m):
        for k in range(j + 1):
            v = S[j, k]
            for p in range(k):
                v -= Ls[j, p] * Ls[k, p]
            if j == k:
                if v <= 0.0:
                    return SCHUR, band, V, Ls
                Ls[j, j] = np.sqrt(v)
            else:
                Ls[j, k] = v / Ls[k, k]
    return CONVERGED, band, V, Ls


def newton_loops(
    R: FloatArray, V: FloatArray, Sc: FloatArray, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """:func:`newton` with the factors of :func:`factorise_loops`: ``t = L⁻¹a`` with
    ``Vᵀ d⁻¹ t`` accumulated in the same forward sweep, the Schur solve, then
    ``Δq = L⁻ᵀ d⁻¹ (t − VΔw)`` in one backward sweep (two passes over the rows)."""
    n, m = V.shape
    l2, l1, dinv = R[0], R[1], R[2]
    t = np.empty(n)
    rhs = b.copy()
    t0 = a[0]
    t1 = a[1] - l1[1] * t0
    t[0] = t0
    t[1] = t1
    for j in range(m):
        rhs[j] -= t0 * dinv[0] * V[0, j] + t1 * dinv[1] * V[1, j]
    for i in range(2, n):
        ti = a[i] - l1[i] * t[i - 1] - l2[i] * t[i - 2]
        t[i] = ti
        ts = ti * dinv[i]
        for j in range(m):
            rhs[j] -= ts * V[i, j]
    for j in range(m):  # Sc Scᵀ dw = rhs
        v = rhs[j]
        for k in range(j):
            v -= Sc[j, k] * rhs[k]
        rhs[j] = v / Sc[j, j]
    dw = np.empty(m)
    for j in range(m - 1, -1, -1):
        v = rhs[j]
        for k in range(j + 1, m):
            v -= Sc[k, j] * dw[k]
        dw[j] = v / Sc[j, j]
    dq = np.empty(n)
    for i in range(n - 1, -1, -1):
        r = t[i]
        for j in range(m):
            r -= V[i, j] * dw[j]
        r *= dinv[i]
        if i <= n - 3:
            r -= l1[i + 1] * dq[i + 1] + l2[i + 2] * dq[i + 2]
        elif i == n - 2:
            r -= l1[i + 1] * dq[i + 1]
        dq[i] = r
    return dq, dw


def max_step_loops(x: FloatArray, dx: FloatArray) -> float:
    """:func:`max_step` as a loop."""
    worst = 0.0
    for i in range(x.size):
        r = dx[i] / x[i]
        if r < worst:
            worst = r
    return 1.0 if worst >= -1.0 else -1.0 / worst


#: What numba compiles in place of each function :func:`iterate` calls: the loop twin of each
#: numpy/LAPACK kernel (same arguments, same results to rounding), and :func:`residuals` as it is.
#: Everything compiled is in this file, so numba's on-disk cache, which checks the timestamp of
#: the file that defines :func:`iterate`, is invalidated by any change to it.
COMPILED_AS: dict[Callable[..., Any], Callable[..., Any]] = {
    lower_toeplitz_apply: toeplitz_apply_loops,
    lower_toeplitz_apply_t: toeplitz_apply_t_loops,
    factorise: factorise_loops,
    newton: newton_loops,
    max_step: max_step_loops,
    ar_inverse: ar_inverse_loops,
    residuals: residuals,
    start_point: start_point,
}


# -- the solver ------------------------------------------------------------------------------


class BandedIpm:
    """Mehrotra predictor-corrector for one segment length (matrices precomputed).

    :func:`iterate` runs from Python with the numpy/LAPACK kernels;
    :class:`~affectstream.streaming.preprocess.cvxeda.jit.CompiledIpm` runs it compiled.
    Stopping thresholds, iteration limit, step fraction and warm-start lift come from
    ``model.params``.

    Parameters
    ----------
    model : CvxEdaModel
        The QP's fixed matrices.
    """

    #: The iteration :meth:`solve` runs, and the starting points (:func:`start_point`,
    #: :func:`warm_point`); :class:`~affectstream.streaming.preprocess.cvxeda.jit.CompiledIpm`
    #: replaces all three with their compiled builds.
    iteration = staticmethod(iterate)
    start = staticmethod(start_point)
    warm = staticmethod(warm_point)
    #: :func:`finish`, the mapping back to input units (compiled in ``CompiledIpm`` too).
    finish = staticmethod(finish)

    def __init__(self, model: CvxEdaModel) -> None:
        self.model = model
        n, ar, ma, E = model.n, model.ar, model.ma, model.E
        self._K0 = mtm_band(ma, n)
        # AᵀDA in the same band storage is Cm @ [D_j; D_{j+1}; D_{j+2}] column by column (D = 0
        # past the end): diag_j = Σ_t ar_t² D_{j+t}, (j−1, j) = ar0 ar1 D_j + ar1 ar2 D_{j+1},
        # (j−2, j) = ar0 ar2 D_j. The band's unused corners are never read.
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
        self._S0_inv: FloatArray = np.linalg.inv(self._S0).astype(np.float64)
        self._aAt1 = model.params.alpha * lower_toeplitz_apply_t(ar, np.ones(n))

    # -- starting points ------------------------------------------------------------------
    def cold_start(self, y: FloatArray) -> IpmState:
        """A start that knows nothing about the solution: a constant driver of the size of
        ``y``'s spread, the tonic fitted to the rest, multipliers ``10 α``."""
        model = self.model
        scale = max(float(np.std(y)), 1e-12)
        lam = np.full(model.n, 10.0 * max(model.params.alpha, 1e-4))
        q, w, x = self.start(
            np.ascontiguousarray(y, dtype=np.float64),
            np.full(model.n, scale),
            lam,
            model.ar,
            model.ma,
            model.E,
            self._S0_inv,
        )
        return IpmState(q=q, w=w, s=x[: model.n], lam=x[model.n :])

    def warm_start(self, y: FloatArray, prev: IpmState, shift: int, ratio: float) -> IpmState:
        """Start from a previous solution whose segment began ``shift`` samples earlier.

        ``q`` (whose first samples hold the filter state) is shifted and multiplied by
        ``ratio`` = previous std / new std, so the driver at the start of the new segment
        absorbs the response already under way; samples past the previous end get the mean
        driver and multiplier. ``prev`` may be shorter than this solver's segment (while the
        online segment fills). Every entry is then lifted to at least
        :attr:`CvxEdaParams.lift` × its mean: a point that close to the previous boundary
        stalls Mehrotra's steps. The tonic is refitted to what the phasic part leaves
        (:func:`warm_point`, run as :attr:`warm`).
        """
        model = self.model
        q, w, x = self.warm(
            np.ascontiguousarray(y, dtype=np.float64),
            np.ascontiguousarray(prev.q, dtype=np.float64),
            np.ascontiguousarray(prev.lam, dtype=np.float64),
            int(shift),
            float(ratio),
            float(model.params.lift),
            model.ar,
            model.ma,
            model.E,
            self._S0_inv,
        )
        return IpmState(q=q, w=w, s=x[: model.n], lam=x[model.n :])

    # -- the solve --------------------------------------------------------------------------
    def solve(self, y: FloatArray, start: IpmState) -> IpmResult:
        """Run :attr:`iteration` from ``start`` (its arrays are not modified) on ``y`` (n,).

        ``start.s`` must be positive and equal to ``A start.q`` (as the starting points above
        are).
        """
        model, params = self.model, self.model.params
        n = model.n
        q = np.array(start.q, dtype=np.float64)
        w = np.array(start.w, dtype=np.float64)
        x = np.concatenate([start.s, start.lam]).astype(np.float64, copy=False)
        it, status = self.iteration(
            np.ascontiguousarray(y, dtype=np.float64),
            q,
            w,
            x,
            model.ar,
            model.ma,
            model.E,
            model.ridge,
            self._aAt1,
            self._K0,
            self._Cm,
            self._U,
            self._S0,
            self._Dpad,
            self._Dshift,
            self._band,
            params.mu_tol,
            params.res_tol,
            params.max_iter,
            params.step_fraction,
        )
        state = IpmState(q, w, x[:n].copy(), x[n:].copy())
        return IpmResult(state, int(it), status == CONVERGED, REASONS[status])
