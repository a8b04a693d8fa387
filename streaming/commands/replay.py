"""Replay a DEAP subject file or a PMEmo subject's EDA as live LSL streams on one clock.

``affectstream replay sNN.dat`` publishes a DEAP file (:mod:`affectstream.streaming.replay.deap`);
``affectstream replay --format pmemo PMEMO_DIR --subject ID [--songs 3,7]`` publishes one PMEmo
subject's skin conductance with the stimulus (song) id in its markers
(:mod:`affectstream.streaming.replay.pmemo`);
``affectstream replay recording.xdf [--streams NAME …]`` republishes every stream of an XDF
recording as it was recorded (:mod:`affectstream.streaming.replay.xdf`). The format is detected
by the extension (``.xdf``, ``.xdfz``, ``.xdf.gz``: XDF) unless ``--format`` says it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from affectstream.streaming.replay.player import Player


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        type=Path,
        help="DEAP data_preprocessed_python file, e.g. s01.dat, an XDF recording (.xdf) or, "
        "with --format pmemo, the PMEmo folder",
    )
    parser.add_argument(
        "--format",
        choices=("deap", "pmemo", "xdf"),
        default=None,
        help="dataset format (default: xdf for .xdf/.xdfz files, else deap)",
    )
    parser.add_argument(
        "--streams",
        nargs="+",
        default=None,
        metavar="NAME",
        help="xdf: names of the streams to play (default: every stream of the file)",
    )
    parser.add_argument(
        "--subject",
        default=None,
        help="pmemo: subject id (default: the first subject of the first rated song)",
    )
    parser.add_argument(
        "--songs",
        default=None,
        help="pmemo: music ids to play, e.g. 3,7 (default: every song the subject has)",
    )
    parser.add_argument(
        "--trials",
        default=None,
        help="1-based trials to play, e.g. 1-3,7 (default: all, in file order)",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="playback speed; 1 = real time (default 1)"
    )
    parser.add_argument("--loop", action="store_true", help="start again after the last trial")
    parser.add_argument(
        "--session",
        default=None,
        help="session name: source_id prefix and <session> in the stream descriptions "
        "(default: derived from the file's absolute path, stable across restarts; xdf: the "
        "streams keep their recorded source_ids unless this is given)",
    )
    parser.add_argument(
        "--wait-for-consumers",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hold the clock until every outlet has an inlet, up to SECONDS (default 0: start now)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="inject faults, e.g. drop=0.01,jitter=5ms,nan=0.001,restart=30s,clock-step=0.5s "
        "(keys: drop, drop-run, nan, nan-run, jitter, jitter-dist, clock-step, clock-step-at, "
        "clock-step-every, restart, restart-down, stall, stall-every; docs/faults.md)",
    )
    parser.add_argument(
        "--faults-seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the random faults: the same seed drops the same samples (default 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")


def run(args: argparse.Namespace) -> int:
    from affectstream.streaming.replay.faults import FaultSpecError, parse_faults

    try:
        args.fault_spec = parse_faults(args.faults)
    except FaultSpecError as e:
        print(f"affectstream replay: error: --faults: {e}", file=sys.stderr)
        return 2
    if args.format is None:
        args.format = "xdf" if _is_xdf(args.path) else "deap"
    if args.format == "xdf":
        return _run_xdf(args)
    if args.streams:
        print("affectstream replay: error: --streams is for XDF files", file=sys.stderr)
        return 2
    if args.format == "pmemo":
        return _run_pmemo(args)
    from affectstream.streaming.formats.deap import DeapFormatError, read_deap
    from affectstream.streaming.replay.deap import DeapReplay, parse_trials
    from affectstream.streaming.replay.player import ReplayEvent

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    try:
        subject = read_deap(args.path)
        trials = parse_trials(args.trials, subject.n_trials)
    except (DeapFormatError, ValueError, OSError) as e:
        print(f"affectstream replay: error: {e}", file=sys.stderr)
        return 2

    def on_event(ev: ReplayEvent) -> None:
        p = ev.payload
        if p["event"] == "trial_start":
            say(
                f"[{ev.timestamp:.3f}] trial {p['trial']} start  valence {p['valence']:.2f}  "
                f"arousal {p['arousal']:.2f}  dominance {p['dominance']:.2f}  "
                f"liking {p['liking']:.2f}"
            )
        else:
            say(f"[{ev.timestamp:.3f}] trial {p['trial']} end")

    try:
        replay = DeapReplay(
            subject,
            trials,
            speed=args.speed,
            loop=args.loop,
            session=args.session,
            on_event=on_event,
        )
    except ValueError as e:
        print(f"affectstream replay: error: {e}", file=sys.stderr)
        return 2

    header = (
        f"replaying {args.path} (subject {subject.subject or '?'}), trials {args.trials or 'all'} "
        f"({len(trials)}), speed {args.speed:g}{', looping' if args.loop else ''}"
    )
    return _play_until_stopped(replay, args, header, say)


def _run_pmemo(args: argparse.Namespace) -> int:
    from affectstream.streaming.formats.pmemo import PmemoFormatError, open_pmemo
    from affectstream.streaming.replay.player import ReplayEvent
    from affectstream.streaming.replay.pmemo import PmemoReplay

    try:
        songs = None if not args.songs else [int(x) for x in args.songs.split(",") if x.strip()]
        data = open_pmemo(args.path)
        trials = list(
            data.trials(
                min_seconds=1.0,
                subjects=None if args.subject is None else [args.subject],
                music_ids=songs,
            )
        )
        if args.subject is None and trials:
            trials = [t for t in trials if t.subject == trials[0].subject]
        if not trials:
            raise ValueError(
                f"no rated EDA recording for subject {args.subject or '(any)'}"
                + (f" and songs {songs}" if songs else "")
            )
        subject = trials[0].subject
        replay = PmemoReplay(
            subject,
            trials,
            session=args.session or f"pmemo-{subject}",
            speed=args.speed,
            loop=args.loop,
        )
    except (PmemoFormatError, ValueError, OSError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"affectstream replay: error: {message}", file=sys.stderr)
        return 2

    def on_event(ev: ReplayEvent) -> None:
        p = ev.payload
        if not args.quiet and p["event"] != "trial_running":
            what = p["event"].split("_")[1]
            print(
                f"[{ev.timestamp:.3f}] song {p['music_id']} {what}  valence {p['valence']:.2f}  "
                f"arousal {p['arousal']:.2f}",
                flush=True,
            )

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    replay.on_event = on_event
    header = f"replaying PMEmo subject {subject}: songs {[t.music_id for t in trials]}"
    return _play_until_stopped(replay, args, header, say)


def _is_xdf(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".xdf", ".xdfz", ".xdf.gz"))


def _run_xdf(args: argparse.Namespace) -> int:
    from affectstream.streaming.formats.xdf import XdfFormatError, read_xdf
    from affectstream.streaming.replay.player import ReplayEvent
    from affectstream.streaming.replay.xdf import XdfReplay

    def fail(message: object) -> int:
        print(f"affectstream replay: error: {message}", file=sys.stderr)
        return 2

    for option in ("subject", "songs", "trials"):
        if getattr(args, option) is not None:
            return fail(f"--{option} is not used with XDF files (--streams NAME … selects)")
    if args.fault_spec.active:
        return fail("--faults is not supported for XDF replays (yet)")
    try:
        recording = read_xdf(args.path)
        replay = XdfReplay(
            recording,
            streams=args.streams,
            session=args.session,
            speed=args.speed,
            loop=args.loop,
        )
    except (XdfFormatError, ValueError, OSError) as e:
        return fail(e)

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    def on_event(ev: ReplayEvent) -> None:
        p = ev.payload
        say(f"[{ev.timestamp:.3f}] {p['stream']}: {' '.join(p['values'])}")

    replay.on_event = on_event
    stop = _stop_on_signals()
    replay.open()
    say(
        f"replaying {args.path}: {len(replay.tracks)} stream(s), {replay.duration:.1f} s, "
        f"speed {args.speed:g}{', looping' if args.loop else ''}"
    )
    for spec in replay.specs:
        rate = f"{spec.srate:g} Hz" if spec.srate > 0 else "irregular"
        say(
            f"  outlet {spec.name!r} type={spec.type} {len(spec.channels)} ch {spec.fmt} {rate} "
            f"source_id={spec.source_id}"
        )
    n = replay.run(stop, wait_for_consumers=args.wait_for_consumers)
    replay.close()
    why = "stopped" if stop.is_set() else "finished"
    say(f"{why}: {n} samples across {len(replay.tracks)} stream(s)")
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    return stop


def _play_until_stopped(
    replay: Player, args: argparse.Namespace, header: str, say: Callable[[str], None]
) -> int:
    """Open the outlets, say what plays, play until the end or Ctrl-C/SIGTERM; exit status 0."""
    spec = getattr(args, "fault_spec", None)
    if spec is not None and spec.active:
        replay.faults = spec
        replay.faults_seed = args.faults_seed
        replay.on_fault = say
        header += f"\n  faults {spec.describe()} (seed {args.faults_seed})"
    stop = _stop_on_signals()
    replay.open()
    say(header)
    for stream_type, source_id in replay.source_ids.items():
        say(f"  outlet {stream_type:<8} source_id={source_id}")
    n = replay.run(stop, wait_for_consumers=args.wait_for_consumers)
    replay.close()
    why = "stopped" if stop.is_set() else "finished"
    say(f"{why}: {n} samples per stream ({n / replay.rate:.1f} s of stream time)")
    if replay.injector is not None:
        r = replay.injector.report()
        say(
            f"faults injected: {sum(r['samples_dropped'])} samples dropped, "
            f"{sum(r['samples_nan'])} NaN, {r['restarts']} restarts, {r['stalls']} stalls, "
            f"{r['clock_steps']} clock steps"
        )
    return 0
