"""Write synthetic subjects in the real DEAP format (data_preprocessed_python sNN.dat).

The physiology is simulated, with documented label-dependent effects.

``affectstream synth --out DIR [--subjects N] [--trials T] [--seed S]`` writes ``DIR/s01.dat`` …
``DIR/sNN.dat`` (about 2.5 MB per trial, ~100 MB for a full 40-trial subject) and prints one line
per file. The data is *not* DEAP: see ``docs/synthetic-data.md`` for what it contains.

Limits: 1 ≤ N ≤ 99 (the ``sNN`` names have two digits), 1 ≤ T ≤ 40 (the stimulus set has 40
videos, like DEAP), S ≥ 0. Out-of-range values print a message on stderr and return 2; a failure
to write returns 1. Existing files of the same name are replaced.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

MAX_SUBJECTS = 99
_FORMATS = ("deap",)  # "pmemo" will join here, with its own writer in _write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` options to ``parser``."""
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="output directory (created)"
    )
    parser.add_argument(
        "--subjects", type=int, default=4, metavar="N", help="number of subjects, 1-99 (default 4)"
    )
    parser.add_argument(
        "--trials", type=int, default=40, metavar="T", help="trials per subject, 1-40 (default 40)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed, >= 0 (default 0)"
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="deap",
        help="file format (default deap: sNN.dat as in data_preprocessed_python)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the files; return 0 on success, 2 for bad arguments, 1 if writing failed."""
    problem = _check(args)
    if problem is not None:
        print(f"affectstream synth: error: {problem}", file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(
            f"affectstream synth: error: --out {out} exists and is not a directory", file=sys.stderr
        )
        return 2
    written: list[Path] = []

    def report(path: Path) -> None:
        written.append(path)
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB", flush=True)

    try:
        _write(args.format)(out, args.subjects, args.trials, args.seed, report)
    except OSError as e:
        print(f"affectstream synth: error: could not write to {out}: {e}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in written) / 1e6
    print(
        f"wrote {len(written)} synthetic subject file(s), {args.trials} trial(s) each, "
        f"{total:.1f} MB, seed {args.seed}, to {out} (synthetic data, not DEAP)"
    )
    return 0


def _check(args: argparse.Namespace) -> str | None:
    """The first out-of-range argument, described; ``None`` if all are valid."""
    from training.synthetic import MAX_TRIALS

    if not 1 <= args.subjects <= MAX_SUBJECTS:
        return (
            f"--subjects must be 1-{MAX_SUBJECTS} (files s01.dat ... s99.dat), got {args.subjects}"
        )
    if not 1 <= args.trials <= MAX_TRIALS:
        return (
            f"--trials must be 1-{MAX_TRIALS} (the stimulus set has 40 videos), got {args.trials}"
        )
    if args.seed < 0:
        return f"--seed must be a non-negative integer, got {args.seed}"
    return None


_Writer = Callable[[Path, int, int, int, Callable[[Path], None]], object]


def _write(file_format: str) -> _Writer:
    """The writer for ``--format`` (imported here so that ``--help`` stays instant)."""
    if file_format == "deap":
        from training.synthetic import write_synthetic_deap

        def write_deap_set(
            out: Path, n_subjects: int, n_trials: int, seed: int, report: Callable[[Path], None]
        ) -> object:
            return write_synthetic_deap(out, n_subjects, n_trials, seed, on_written=report)

        return write_deap_set
    raise ValueError(f"unknown format {file_format!r}; choose from {', '.join(_FORMATS)}")
