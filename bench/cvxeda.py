"""cvxEDA cost benchmark: the online solver against a from-scratch cvxopt solve, side by side.

For each segment length (10, 20, 30, 60 s) and decomposition rate (16, 32 Hz), a trailing
segment slides over the real skin-conductance recording of ``tests/data`` (NeuroKit2
``bio_eventrelated_100hz``, resampled with scipy's polyphase anti-alias filter) in hops of
0.25 s. At every hop the same segment is decomposed twice, interleaved so both see the same
machine load:

- ``online``: ``OnlineCvxEda.update(hop)`` in steady state (warm start from the previous hop;
  the first, cold update is not timed), including z-scoring and mapping back;
- ``cvxopt``: ``cvxeda()`` on the z-scored segment from scratch (model matrices, cvxopt
  ``qp``), the reference the online solver is checked against.

Accuracy is the max deviation of tonic and phasic divided by the segment range, against the
exact optimum (the banded solver run to μ ≤ 1e-14, whose objective is below cvxopt's) for
both, and between the two. The target is online ≥ 10× faster at equal accuracy (within ~1e-4
of the range of the reference).

With ``--compiled`` it also times the identical iteration compiled with numba (same starting
points, steps and stopping: the iteration counts are asserted equal), to show how much of the
online cost is Python and OpenBLAS call overhead. numba is not a project dependency; install it
in the environment to use the flag.

Prints a JSON document and writes ``bench/results/cvxeda-<date>-<host>.json`` (``…-compiled.json``
with ``--compiled``).

Usage: ``python bench/cvxeda.py [--hops 80] [--rates 16,32] [--lengths 10,20,30,60]
[--compiled]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cvxopt  # noqa: E402
import scipy  # noqa: E402
import scipy.signal as ss  # noqa: E402

from streaming.preprocess._cvxeda_ipm import BandedIpm  # noqa: E402
from streaming.preprocess._cvxeda_model import CvxEdaModel, lower_toeplitz_apply  # noqa: E402
from streaming.preprocess.eda import OnlineCvxEda, cvxeda  # noqa: E402

DATA = REPO / "tests" / "data" / "neurokit_eventrelated_eda_100hz.csv"
PARAMS = {"tau0": 2.0, "tau1": 0.7, "delta_knot": 10.0, "alpha": 8e-4, "gamma": 1e-2}


def load(fs: int) -> np.ndarray:
    eda = np.loadtxt(DATA, delimiter=",", skiprows=1, usecols=0)
    g = np.gcd(fs, 100)
    return np.asarray(ss.resample_poly(eda, fs // g, 100 // g, padtype="line"))


def deviation(tonic: np.ndarray, phasic: np.ndarray, tonic_ref: np.ndarray,
              phasic_ref: np.ndarray, span: float) -> float:  # fmt: skip
    return float(max(np.abs(tonic - tonic_ref).max(), np.abs(phasic - phasic_ref).max()) / span)


def measure(
    fs: int, length_s: int, hops: int, check_every: int, compiled: type[BandedIpm] | None
) -> dict[str, object]:
    y = load(fs)
    n, hop = length_s * fs, fs // 4
    hops = min(hops, (y.size - n) // hop)
    online = OnlineCvxEda(fs, length_s, **PARAMS)
    online.update(y[:n])  # cold start, not timed
    fast = None
    if compiled is not None:
        fast = OnlineCvxEda(fs, length_s, **PARAMS)
        fast._solvers[n] = compiled(CvxEdaModel.build(n, fs, **PARAMS))
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
            raise SystemExit(
                f"solve failed at hop {k}: online {dec.fallback}, cvxopt {ref.fallback}"
            )
        t_online.append(t1 - t0)
        t_ref.append(t3 - t2)
        iters.append(dec.iterations)
        iters_ref.append(ref.iterations)
        if k % check_every == 0:
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


# -- optional: the same algorithm as a compiled loop (needs numba; not a project dependency) --
def compiled_ipm_class() -> type[BandedIpm]:
    """``BandedIpm`` whose ``solve`` runs the identical Mehrotra iteration (same start, steps,
    stopping) as one numba-compiled loop with a hand-written pentadiagonal Cholesky, to measure
    how much of the online cost is Python and OpenBLAS call overhead."""
    import math

    from numba import njit

    from streaming.preprocess import _cvxeda_ipm as ipm

    @njit(cache=True)
    def toeplitz(x, taps, out, transpose):  # type: ignore[no-untyped-def]
        n = x.size
        if transpose:  # out = Tᵀx
            for i in range(n - 2):
                out[i] = taps[0] * x[i] + taps[1] * x[i + 1] + taps[2] * x[i + 2]
            out[n - 2] = taps[0] * x[n - 2] + taps[1] * x[n - 1]
            out[n - 1] = taps[0] * x[n - 1]
        else:  # out = Tx
            out[0] = taps[0] * x[0]
            out[1] = taps[0] * x[1] + taps[1] * x[0]
            for i in range(2, n):
                out[i] = taps[0] * x[i] + taps[1] * x[i - 1] + taps[2] * x[i - 2]

    @njit(cache=True)
    def kernel(  # type: ignore[no-untyped-def]
        y, q, w, s, lam, ar, ma, E, ridge, aAt1, K0, U, S0, mu_tol, res_tol, max_it, frac
    ):
        n, m = y.size, w.size
        c = (ar[0] ** 2, ar[1] ** 2, ar[2] ** 2, ar[0] * ar[1], ar[1] * ar[2], ar[0] * ar[2])
        D = np.zeros(n + 2)
        inv0, l1, l2 = np.empty(n), np.zeros(n), np.zeros(n)  # row i of L: l2, l1, 1/inv0
        V, Ls = np.empty((n, m)), np.zeros((m, m))
        f, g, rq, rw, tmp = np.empty(n), np.empty(n), np.empty(n), np.empty(m), np.empty(n)
        t, dq, dw, ds, dl, cc = (np.empty(n), np.empty(n), np.empty(m), np.empty(n),
                                 np.empty(n), np.empty(n))  # fmt: skip
        rhs = np.empty(m)

        def residuals() -> None:
            toeplitz(q, ma, f, False)
            for i in range(n):
                v = f[i] - y[i]
                for j in range(m):
                    v += E[i, j] * w[j]
                f[i] = v
            toeplitz(f, ma, g, True)
            toeplitz(lam, ar, tmp, True)
            for i in range(n):
                g[i] += aAt1[i]
                rq[i] = g[i] - tmp[i]
            for j in range(m):
                rw[j] = ridge[j] * w[j]
            for i in range(n):
                for j in range(m):
                    rw[j] += E[i, j] * f[i]

        def newton(a: np.ndarray, b: np.ndarray) -> None:
            t[0] = a[0] * inv0[0]
            t[1] = (a[1] - l1[1] * t[0]) * inv0[1]
            for i in range(2, n):
                t[i] = (a[i] - l1[i] * t[i - 1] - l2[i] * t[i - 2]) * inv0[i]
            rhs[:] = b - np.dot(t, V)
            for j in range(m):  # Ls Lsᵀ dw = rhs
                v = rhs[j]
                for k in range(j):
                    v -= Ls[j, k] * rhs[k]
                rhs[j] = v / Ls[j, j]
            for j in range(m - 1, -1, -1):
                v = rhs[j]
                for k in range(j + 1, m):
                    v -= Ls[k, j] * dw[k]
                dw[j] = v / Ls[j, j]
            tmp[:] = t - np.dot(V, dw)
            dq[n - 1] = tmp[n - 1] * inv0[n - 1]
            dq[n - 2] = (tmp[n - 2] - l1[n - 1] * dq[n - 1]) * inv0[n - 2]
            for i in range(n - 3, -1, -1):
                dq[i] = (tmp[i] - l1[i + 1] * dq[i + 1] - l2[i + 2] * dq[i + 2]) * inv0[i]

        def max_step() -> float:
            worst = 0.0
            for i in range(n):
                r1 = ds[i] / s[i]
                r2 = dl[i] / lam[i]
                if r1 < worst:
                    worst = r1
                if r2 < worst:
                    worst = r2
            return 1.0 if worst >= -1.0 else -1.0 / worst

        residuals()
        fresh = True
        for it in range(max_it + 1):
            mu = s @ lam / n
            if mu <= mu_tol:
                if not fresh:
                    residuals()
                    fresh = True
                if max(np.max(np.abs(rq)), np.max(np.abs(rw))) <= res_tol:
                    return it, 0
            if it == max_it:
                break
            D[:n] = lam / s
            for i in range(n):  # pentadiagonal Cholesky of MᵀM + AᵀDA
                d = K0[2, i] + c[0] * D[i] + c[1] * D[i + 1] + c[2] * D[i + 2]
                a2 = (K0[0, i] + c[5] * D[i]) * inv0[i - 2] if i >= 2 else 0.0
                a1 = 0.0
                if i >= 1:
                    a1 = (K0[1, i] + c[3] * D[i] + c[4] * D[i + 1] - a2 * l1[i - 1]) * inv0[i - 1]
                d -= a1 * a1 + a2 * a2
                if d <= 0.0:
                    return it, 1
                inv0[i], l1[i], l2[i] = 1.0 / math.sqrt(d), a1, a2
            for j in range(m):  # V = L⁻¹U: the m columns advance together (independent chains)
                V[0, j] = U[0, j] * inv0[0]
                V[1, j] = (U[1, j] - l1[1] * V[0, j]) * inv0[1]
            for i in range(2, n):
                for j in range(m):
                    V[i, j] = (U[i, j] - l1[i] * V[i - 1, j] - l2[i] * V[i - 2, j]) * inv0[i]
            S = S0 - np.dot(V.T, V)
            for j in range(m):
                for k in range(j + 1):
                    v = S[j, k]
                    for p in range(k):
                        v -= Ls[j, p] * Ls[k, p]
                    if j == k:
                        if v <= 0.0:
                            return it, 2
                        Ls[j, j] = math.sqrt(v)
                    else:
                        Ls[j, k] = v / Ls[k, k]
            newton(g, rw)  # predictor; dq, dw hold −(Δq, Δw) as in BandedIpm.solve
            toeplitz(dq, ar, ds, False)
            dl[:] = D[:n] * ds - lam
            ds[:] = -ds
            step = max_step()
            mu_aff = 0.0
            for i in range(n):
                mu_aff += (s[i] + step * ds[i]) * (lam[i] + step * dl[i])
            sigma = (mu_aff / n / mu) ** 3
            for i in range(n):
                cc[i] = (ds[i] * dl[i] - sigma * mu) / s[i]
            toeplitz(cc, ar, tmp, True)
            for i in range(n):
                tmp[i] += g[i]
            newton(tmp.copy(), rw)  # corrector
            toeplitz(dq, ar, ds, False)
            dl[:] = D[:n] * ds - lam - cc
            ds[:] = -ds
            step = min(1.0, frac * max_step())
            s += step * ds
            lam += step * dl
            q -= step * dq
            w -= step * dw
            rq *= 1.0 - step
            rw *= 1.0 - step
            toeplitz(lam, ar, tmp, True)
            g[:] = rq + tmp
            fresh = False
        return max_it, 3

    reasons = ("converged", "cholesky", "schur", "max-iter")

    class CompiledIpm(BandedIpm):
        def solve(self, y: np.ndarray, start: ipm.IpmState) -> ipm.IpmResult:
            m = self.model
            q, w, s, lam = (a.copy() for a in (start.q, start.w, start.s, start.lam))
            it, status = kernel(
                np.ascontiguousarray(y), q, w, s, lam, m.ar, m.ma, np.ascontiguousarray(m.E),
                m.ridge, self._aAt1, self._K0, np.ascontiguousarray(self._U), self._S0,
                self.mu_tol, self.res_tol, self.max_iter, ipm.STEP_FRACTION,
            )  # fmt: skip
            return ipm.IpmResult(ipm.IpmState(q, w, s, lam), it, status == 0, reasons[status])

    return CompiledIpm


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem: int | None = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        mem = None
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cvxopt": cvxopt.__version__,
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hops", type=int, default=80, help="timed hops per configuration")
    ap.add_argument("--rates", default="16,32")
    ap.add_argument("--lengths", default="10,20,30,60")
    ap.add_argument("--check-every", type=int, default=8, help="accuracy check every k hops")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument(
        "--compiled",
        action="store_true",
        help="also time the same iteration compiled with numba (must be installed; it is not "
        "a project dependency), side by side",
    )
    args = ap.parse_args()
    compiled = compiled_ipm_class() if args.compiled else None
    if compiled is not None:  # compile before timing
        OnlineCvxEda(16, 10, **PARAMS)._solver(160)
        warm = OnlineCvxEda(16, 10, **PARAMS)
        warm._solvers[160] = compiled(CvxEdaModel.build(160, 16, **PARAMS))
        warm.update(load(16)[:200])
    info = machine()
    if compiled is not None:
        import numba

        info["numba"] = numba.__version__
    rows = []
    for fs in (int(r) for r in args.rates.split(",")):
        for length in (int(s) for s in args.lengths.split(",")):
            row = measure(fs, length, args.hops, args.check_every, compiled)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    doc = {
        "benchmark": "cvxeda",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": "NeuroKit2 bio_eventrelated_100hz EDA, resampled (tests/data)",
        "online": "OnlineCvxEda.update, warm banded interior point, steady state",
        "reference": "cvxeda() from scratch: model matrices + cvxopt qp (reltol 1e-9)",
        "machine": info,
        "min_speedup": min(float(r["speedup_median"]) for r in rows),  # type: ignore[arg-type]
        "compiled": "numba port of the same iteration (optional)" if compiled else None,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-compiled" if compiled else ""
    name = f"cvxeda-{dt.date.today().isoformat()}-{socket.gethostname()}{suffix}.json"
    (args.out / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
