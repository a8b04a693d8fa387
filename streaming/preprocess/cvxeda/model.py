"""The cvxEDA model matrices (Greco et al. 2016), written from the paper's equations.

Skin conductance ``y`` (n samples at ``fs`` Hz) = phasic ``r`` + tonic ``t`` + white noise, with

- phasic ``r = M q`` and sparse non-negative SMNA driver ``p = A q``: ``A`` (AR) and ``M`` (MA)
  are the lower-triangular banded Toeplitz matrices of the bilinear-transform discretisation of
  the biexponential (Bateman) impulse response with time constants ``tau0`` and ``tau1``,
  so ``r = M A⁻¹ p`` is ``p`` filtered by that impulse response;
- tonic ``t = B ℓ + C d``: ``B`` a cubic B-spline basis with a knot every ``delta_knot`` s
  (ridge penalty ``γ`` on ``ℓ``) and ``C = [1, drift]`` an unpenalised offset and linear drift.

Matched variant: the 2025 revision of the authors' code as published on PyPI (``cvxeda==1.1.0``,
``baseline_correction=2``): ``A`` and ``M`` keep their first two rows (the filter starts from
rest, so the first driver samples absorb the response already under way when the segment
starts), and one more knot is added at the end when the last sample lies at least half a knot
interval past the last regular knot. The 2015 code and NeuroKit2's copy instead zero the first
two rows of ``A`` and ``M`` and never add the end knot; they differ from this by up to a few %
of the range near the segment end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from affectstream.streaming.preprocess.cvxeda.params import CvxEdaParams

__all__ = [
    "CvxEdaModel",
    "FloatArray",
    "arma_taps",
    "knot_spacing",
    "lower_toeplitz_apply",
    "lower_toeplitz_apply_t",
    "mtm_band",
    "spline_kernel",
    "spline_knots",
    "tonic_basis",
]

FloatArray = NDArray[np.float64]


def arma_taps(fs: float, tau0: float, tau1: float) -> tuple[FloatArray, FloatArray]:
    """AR and MA taps of the discretised biexponential impulse response.

    Bilinear (Tustin) transform of ``1 / ((s + a0)(s + a1))`` with ``a1 = 1/min(τ0, τ1)``,
    ``a0 = 1/max(τ0, τ1)`` and step ``δ = 1/fs``; the common gain ``1/((a1 − a0) δ²)`` is put
    on the AR side so that the MA taps are exactly ``[1, 2, 1]``.

    Returns
    -------
    ar : ndarray, shape (3,)
        ``A[i, i - j] = ar[j]``; ``p = A q``.
    ma : ndarray, shape (3,)
        ``M[i, i - j] = ma[j]``; ``r = M q``.
    """
    if not (tau0 > 0 and tau1 > 0 and tau0 != tau1):
        raise ValueError(f"need distinct positive time constants, got tau0={tau0}, tau1={tau1}")
    delta = 1.0 / fs
    a1 = 1.0 / min(tau0, tau1)
    a0 = 1.0 / max(tau0, tau1)
    gain = (a1 - a0) * delta**2
    ar = np.array(
        [
            (a1 * delta + 2.0) * (a0 * delta + 2.0),
            2.0 * a1 * a0 * delta**2 - 8.0,
            (a1 * delta - 2.0) * (a0 * delta - 2.0),
        ]
    )
    return ar / gain, np.array([1.0, 2.0, 1.0])


def knot_spacing(fs: float, delta_knot: float) -> int:
    """Samples between spline knots, ``round(delta_knot · fs)`` (at least 1)."""
    return max(1, round(delta_knot * fs))


def spline_knots(n: int, k: int) -> NDArray[np.intp]:
    """Knot sample indices ``0, k, 2k, …`` below ``n``, plus one more knot ``k`` further when
    the last sample (index ``n − 1``) lies at least ``k/2`` past the last of them (the 2025
    end-knot rule; probed on ``cvxeda==1.1.0`` for even and odd ``k``)."""
    knots = np.arange(0, n, k)
    if (n - 1) - knots[-1] >= k / 2.0:
        knots = np.append(knots, knots[-1] + k)
    return knots


def spline_kernel(k: int) -> FloatArray:
    """Cubic B-spline sampled every sample for knot spacing ``k``, peak normalised to 1.

    A triangle of half-width ``k`` (length ``2k − 1``) convolved with itself.

    Returns
    -------
    ndarray, shape (4k − 3,)
        Peak (value 1) at index ``2k − 2``.
    """
    tri = np.r_[np.arange(1.0, k), np.arange(float(k), 0.0, -1.0)]
    spl: FloatArray = np.convolve(tri, tri)
    return spl / float(spl.max())


def tonic_basis(n: int, fs: float, delta_knot: float) -> FloatArray:
    """Tonic design matrix ``E = [C | B]``.

    Returns
    -------
    ndarray, shape (n, 2 + n_knots)
        Column 0 all ones, column 1 the drift ``(i + 1)/n`` (as the reference; the span, hence
        the decomposition, is the same as for ``i/n``), then one spline column per knot,
        truncated to the segment.
    """
    k = knot_spacing(fs, delta_knot)
    knots = spline_knots(n, k)
    kernel = spline_kernel(k)
    E = np.zeros((n, 2 + knots.size))
    E[:, 0] = 1.0
    E[:, 1] = np.arange(1, n + 1) / n
    half = 2 * k - 2
    for j, knot in enumerate(knots):
        lo, hi = max(0, knot - half), min(n, knot + half + 1)
        E[lo:hi, 2 + j] = kernel[lo - (knot - half) : hi - (knot - half)]
    return E


def lower_toeplitz_apply(taps: FloatArray, x: FloatArray) -> FloatArray:
    """``T x`` for the lower-triangular banded Toeplitz ``T[i, i − j] = taps[j]``."""
    return np.convolve(x, taps)[: x.size]


def lower_toeplitz_apply_t(taps: FloatArray, x: FloatArray) -> FloatArray:
    """``Tᵀ x`` for the same ``T``."""
    return np.convolve(x[::-1], taps)[: x.size][::-1]


def mtm_band(ma: FloatArray, n: int) -> FloatArray:
    """``MᵀM`` in LAPACK upper band storage, shape (3, n): ``[2, j]`` the diagonal,
    ``[1, j] = (MᵀM)[j − 1, j]``, ``[0, j] = (MᵀM)[j − 2, j]`` (unused corners zero)."""
    band = np.zeros((3, n))
    band[2] = ma @ ma
    band[2, n - 2] = ma[0] ** 2 + ma[1] ** 2
    band[2, n - 1] = ma[0] ** 2
    band[1, 1:] = ma[0] * ma[1] + ma[1] * ma[2]
    band[1, n - 1] = ma[0] * ma[1]
    band[0, 2:] = ma[0] * ma[2]
    return band


@dataclass(frozen=True, eq=False)
class CvxEdaModel:
    """Everything about the QP that depends only on the segment length and the parameters.

    Attributes
    ----------
    n : int
        Samples in the segment.
    fs : float
        Sampling rate (Hz).
    params : CvxEdaParams
        The parameters it was built with (the solvers read their settings from here too).
    ar, ma : ndarray, shape (3,)
        Taps of ``A`` and ``M`` (see :func:`arma_taps`).
    E : ndarray, shape (n, m)
        Tonic basis ``[C | B]``, ``m = 2 + n_knots``.
    ridge : ndarray, shape (m,)
        Diagonal of the penalty on the tonic coefficients: 0 for ``C``, ``gamma`` for ``B``.
    """

    n: int
    fs: float
    params: CvxEdaParams
    ar: FloatArray
    ma: FloatArray
    E: FloatArray
    ridge: FloatArray

    @classmethod
    def build(cls, n: int, fs: float, params: CvxEdaParams) -> CvxEdaModel:
        """Model for ``n`` samples at ``fs`` Hz.

        Raises
        ------
        ValueError
            If ``n < 3`` or ``fs ≤ 0``.
        """
        if n < 3:
            raise ValueError(f"cvxEDA needs at least 3 samples, got {n}")
        if not fs > 0:
            raise ValueError(f"need fs > 0, got {fs}")
        ar, ma = arma_taps(fs, params.tau0, params.tau1)
        E = tonic_basis(n, fs, params.delta_knot)
        ridge = np.full(E.shape[1], float(params.gamma))
        ridge[:2] = 0.0
        return cls(n=n, fs=float(fs), params=params, ar=ar, ma=ma, E=E, ridge=ridge)

    def objective(self, y: FloatArray, q: FloatArray, w: FloatArray) -> float:
        """``½‖Mq + Ew − y‖² + α·1ᵀAq + ½ wᵀ diag(ridge) w``."""
        e = lower_toeplitz_apply(self.ma, q) + self.E @ w - y
        p = lower_toeplitz_apply(self.ar, q)
        return float(0.5 * e @ e + self.params.alpha * p.sum() + 0.5 * (self.ridge * w) @ w)
