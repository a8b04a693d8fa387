"""When the compiled cvxEDA iteration is used: compile it once per process, in the background
on a live path.

:class:`~affectstream.streaming.preprocess.cvxeda.jit.CompiledIpm` runs the same iteration as
:class:`~affectstream.streaming.preprocess.cvxeda.ipm.BandedIpm`, compiled with numba; at the
segment sizes of online cvxEDA (160–1920 samples) it is 3–4× faster per update, because the
numpy/LAPACK run spends most of its time in Python and BLAS call overhead. numba is a dependency
but optional at run time: without it (or if compiling fails) these functions return ``None`` and
the numpy/LAPACK run is used. This module does not import numba itself.
"""

from __future__ import annotations

import functools
import logging
import threading

import numpy as np

from affectstream.streaming.preprocess.cvxeda.ipm import BandedIpm
from affectstream.streaming.preprocess.cvxeda.model import CvxEdaModel
from affectstream.streaming.preprocess.cvxeda.params import CvxEdaParams

__all__ = ["compiled_if_ready", "compiled_ipm_class", "compiled_ready"]

log = logging.getLogger(__name__)


@functools.cache
def compiled_ipm_class() -> type[BandedIpm] | None:
    """``CompiledIpm``, compiled now (~10 s on the first call in a process when numba's disk
    cache is cold, well under that when it is warm), or ``None`` without numba."""
    try:
        from affectstream.streaming.preprocess.cvxeda.jit import CompiledIpm
    except ImportError:
        log.info("numba is not installed: online cvxEDA uses the numpy/LAPACK kernels")
        return None
    _warm_up(CompiledIpm)  # numba compiles at the first call: do it here, not in a live update
    return CompiledIpm


_ready = threading.Event()
_started = threading.Lock()
_compiling: list[threading.Thread] = []


def compiled_ready() -> bool:
    """Whether :func:`compiled_if_ready` returns the compiled class now."""
    return _ready.is_set()


def compiled_if_ready() -> type[BandedIpm] | None:
    """The compiled class if it is compiled already; otherwise start compiling it in a background
    thread (once) and return ``None`` meanwhile, so that a caller on a live path (the service's
    scheduler) never waits for the JIT: it uses the numpy/LAPACK run until then."""
    if _ready.is_set():
        return compiled_ipm_class()
    with _started:
        if not _compiling:
            t = threading.Thread(target=_compile_in_background, name="cvxeda-jit", daemon=True)
            _compiling.append(t)
            t.start()
    return None


def _compile_in_background() -> None:
    try:
        if compiled_ipm_class() is not None:
            _ready.set()
    except Exception:  # a failed compile leaves the numpy/LAPACK run in use
        log.exception("compiling the cvxEDA iteration failed; the numpy/LAPACK run stays in use")


def _warm_up(cls: type[BandedIpm]) -> None:
    """One small cold solve, one warm one and the mapping back: compiles for the argument types
    every update passes."""
    model = CvxEdaModel.build(48, 16.0, CvxEdaParams())
    solver = cls(model)
    y = np.linspace(-1.0, 1.0, 48)
    cold = solver.solve(y, solver.cold_start(y))
    st = solver.solve(y, solver.warm_start(y, cold.state, 1, 1.0)).state
    solver.finish(y, st.q, st.w, st.s, model.ma, model.E, model.ridge, 8e-4, 0.0, 1.0)
