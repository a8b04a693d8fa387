"""The cvxEDA solver family: one QP (Greco et al. 2016, "cvxEDA: a convex optimization approach
to electrodermal activity processing", IEEE TBME 63(4)), one parameter object, one iteration, two
ways to run it, and a reference.

- :mod:`.params`: :class:`~.params.CvxEdaParams`, every model and solver parameter with its
  default (time constants, knot spacing, ``alpha``, ``gamma``; the interior point's stopping
  tolerances, iteration limit, step fraction and warm-start lift; the reference's ``reltol``).
- :mod:`.model`: the QP's matrices for a segment length and sampling rate
  (:class:`~.model.CvxEdaModel`), written from the paper's equations.
- :mod:`.ipm`: the online solver, Mehrotra's predictor-corrector exploiting the band structure.
  The iteration (:func:`~.ipm.iterate`) is written once; from Python it runs on numpy/LAPACK
  kernels (:class:`~.ipm.BandedIpm`).
- :mod:`.jit`: that same function compiled with numba, each kernel replaced by its loop twin from
  :data:`~.ipm.COMPILED_AS` (:class:`~.jit.CompiledIpm`; same iteration counts, same results to
  rounding, 3–4× faster per update). :mod:`.compiled` decides when it is used: compiled once
  per process, in the background on a live path, and never required (numba is optional at run
  time).
- :mod:`.reference`: the same QP solved by cvxopt's ``qp``, matching the authors' published code;
  the reference for parity tests, the online solver's rescue, and the benchmark's baseline.

The public entry points are in :mod:`affectstream.streaming.preprocess.eda`: ``cvxeda()`` (batch,
the reference) and ``OnlineCvxEda`` (trailing segment of a stream, the online solver).
"""
