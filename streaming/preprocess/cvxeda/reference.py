"""Batch cvxEDA QP with cvxopt's interior-point ``qp`` (the reference solve).

Variables ``x = [q; w]`` with ``w = [d; ℓ]`` the tonic coefficients:

    minimise  ½ xᵀ P x + cᵀ x   subject to  −A q ≤ 0

    P = [[MᵀM, MᵀE], [EᵀM, EᵀE + diag(ridge)]],   c = [α Aᵀ1 − Mᵀy; −Eᵀy]

which is ``½‖Mq + Ew − y‖² + α 1ᵀAq + (γ/2)‖ℓ‖²`` minus the constant ``½ yᵀy``. cvxopt's
default KKT solver and tolerances are used except ``reltol`` (:attr:`CvxEdaParams.reltol`,
1e-9 as in the authors' code): the same solve as the PyPI ``cvxeda`` package (same iterates to
~1e-10), with the matrices built straight from index arrays so that the benchmark baseline is
the solver, not Python-side matrix assembly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxopt
import cvxopt.solvers
import numpy as np

from affectstream.streaming.preprocess.cvxeda.model import (
    CvxEdaModel,
    FloatArray,
    lower_toeplitz_apply_t,
    mtm_band,
)

__all__ = ["QpSolution", "solve_cvxopt"]


@dataclass(frozen=True)
class QpSolution:
    """Raw solution of one QP: ``q`` shape (n,), ``w`` shape (m,)."""

    q: FloatArray
    w: FloatArray
    status: str
    iterations: int


def _hessian_lower(model: CvxEdaModel, U: FloatArray) -> cvxopt.spmatrix:
    """Lower triangle of ``P`` as a cvxopt sparse matrix (``qp`` reads only the lower triangle;
    the solution is bit-identical to passing the full matrix). Building the full matrix took
    longer than the solve at n = 1920: cvxopt's constructor is slow on long dense columns,
    and the ``MᵀE`` block is dense."""
    n, m = U.shape
    band = mtm_band(model.ma, n)
    # Column j < n: rows j, j+1, j+2 of MᵀM, then rows n … n+m−1 holding U[j, :].
    rows = np.empty((n, 3 + m), dtype=np.intp)
    vals = np.zeros((n, 3 + m))
    j = np.arange(n)
    rows[:, 0] = j
    rows[:, 1] = j + 1
    rows[:, 2] = j + 2
    vals[:, 0] = band[2]
    vals[:-1, 1] = band[1, 1:]
    vals[:-2, 2] = band[0, 2:]
    rows[:, 3:] = n + np.arange(m)
    vals[:, 3:] = U
    keep = (rows < n) | (np.arange(3 + m) >= 3)
    cols = np.broadcast_to(j[:, None], rows.shape)
    # Column n + b: rows n + b … n + m − 1 of EᵀE + diag(ridge).
    block = model.E.T @ model.E + np.diag(model.ridge)
    bi, bj = np.tril_indices(m)
    order = np.lexsort((bi, bj))  # column-major, as the q columns
    return cvxopt.spmatrix(
        cvxopt.matrix(np.concatenate([vals[keep], block[bi, bj][order]])),
        cvxopt.matrix(np.concatenate([rows[keep], n + bi[order]])),
        cvxopt.matrix(np.concatenate([cols[keep], n + bj[order]])),
        (n + m, n + m),
    )


def solve_cvxopt(model: CvxEdaModel, y: FloatArray) -> QpSolution:
    """Solve the cvxEDA QP for ``y`` (shape (n,)) with ``cvxopt.solvers.qp``.

    Raises
    ------
    ArithmeticError, ValueError
        As cvxopt does when its KKT system is singular.
    """
    n, E = model.n, model.E
    m = E.shape[1]
    U = np.column_stack([lower_toeplitz_apply_t(model.ma, E[:, j]) for j in range(m)])  # MᵀE
    P = _hessian_lower(model, U)
    # G = [−A, 0]: row i holds −ar[t] at column i − t.
    gi = np.concatenate([np.arange(t, n) for t in range(3)])
    gv = np.concatenate([np.full(n - t, -model.ar[t]) for t in range(3)])
    G = cvxopt.spmatrix(
        cvxopt.matrix(gv),
        cvxopt.matrix(gi),
        cvxopt.matrix(gi - np.repeat([0, 1, 2], [n, n - 1, n - 2])),
        (n, n + m),
    )
    c = np.concatenate(
        [
            model.params.alpha * lower_toeplitz_apply_t(model.ar, np.ones(n))
            - lower_toeplitz_apply_t(model.ma, y),
            -(E.T @ y),
        ]
    )
    result = cvxopt.solvers.qp(
        P,
        cvxopt.matrix(c),
        G,
        cvxopt.matrix(np.zeros(n)),
        options={"show_progress": False, "reltol": model.params.reltol},
    )
    x = np.asarray(result["x"]).ravel()
    return QpSolution(
        q=x[:n].copy(),
        w=x[n:].copy(),
        status=str(result["status"]),
        iterations=int(result["iterations"]),
    )
