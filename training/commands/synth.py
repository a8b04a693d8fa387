"""Write synthetic data in the real DEAP (sNN.dat) or PMEmo (CSV tree) format.

The physiology is simulated, with documented label-dependent effects.

``affectstream synth --out DIR [--subjects N] [--trials T] [--seed S]`` writes ``DIR/s01.dat`` …
``DIR/sNN.dat`` (about 2.5 MB per trial, ~100 MB for a full 40-trial subject) and prints one line
per file. The data is *not* DEAP: see ``docs/synthetic-data.md`` for what it contains.

``--format pmemo`` writes a folder in the PMEmo (2019) layout instead (``metadata.csv``,
``annotations/``, ``features/static_features.csv``, ``EDA/<musicId>_EDA.csv``); there ``--subjects``
counts subjects and ``--trials`` songs. The data is *not* PMEmo: see ``docs/synthetic-pmemo.md``.

Limits: DEAP 1 ≤ N ≤ 99 (the ``sNN`` names have two digits), 1 ≤ T ≤ 40 (the stimulus set has 40
videos, like DEAP); PMEmo 1 ≤ N ≤ 999 (6-digit ids 100001 …), 1 ≤ T ≤ 794 (PMEmo's 794 songs);
S ≥ 0. Out-of-range values print a message on stderr and return 2; a failure to write returns 1.
Existing files of the same name are replaced.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_SUBJECTS = 99
_FORMATS = ("deap", "pmemo")


@dataclass(frozen=True)
class _Limits:
    """What --subjects and --trials mean for one format: range, default, why that range."""

    max_subjects: int
    max_trials: int
    default_subjects: int
    default_trials: int
    subjects_why: str
    trials_why: str


def _limits(file_format: str) -> _Limits:
    """The format's limits, from its generator (imported only once the arguments are parsed)."""
    if file_format == "pmemo":
        from affectstream.streaming.synthetic.pmemo import MAX_SONGS
        from affectstream.streaming.synthetic.pmemo import MAX_SUBJECTS as MAX_PMEMO_SUBJECTS

        return _Limits(
            max_subjects=MAX_PMEMO_SUBJECTS,
            max_trials=MAX_SONGS,
            default_subjects=24,
            default_trials=30,
            subjects_why=f"6-digit subject ids 100001 ... {100000 + MAX_PMEMO_SUBJECTS}",
            trials_why=f"songs; PMEmo has {MAX_SONGS}",
        )
    from affectstream.streaming.synthetic.deap import MAX_TRIALS

    return _Limits(
        max_subjects=MAX_SUBJECTS,
        max_trials=MAX_TRIALS,
        default_subjects=4,
        default_trials=MAX_TRIALS,
        subjects_why="files s01.dat ... s99.dat",
        trials_why="the stimulus set has 40 videos",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` options to ``parser``."""
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="output directory (created)"
    )
    parser.add_argument(
        "--subjects",
        type=int,
        default=None,
        metavar="N",
        help="number of subjects: deap 1-99 (default 4), pmemo 1-999 (default 24)",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="T",
        help="deap: trials per subject, 1-40 (default 40); pmemo: songs, 1-794 (default 30)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed, >= 0 (default 0)"
    )
    parser.add_argument(
        "--first-subject",
        type=int,
        default=1,
        metavar="K",
        help="deap: number of the first subject written (default 1): --subjects 1 "
        "--first-subject 17 writes only s17.dat, the same data as in a 17-subject set",
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="deap",
        help="file format (default deap: sNN.dat as in data_preprocessed_python; "
        "pmemo: the PMEmo 2019 folder layout)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the files; return 0 on success, 2 for bad arguments, 1 if writing failed."""
    limits = _limits(args.format)
    n_subjects: int = limits.default_subjects if args.subjects is None else args.subjects
    n_trials: int = limits.default_trials if args.trials is None else args.trials
    problem = _check(limits, n_subjects, n_trials, args.seed)
    first: int = args.first_subject
    if problem is None and first != 1 and args.format != "deap":
        problem = "--first-subject is for --format deap"
    elif problem is None and not 1 <= first <= limits.max_subjects - n_subjects + 1:
        problem = (
            f"--first-subject {first} with --subjects {n_subjects} goes beyond "
            f"s{limits.max_subjects:02d}.dat ({limits.subjects_why})"
        )
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
        _write(args.format, first)(out, n_subjects, n_trials, args.seed, report)
    except OSError as e:
        print(f"affectstream synth: error: could not write to {out}: {e}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in written) / 1e6
    if args.format == "pmemo":
        print(
            f"wrote {len(written)} file(s) in the PMEmo layout, {n_subjects} subject(s), "
            f"{n_trials} song(s), {total:.1f} MB, seed {args.seed}, to {out} "
            "(synthetic data, not PMEmo)"
        )
    else:
        print(
            f"wrote {len(written)} synthetic subject file(s), {n_trials} trial(s) each, "
            f"{total:.1f} MB, seed {args.seed}, to {out} (synthetic data, not DEAP)"
        )
    return 0


def _check(limits: _Limits, n_subjects: int, n_trials: int, seed: int) -> str | None:
    """The first out-of-range argument, described; ``None`` if all are valid."""
    if not 1 <= n_subjects <= limits.max_subjects:
        return (
            f"--subjects must be 1-{limits.max_subjects} ({limits.subjects_why}), got {n_subjects}"
        )
    if not 1 <= n_trials <= limits.max_trials:
        return f"--trials must be 1-{limits.max_trials} ({limits.trials_why}), got {n_trials}"
    if seed < 0:
        return f"--seed must be a non-negative integer, got {seed}"
    return None


_Writer = Callable[[Path, int, int, int, Callable[[Path], None]], object]


def _write(file_format: str, first_subject: int = 1) -> _Writer:
    """The writer for ``--format`` (imported here so that ``--help`` stays instant)."""
    if file_format == "deap":
        from affectstream.streaming.synthetic.deap import write_synthetic_deap

        def write_deap_set(
            out: Path, n_subjects: int, n_trials: int, seed: int, report: Callable[[Path], None]
        ) -> object:
            return write_synthetic_deap(
                out, n_subjects, n_trials, seed, first_subject=first_subject, on_written=report
            )

        return write_deap_set
    if file_format == "pmemo":
        from affectstream.streaming.synthetic.pmemo import write_synthetic_pmemo

        def write_pmemo_set(
            out: Path, n_subjects: int, n_songs: int, seed: int, report: Callable[[Path], None]
        ) -> object:
            return write_synthetic_pmemo(out, n_subjects, n_songs, seed, on_written=report)

        return write_pmemo_set
    raise ValueError(f"unknown format {file_format!r}; choose from {', '.join(_FORMATS)}")
