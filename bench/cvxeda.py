"""cvxEDA cost: the online solver against from-scratch solves of the same segment, side by side.

For each decomposition rate and segment length, a trailing segment slides over a skin-conductance
trace in hops of 0.25 s. At every hop the same segment is decomposed by each of these, one after
the other, so all see the same machine load:

- ``online``: ``OnlineCvxEda.update(hop)`` in steady state (warm start from the previous hop; the
  first, cold update is not timed), including z-scoring and mapping back, with the interior-point
  iteration run from Python on numpy/LAPACK kernels;
- ``cvxopt``: ``cvxeda()`` on the z-scored segment from scratch (model matrices, cvxopt ``qp``),
  our reference the online solver is checked against;
- ``compiled`` (with ``compiled=True``): ``OnlineCvxEda.update`` with the iteration compiled by
  numba, what the service runs once it is compiled (same starting points, steps and stopping:
  the iteration counts are asserted equal);
- ``pypi`` (when the ``dev`` extra installed it): the authors' PyPI ``cvxeda`` 1.1.0,
  ``cvxEDA(z, 1/fs)`` with its default options (its cvxopt progress table not printed).

Accuracy is the max deviation of tonic and phasic divided by the segment range, against the exact
optimum (the banded solver run to μ ≤ 1e-14, whose objective is below cvxopt's), for each solve,
and between online and cvxopt. The target (issue #16): the compiled update ≥ 20× faster than
the PyPI ``cvxeda`` 1.1.0 solve of the same segment, within 1e-3 of the range of the exact
optimum.

The trace is passed in (:class:`EdaTrace`): a NeuroKit-style CSV (:func:`read_neurokit_csv`,
e.g. NeuroKit2's event-related recording at 100 Hz) or, by default, the GSR
channel of a synthetic DEAP subject (:func:`synthetic_deap_gsr`). Each is resampled to the
decomposition rate with scipy's polyphase anti-alias filter; the JSON names the trace.

Used by ``affectstream bench`` (section ``cvxeda_speedup``) and as a command of its own::

    python -m affectstream.bench.cvxeda [--csv PATH [--csv-rate 100]] [--seed 0] [--hops 80]
        [--rates 16,32] [--lengths 10,20,30,60] [--compiled] [--out bench/results]

which prints a JSON document and writes ``<out>/cvxeda-<date>-<host>.json`` (``…-compiled.json``
with ``--compiled``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import numpy as np
import scipy.signal as ss
from numpy.typing import NDArray

from affectstream.bench.machine import machine
from affectstream.streaming.formats.deap import GSR_INDEX, gsr_ohm_to_microsiemens, read_deap
from affectstream.streaming.preprocess.cvxeda.compiled import compiled_ipm_class
from affectstream.streaming.preprocess.cvxeda.ipm import BandedIpm
from affectstream.streaming.preprocess.cvxeda.model import CvxEdaModel, lower_toeplitz_apply
from affectstream.streaming.preprocess.cvxeda.params import CvxEdaParams
from affectstream.streaming.preprocess.eda import OnlineCvxEda, cvxeda
from affectstream.streaming.synthetic.deap import write_synthetic_deap

__all__ = [
    "HOP_S",
    "EdaTrace",
    "main",
    "measure",
    "read_neurokit_csv",
    "resample",
    "sweep",
    "synthetic_deap_gsr",
]

FloatArray = NDArray[np.float64]

HOP_S = 0.25
"""Time between two updates of the online solver."""


@dataclass(frozen=True)
class EdaTrace:
    """Skin conductance to benchmark on.

    Attributes
    ----------
    values : ndarray, shape (n,)
        Skin conductance (µS).
    rate_hz : float
        Its sampling rate.
    source : str
        What it is, for the JSON document.
    """

    values: FloatArray
    rate_hz: float
    source: str


def read_neurokit_csv(path: Path | str, rate_hz: float = 100.0) -> EdaTrace:
    """The ``EDA`` column of a NeuroKit2-style CSV (header row, comma-separated; NeuroKit2's
    example recordings are at 100 Hz, which the file does not state)."""
    path = Path(path)
    with path.open() as f:
        header = f.readline().strip().split(",")
    if "EDA" not in header:
        raise ValueError(f"{path}: no EDA column in the header {header}")
    values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=header.index("EDA"), ndmin=1)
    return EdaTrace(np.asarray(values, dtype=np.float64), rate_hz, f"{path.name}, EDA column")


def synthetic_deap_gsr(seed: int = 0, trials: int = 3) -> EdaTrace:
    """GSR of synthetic DEAP subject 1 (µS, 128 Hz): its first ``trials`` trials of 63 s, each
    shifted to start at the level where the previous one ended, so the trace has no steps."""
    with tempfile.TemporaryDirectory(prefix="cvxeda-bench-") as tmp:
        (path,) = write_synthetic_deap(tmp, n_subjects=1, n_trials=trials, seed=seed)
        subject = read_deap(path)
    parts = [gsr_ohm_to_microsiemens(trial) for trial in subject.data[:, GSR_INDEX, :]]
    for i in range(1, len(parts)):
        parts[i] = parts[i] + (parts[i - 1][-1] - parts[i][0])
    return EdaTrace(
        np.concatenate(parts),
        128.0,
        f"synthetic DEAP GSR, subject 1, {trials} trials joined, seed {seed}",
    )


def resample(trace: EdaTrace, rate_hz: float) -> FloatArray:
    """``trace`` at ``rate_hz`` (polyphase anti-alias filter, line padding at the ends)."""
    target, source = (Fraction(r).limit_denominator(10_000) for r in (rate_hz, trace.rate_hz))
    ratio = target / source
    return np.asarray(
        ss.resample_poly(trace.values, ratio.numerator, ratio.denominator, padtype="line"),
        dtype=np.float64,
    )


def _deviation(
    tonic: FloatArray,
    phasic: FloatArray,
    tonic_ref: FloatArray,
    phasic_ref: FloatArray,
    span: float,
) -> float:
    return float(max(np.abs(tonic - tonic_ref).max(), np.abs(phasic - phasic_ref).max()) / span)


def _pypi_cvxeda() -> Callable[[FloatArray, float], object] | None:
    """The PyPI ``cvxeda`` 1.1.0 solve (the authors' 2025 code; a test-only, GPL-3.0 dependency
    of the ``dev`` extra), or None when it is not installed. Its default options, except that
    cvxopt's per-iteration progress table is not printed (``show_progress`` is an output
    setting: printing it would time the terminal, not the solver)."""
    try:
        import cvxeda as pypi  # optional: only the dev extra installs it
    except ImportError:
        return None
    solve = pypi.cvxEDA

    def run(z: FloatArray, fs: float) -> object:
        return solve(z, 1.0 / fs, options={"show_progress": False})

    return run


def measure(
    y: FloatArray,
    fs: float,
    segment_s: float,
    hops: int,
    check_every: int,
    *,
    compiled: bool = False,
    params: CvxEdaParams | None = None,
) -> dict[str, object]:
    """Time and check one configuration on ``y`` (µS at ``fs`` Hz, the decomposition rate).

    ``hops`` is cut to what ``y`` holds after the first segment; accuracy is checked every
    ``check_every`` hops and at the last. ``compiled`` also times the numba-compiled iteration
    (which must be available). The PyPI ``cvxeda`` reference is timed when it is installed.

    Raises
    ------
    ValueError
        If ``y`` is shorter than one segment and one hop.
    RuntimeError
        If a solve fails.
    """
    params = params if params is not None else CvxEdaParams()
    n, hop = round(segment_s * fs), round(HOP_S * fs)
    hops = min(hops, (y.size - n) // hop)
    if hops < 1:
        raise ValueError(f"{y.size} samples hold no hop after a {segment_s} s segment at {fs} Hz")
    online = OnlineCvxEda(fs, segment_s, params=params, solver="numpy")
    online.update(y[:n])  # cold start, not timed
    fast = None
    if compiled:
        fast = OnlineCvxEda(fs, segment_s, params=params, solver="compiled")
        fast.update(y[:n])
    pypi = _pypi_cvxeda()
    exact = BandedIpm(CvxEdaModel.build(n, fs, params.replace(mu_tol=1e-14, res_tol=1e-10)))
    t_online: list[float] = []
    t_ref: list[float] = []
    t_fast: list[float] = []
    t_pypi: list[float] = []
    iters: list[int] = []
    iters_ref: list[int] = []
    dev_online: list[float] = []
    dev_fast: list[float] = []
    dev_ref: list[float] = []
    dev_pypi: list[float] = []
    dev_between: list[float] = []
    for k in range(1, hops + 1):
        chunk = y[n + (k - 1) * hop : n + k * hop]
        t0 = time.perf_counter()
        dec = online.update(chunk)
        t1 = time.perf_counter()
        segment = y[k * hop : n + k * hop]
        mean, std = float(segment.mean()), float(segment.std())
        z = (segment - mean) / std
        t2 = time.perf_counter()
        ref = cvxeda(z, fs, params)
        t3 = time.perf_counter()
        dec_fast = None
        if fast is not None:
            t4 = time.perf_counter()
            dec_fast = fast.update(chunk)
            t_fast.append(time.perf_counter() - t4)
            if dec_fast.iterations != dec.iterations:  # the same algorithm, step for step
                raise RuntimeError(
                    f"hop {k}: compiled took {dec_fast.iterations} iterations, "
                    f"numpy/LAPACK {dec.iterations}"
                )
        pypi_out = None
        if pypi is not None:
            t5 = time.perf_counter()
            pypi_out = pypi(z, fs)
            t_pypi.append(time.perf_counter() - t5)
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
            dev_between.append(_deviation(on_t, on_p, ref.tonic, ref.phasic, span))
            res = exact.solve(z, exact.cold_start(z))
            ex_t = exact.model.E @ res.state.w
            ex_p = lower_toeplitz_apply(exact.model.ma, res.state.q)
            dev_online.append(_deviation(on_t, on_p, ex_t, ex_p, span))
            dev_ref.append(_deviation(ref.tonic, ref.phasic, ex_t, ex_p, span))
            if dec_fast is not None:
                f_t, f_p = (dec_fast.tonic - mean) / std, dec_fast.phasic / std
                dev_fast.append(_deviation(f_t, f_p, ex_t, ex_p, span))
            if pypi_out is not None:
                r, _p, t = tuple(cast(Sequence[FloatArray], pypi_out))[:3]
                dev_pypi.append(_deviation(t, r, ex_t, ex_p, span))
    ms_online = 1e3 * float(np.median(t_online))
    ms_ref = 1e3 * float(np.median(t_ref))
    extra: dict[str, object] = {}
    ms_pypi = 1e3 * float(np.median(t_pypi)) if t_pypi else None
    if ms_pypi is not None:
        extra |= {
            "pypi_ms_median": round(ms_pypi, 3),
            "pypi_ms_p90": round(1e3 * float(np.percentile(t_pypi, 90)), 3),
            "pypi_dev_vs_exact_max": float(f"{max(dev_pypi):.2g}"),
            "pypi_speedup_median": round(ms_pypi / ms_online, 2),
        }
    if t_fast:
        ms_fast = 1e3 * float(np.median(t_fast))
        extra |= {
            "compiled_ms_median": round(ms_fast, 3),
            "compiled_ms_p90": round(1e3 * float(np.percentile(t_fast, 90)), 3),
            "compiled_speedup_median": round(ms_ref / ms_fast, 2),
            "compiled_dev_vs_exact_max": float(f"{max(dev_fast):.2g}"),
        }
        if ms_pypi is not None:
            extra["compiled_pypi_speedup_median"] = round(ms_pypi / ms_fast, 2)
    return {
        "rate_hz": fs,
        "segment_s": segment_s,
        "n": n,
        "hops": hops,
        "hop_s": hop / fs,
        "online_ms_median": round(ms_online, 3),
        "online_ms_p90": round(1e3 * float(np.percentile(t_online, 90)), 3),
        "online_iterations_mean": round(float(np.mean(iters)), 2),
        "online_iterations_max": int(max(iters)),
        "cvxopt_ms_median": round(ms_ref, 3),
        "cvxopt_ms_p90": round(1e3 * float(np.percentile(t_ref, 90)), 3),
        "cvxopt_iterations_mean": round(float(np.mean(iters_ref)), 2),
        "speedup_median": round(ms_ref / ms_online, 2),
        "online_dev_vs_exact_max": float(f"{max(dev_online):.2g}"),
        "cvxopt_dev_vs_exact_max": float(f"{max(dev_ref):.2g}"),
        "online_dev_vs_cvxopt_max": float(f"{max(dev_between):.2g}"),
        **extra,
    }


def sweep(
    trace: EdaTrace,
    rates: Sequence[float],
    lengths: Sequence[float],
    hops: int,
    check_every: int,
    *,
    compiled: bool = False,
    params: CvxEdaParams | None = None,
    log: Callable[[str], object] | None = None,
) -> list[dict[str, object]]:
    """:func:`measure` for every rate and segment length, ``trace`` resampled to each rate."""
    rows = []
    for fs in rates:
        y = resample(trace, fs)
        for length in lengths:
            row = measure(y, fs, length, hops, check_every, compiled=compiled, params=params)
            if log is not None:
                log(json.dumps(row))
            rows.append(row)
    return rows


def _extreme(
    pick: Callable[[list[float]], float], rows: list[dict[str, object]], key: str
) -> float | None:
    """``pick`` (min or max) of ``key`` over the rows that have it, None when none has."""
    values = [cast(float, r[key]) for r in rows if key in r]
    return pick(values) if values else None


def _numbers(text: str) -> list[float]:
    return [float(v) if "." in v else int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m affectstream.bench.cvxeda",
        description="Online cvxEDA against a from-scratch cvxopt solve, side by side.",
    )
    ap.add_argument(
        "--csv",
        type=Path,
        default=None,
        metavar="PATH",
        help="NeuroKit2-style CSV with an EDA column (default: synthetic DEAP GSR)",
    )
    ap.add_argument("--csv-rate", type=float, default=100.0, help="sampling rate of --csv (Hz)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic DEAP subject")
    ap.add_argument("--hops", type=int, default=80, help="timed hops per configuration")
    ap.add_argument("--rates", default="16,32", help="decomposition rates (Hz)")
    ap.add_argument("--lengths", default="10,20,30,60", help="segment lengths (s)")
    ap.add_argument("--check-every", type=int, default=8, help="accuracy check every k hops")
    ap.add_argument("--out", type=Path, default=Path("bench/results"), metavar="DIR")
    ap.add_argument(
        "--compiled",
        action="store_true",
        help="also time the same iteration compiled with numba, side by side",
    )
    args = ap.parse_args(argv)
    if args.compiled and compiled_ipm_class() is None:  # compiles now, not while timing
        print("cvxeda bench: error: --compiled needs numba", file=sys.stderr)
        return 2
    params = CvxEdaParams()
    trace = (
        read_neurokit_csv(args.csv, args.csv_rate)
        if args.csv is not None
        else synthetic_deap_gsr(args.seed)
    )
    info = machine("numpy", "scipy", "cvxopt", "numba")
    rows = sweep(
        trace,
        _numbers(args.rates),
        _numbers(args.lengths),
        args.hops,
        args.check_every,
        compiled=args.compiled,
        params=params,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    doc = {
        "benchmark": "cvxeda",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": f"{trace.source} ({trace.rate_hz:g} Hz, {trace.values.size / trace.rate_hz:g} s), "
        "resampled to each rate",
        "online": "OnlineCvxEda.update, warm banded interior point, numpy/LAPACK kernels, "
        "steady state",
        "reference": "cvxeda() from scratch: model matrices + cvxopt qp "
        f"(reltol {params.reltol:g}); pypi: cvxeda 1.1.0 cvxEDA(z, 1/fs), default options, "
        "progress table off",
        "params": dataclasses.asdict(params),
        "machine": info,
        "min_speedup": min(cast(float, r["speedup_median"]) for r in rows),
        "min_compiled_pypi_speedup": _extreme(min, rows, "compiled_pypi_speedup_median"),
        "max_compiled_dev_vs_exact": _extreme(max, rows, "compiled_dev_vs_exact_max"),
        "target": "compiled update >= 20x faster than PyPI cvxeda 1.1.0, "
        "within 1e-3 of the range of the exact optimum (issue #16)",
        "compiled": "the same iteration compiled with numba" if args.compiled else None,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-compiled" if args.compiled else ""
    name = f"cvxeda-{dt.date.today().isoformat()}-{socket.gethostname()}{suffix}.json"
    (args.out / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
