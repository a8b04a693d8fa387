"""cvxEDA cost: the online solver against a from-scratch cvxopt solve, side by side.

For a segment length and decomposition rate, a trailing segment slides over the real
skin-conductance recording of ``tests/data`` (NeuroKit2 ``bio_eventrelated_100hz``, MIT, resampled
with scipy's polyphase anti-alias filter) in hops of 0.25 s. At every hop the same segment is
decomposed twice, interleaved so both see the same machine load:

- ``online``: ``OnlineCvxEda.update(hop)`` in steady state (warm start from the previous hop; the
  first, cold update is not timed), including z-scoring and mapping back;
- ``cvxopt``: ``cvxeda()`` on the z-scored segment from scratch (model matrices, cvxopt ``qp``),
  the reference the online solver is checked against.

Accuracy is the max deviation of tonic and phasic divided by the segment range, against the exact
optimum (the banded solver run to μ ≤ 1e-14, whose objective is below cvxopt's) for both, and
between the two. With ``compiled`` it also times the identical iteration compiled with numba (same
starting points, steps and stopping: the iteration counts are asserted equal).

Used by ``affectstream bench`` (section ``cvxeda_speedup``) and ``bench/cvxeda.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.signal as ss

from affectstream.streaming.preprocess.cvxeda.ipm import BandedIpm
from affectstream.streaming.preprocess.cvxeda.model import CvxEdaModel, lower_toeplitz_apply
from affectstream.streaming.preprocess.eda import OnlineCvxEda, cvxeda

__all__ = ["DATA", "PARAMS", "compiled_ipm_class", "load", "measure"]

DATA = Path(__file__).resolve().parents[2] / "tests/data/neurokit_eventrelated_eda_100hz.csv"
"""The recording (in a repository checkout; the benchmark needs it)."""
PARAMS = {"tau0": 2.0, "tau1": 0.7, "delta_knot": 10.0, "alpha": 8e-4, "gamma": 1e-2}


def load(fs: int) -> np.ndarray:
    """The benchmark's skin conductance at ``fs`` Hz (real recording; see the module docstring)."""
    eda = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=0)
    g = np.gcd(fs, 100)
    return np.asarray(ss.resample_poly(eda, fs // g, 100 // g, padtype="line"))


def deviation(
    tonic: np.ndarray,
    phasic: np.ndarray,
    tonic_ref: np.ndarray,
    phasic_ref: np.ndarray,
    span: float,
) -> float:
    return float(max(np.abs(tonic - tonic_ref).max(), np.abs(phasic - phasic_ref).max()) / span)


def measure(
    fs: int, length_s: int, hops: int, check_every: int, compiled: type[BandedIpm] | None
) -> dict[str, object]:
    y = load(fs)
    n, hop = length_s * fs, fs // 4
    hops = min(hops, (y.size - n) // hop)
    online = OnlineCvxEda(fs, length_s, solver="numpy", **PARAMS)
    online.update(y[:n])  # cold start, not timed
    fast = None
    if compiled is not None:
        fast = OnlineCvxEda(fs, length_s, solver="compiled", **PARAMS)
        fast.update(y[:n])
    t_fast: list[float] = []
    exact = BandedIpm(CvxEdaModel.build(n, fs, **PARAMS), mu_tol=1e-14, res_tol=1e-10)
    t_online, t_ref, iters, iters_ref = [], [], [], []
    dev_online, dev_ref, dev_between = [], [], []
    for k in range(1, hops + 1):
        chunk = y[n + (k - 1) * hop : n + k * hop]
        t0 = time.perf_counter()
        dec = online.update(chunk)
        t1 = time.perf_counter()
        segment = y[k * hop : n + k * hop]
        mean, std = segment.mean(), segment.std()
        z = (segment - mean) / std
        t2 = time.perf_counter()
        ref = cvxeda(z, fs, **PARAMS)
        t3 = time.perf_counter()
        if fast is not None:
            t4 = time.perf_counter()
            dec_fast = fast.update(chunk)
            t_fast.append(time.perf_counter() - t4)
            assert dec_fast.iterations == dec.iterations  # the same algorithm, step for step
        if not (dec.ok and ref.ok):
            raise RuntimeError(
                f"solve failed at hop {k}: online {dec.fallback}, cvxopt {ref.fallback}"
            )
        t_online.append(t1 - t0)
        t_ref.append(t3 - t2)
        iters.append(dec.iterations)
        iters_ref.append(ref.iterations)
        if k % check_every == 0 or k == hops:  # at least one accuracy check
            span = float(np.ptp(z))
            on_t, on_p = (dec.tonic - mean) / std, dec.phasic / std
            dev_between.append(deviation(on_t, on_p, ref.tonic, ref.phasic, span))
            res = exact.solve(z, exact.cold_start(z))
            model = exact.model
            ex_t = model.E @ res.state.w
            ex_p = lower_toeplitz_apply(model.ma, res.state.q)
            dev_online.append(deviation(on_t, on_p, ex_t, ex_p, span))
            dev_ref.append(deviation(ref.tonic, ref.phasic, ex_t, ex_p, span))
    ms_online = 1e3 * float(np.median(t_online))
    ms_ref = 1e3 * float(np.median(t_ref))
    extra: dict[str, object] = {}
    if t_fast:
        ms_fast = 1e3 * float(np.median(t_fast))
        extra = {
            "compiled_ms_median": round(ms_fast, 3),
            "compiled_speedup_median": round(ms_ref / ms_fast, 2),
        }
    return {
        "rate_hz": fs,
        "segment_s": length_s,
        "n": n,
        "hops": hops,
        "hop_s": hop / fs,
        "online_ms_median": round(ms_online, 3),
        "online_ms_p90": round(1e3 * float(np.percentile(t_online, 90)), 3),
        "online_iterations_mean": round(float(np.mean(iters)), 2),
        "cvxopt_ms_median": round(ms_ref, 3),
        "cvxopt_ms_p90": round(1e3 * float(np.percentile(t_ref, 90)), 3),
        "cvxopt_iterations_mean": round(float(np.mean(iters_ref)), 2),
        "speedup_median": round(ms_ref / ms_online, 2),
        "online_dev_vs_exact_max": float(f"{max(dev_online):.2g}"),
        "cvxopt_dev_vs_exact_max": float(f"{max(dev_ref):.2g}"),
        "online_dev_vs_cvxopt_max": float(f"{max(dev_between):.2g}"),
        **extra,
    }


def compiled_ipm_class() -> type[BandedIpm]:
    """The numba-compiled solver (``streaming/preprocess/_cvxeda_numba.py``)."""
    from affectstream.streaming.preprocess.cvxeda.compiled import compiled_ipm_class as get

    cls = get()
    if cls is None:
        raise RuntimeError("the compiled solver needs numba")
    return cls
