"""The numba build of the cvxEDA iteration: :func:`~.ipm.iterate` itself, compiled.

Importing this module needs numba. It tells numba to compile, wherever
:func:`~affectstream.streaming.preprocess.cvxeda.ipm.iterate` calls one of the numpy/LAPACK
kernels, the loop twin listed in :data:`~affectstream.streaming.preprocess.cvxeda.ipm.COMPILED_AS`
(``numba.extending.overload``), and wraps the unchanged ``iterate`` with ``numba.njit``. The
compiled code is cached on disk beside ``ipm.py`` (``cache=True``): the first process compiles
(~10 s), later ones load it. :mod:`~affectstream.streaming.preprocess.cvxeda.compiled` decides
when to import this module.

The compiled functions release the interpreter lock while they run (``nogil=True``): an update
(~0.3-1 ms) is the longest stretch of work in the service's scheduler thread, and the
acquisition loop, the event loop and the other sessions' Python run meanwhile. (numba's on-disk
cache does not key on this option: a cache compiled before it would be loaded as is, holding the
lock; delete ``__pycache__/*.nbi``/``*.nbc`` beside ``ipm.py`` after changing it.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numba
from numba.extending import overload

from affectstream.streaming.preprocess.cvxeda.ipm import (
    COMPILED_AS,
    BandedIpm,
    finish,
    start_point,
    warm_point,
)
from affectstream.streaming.preprocess.cvxeda.ipm import iterate as plain_iterate

__all__ = ["CompiledIpm", "compiled_finish", "compiled_start", "compiled_warm", "iterate"]


def _compiled_as(impl: Callable[..., Any]) -> Callable[..., Callable[..., Any]]:
    """numba typing function that selects ``impl`` for any argument types. ``functools.wraps``
    gives it ``impl``'s signature, which numba requires of the typing function."""

    @functools.wraps(impl)
    def typing(*args: Any) -> Callable[..., Any]:
        return impl

    return typing


for _plain, _impl in COMPILED_AS.items():
    overload(_plain)(_compiled_as(_impl))

#: :func:`~affectstream.streaming.preprocess.cvxeda.ipm.iterate`, compiled at its first call (or
#: loaded from numba's on-disk cache).
iterate = numba.njit(cache=True, nogil=True)(plain_iterate)
#: :func:`~affectstream.streaming.preprocess.cvxeda.ipm.start_point`,
#: :func:`~affectstream.streaming.preprocess.cvxeda.ipm.warm_point` and
#: :func:`~affectstream.streaming.preprocess.cvxeda.ipm.finish`, compiled the same way.
compiled_start = numba.njit(cache=True, nogil=True)(start_point)
compiled_warm = numba.njit(cache=True, nogil=True)(warm_point)
compiled_finish = numba.njit(cache=True, nogil=True)(finish)


class CompiledIpm(BandedIpm):
    """:class:`~affectstream.streaming.preprocess.cvxeda.ipm.BandedIpm` running the compiled
    iteration (same starting points, steps and stopping; same iteration counts)."""

    iteration = staticmethod(iterate)
    start = staticmethod(compiled_start)
    warm = staticmethod(compiled_warm)
    finish = staticmethod(compiled_finish)
