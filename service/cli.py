"""The ``affectstream`` command: one program, several verbs.

Each verb lives in the layer it belongs to (``streaming/commands/replay.py``,
``training/commands/synth.py`` …) as a module with ``add_arguments(parser)`` and ``run(args)``.
Only the chosen verb's module is imported, so ``affectstream replay`` never loads training code
and ``affectstream --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# verb -> (module, one-line summary). The summary is the module docstring's first line (a test
# keeps them in step); it is repeated here so that the overview imports nothing.
VERBS: dict[str, tuple[str, str]] = {
    "serve": (
        "affectstream.service.commands.serve",
        "Run the service: LSL sessions in, valence/arousal over WebSocket out, "
        "with REST and dashboard.",
    ),
    "worker": (
        "affectstream.service.commands.worker",
        "Run a worker on the Redis bus: it claims sessions from the registry and serves them "
        "there.",
    ),
    "demo": (
        "affectstream.service.commands.demo",
        "Synthesise a subject, replay it over LSL, serve live valence/arousal, show the first "
        "predictions.",
    ),
    "synth": (
        "affectstream.training.commands.synth",
        "Write synthetic data in the real DEAP (sNN.dat) or PMEmo (CSV tree) format.",
    ),
    "replay": (
        "affectstream.streaming.commands.replay",
        "Replay a DEAP subject file or a PMEmo subject's EDA as live LSL streams on one clock.",
    ),
    "train": (
        "affectstream.training.commands.train",
        "Train a model on DEAP (or synthetic DEAP-format data) with an honest evaluation protocol.",
    ),
    "export": (
        "affectstream.training.commands.export",
        "Export a trained run to ONNX with its contract (model.json) and model card.",
    ),
    "evaluate-coverage": (
        "affectstream.training.commands.coverage",
        "Measure a grid model's accuracy against EEG montage coverage on held-out subjects.",
    ),
    "bench": (
        "affectstream.bench.command",
        "Measure end-to-end latency, capacity, stage costs and inference throughput on this "
        "machine.",
    ),
    "monitor": (
        "affectstream.streaming.commands.monitor",
        "Watch a session's LSL streams as the service would see them: rates, counters, health.",
    ),
}


def _version() -> str:
    try:
        return version("affectstream")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _overview() -> str:
    width = max(map(len, VERBS))
    lines = [
        "usage: affectstream VERB [options]   (affectstream VERB --help for a verb's options)",
        "",
        "Real-time valence/arousal inference from physiological LSL streams.",
        "",
        "verbs:",
    ]
    lines += [f"  {verb:<{width}}  {summary}" for verb, (_, summary) in VERBS.items()]
    return "\n".join(lines)


def build_parser(verb: str) -> argparse.ArgumentParser:
    """The argument parser of one verb (imports that verb's module)."""
    module = importlib.import_module(VERBS[verb][0])
    doc = (module.__doc__ or "").strip()
    parser = argparse.ArgumentParser(prog=f"affectstream {verb}", description=doc)
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_overview())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"affectstream {_version()}")
        return 0
    verb = args[0]
    if verb not in VERBS:
        hint = difflib.get_close_matches(verb, VERBS, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        print(f"affectstream: unknown verb {verb!r}{extra}\n\n{_overview()}", file=sys.stderr)
        return 2
    parsed = build_parser(verb).parse_args(args[1:])
    try:
        return int(parsed._run(parsed))
    except KeyboardInterrupt:
        print(f"affectstream {verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
