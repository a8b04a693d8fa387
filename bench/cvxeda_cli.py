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
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from affectstream.bench.cvxeda import PARAMS, compiled_ipm_class, load, measure  # noqa: E402
from affectstream.bench.machine import machine  # noqa: E402
from affectstream.streaming.preprocess.eda import OnlineCvxEda  # noqa: E402


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
    if compiled is not None:  # compiled_ipm_class() compiled it: nothing is JIT-ed while timing
        OnlineCvxEda(16, 10, solver="compiled", **PARAMS).update(load(16)[:200])
    info = machine("numpy", "scipy", "cvxopt", "numba")
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
