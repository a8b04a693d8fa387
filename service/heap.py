"""The garbage collector after start-up: what the service has built by then is set aside.

CPython's cyclic garbage collector stops the whole process (it holds the interpreter lock) for a
full collection, which walks every tracked object. A started service tracks some 205 000 of them
(functions, tuples, dicts, types: the modules, FastAPI's routes and schemas, the models' ONNX
Runtime wrappers, scipy and numba), almost all alive until the process ends. Measured on a
2-core AMD EPYC machine (``affectstream bench``, 30 s runs), a full collection took 160-165 ms at
one lab session (about one every 45 s) and 180-220 ms at 12 lab sessions (more often: every
prediction allocates), and while it runs no window is collected, no model runs and no message
goes out (#16).

:func:`freeze_heap` runs one collection and then moves every object alive to the collector's
permanent generation (:func:`gc.freeze`), which later collections skip: after it, the full
collections took ~3 ms at one lab session and 15-18 ms at 12 (same machine; 12 lab sessions,
two runs each: p99 595 and 241 ms before, 175 and 154 ms after). ``serve`` calls it once the
service has started and before any session exists, ``worker`` once its models are loaded, so
what is frozen lives as long as the process anyway. The cost: an object alive at that moment
that becomes cyclic garbage later is never freed (e.g. some of the state of the cvxEDA's JIT
compile, which runs in the background from start-up) — a bounded, one-time amount, not a
growing one. The hub's resume buffer keeps its predictions in a form the collector does not
track (:data:`affectstream.service.hub.KeptPrediction`), the largest share of what is left.
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["freeze_heap"]

log = logging.getLogger(__name__)


def freeze_heap() -> int:
    """Collect, then freeze every object alive (see the module docstring); returns how many
    objects are frozen in all."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "%d objects set aside from garbage collection after start-up (%.0f ms)",
        frozen,
        (time.perf_counter() - t0) * 1000,
    )
    return frozen
