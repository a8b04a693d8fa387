"""The parameters of the cvxEDA solver family, in one frozen object with their defaults.

Every part of the family reads them from here: the model matrices
(:class:`~affectstream.streaming.preprocess.cvxeda.model.CvxEdaModel`), the interior-point
iteration (:mod:`~affectstream.streaming.preprocess.cvxeda.ipm`, plain and compiled), the cvxopt
reference (:mod:`~affectstream.streaming.preprocess.cvxeda.reference`), the public entry points
in :mod:`affectstream.streaming.preprocess.eda` and the benchmark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["CvxEdaParams"]


@dataclass(frozen=True, slots=True)
class CvxEdaParams:
    """Model and solver parameters of cvxEDA (Greco et al. 2016).

    Model (the defaults are those of the authors' code):

    Attributes
    ----------
    tau0, tau1 : float
        Time constants (s) of the biexponential impulse response from the sudomotor driver to
        the phasic component; distinct and positive (their order does not matter).
    delta_knot : float
        Spacing (s) of the knots of the tonic cubic spline.
    alpha : float
        Weight of the L1 penalty on the driver (its sparsity), ≥ 0.
    gamma : float
        Ridge penalty on the spline coefficients (tonic smoothness), ≥ 0.

    Interior-point iteration of the online solver:

    mu_tol : float
        Stop when the average complementarity ``sᵀλ / n`` is at most this. The requirement
        (issue #16) is tonic and phasic within 1e-3 of the segment range of the exact optimum;
        the deviation grows about as ``sqrt(mu_tol)``. Measured on 0.25-s hops over 30-s
        segments at 16 Hz (200 hops each of the real event-related recording and of
        synthetic DEAP GSR): 1e-7 leaves at most 3.4e-4 (median 6e-5–9e-5) in 6.1–6.3 warm
        iterations; 3e-7 already 1.3e-3 on the synthetic trace, 1e-6 2.8e-3; the earlier
        3e-9 left 2.9e-5 in 7.8–8.1 iterations (cvxopt's own stopping leaves 3e-6–1.2e-5).
        Lower values also make the normal equations worse conditioned: ``λ/s`` spans more
        decades.
    res_tol : float
        ... and the max-norm of the dual residuals (gradient of the Lagrangian) is at most this
        (1e-5; at ``mu_tol`` 1e-7, 1e-6 and 1e-4 gave the same deviations, 6.5 and 6.1
        iterations).
    max_iter : int
        Give up after this many iterations (the online solver then restarts cold, then asks
        the reference); at the default tolerances warm starts take about 6 (at most 14
        measured), cold starts 11–15.
    step_fraction : float
        Fraction of the distance to the boundary of ``s, λ ≥ 0`` taken by each step (a common
        value; 0.995 and 0.999 gave the same iteration counts).
    lift : float
        Warm start: every driver and multiplier entry is raised to at least this × its mean. A
        start that close to the previous boundary stalls Mehrotra's steps (on real data, at
        ``mu_tol`` 3e-9: 7–10 iterations at 0.3, 9–13 at 0.1, 17–40 from a perfectly centred
        point; at 1e-7, 0.1, 0.2, 0.3 and 0.5 all took 6.1–6.4 on average).

    Reference solve:

    reltol : float
        cvxopt's relative duality-gap tolerance (the authors' code sets 1e-9; cvxopt's other
        tolerances keep their defaults).
    """

    tau0: float = 2.0
    tau1: float = 0.7
    delta_knot: float = 10.0
    alpha: float = 8e-4
    gamma: float = 1e-2
    mu_tol: float = 1e-7
    res_tol: float = 1e-5
    max_iter: int = 50
    step_fraction: float = 0.99
    lift: float = 0.3
    reltol: float = 1e-9

    def __post_init__(self) -> None:
        if not (self.tau0 > 0 and self.tau1 > 0 and self.tau0 != self.tau1):
            raise ValueError(
                f"need distinct positive time constants, got tau0={self.tau0}, tau1={self.tau1}"
            )
        for name in ("delta_knot", "mu_tol", "res_tol", "reltol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("alpha", "gamma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 < self.step_fraction < 1:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction}")
        if not 0 <= self.lift < 1:
            raise ValueError(f"lift must be in [0, 1), got {self.lift}")
        if self.max_iter != int(self.max_iter) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter}")
        # An integral float (feature options are floats) is stored as the int it stands for.
        object.__setattr__(self, "max_iter", int(self.max_iter))

    def replace(self, **changes: float) -> CvxEdaParams:
        """A copy with the named fields changed (``TypeError`` for an unknown name)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
