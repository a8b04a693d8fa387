"""Watch a session's LSL streams as the service would see them: rates, counters, health."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from types import FrameType


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="stream predicate; keys: source_id_prefix, hostname, session, type. Several --match "
        "must all hold (default: every stream visible)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document at the end (a 'streams' list) instead of a live table",
    )
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="TYPE=CHANNELS",
        help="refuse streams of TYPE whose channel count differs, e.g. EEG=32 (repeatable)",
    )


COLUMNS = (
    ("type", 8),
    ("source_id", 34),
    ("state", 10),
    ("nominal_srate", 8),
    ("measured_srate", 8),
    ("channel_count", 4),
    ("samples", 9),
    ("gaps", 5),
    ("nonfinite", 9),
    ("reconnects", 10),
    ("clock_offset", 12),
)
HEADERS = {
    "nominal_srate": "nominal",
    "measured_srate": "measured",
    "channel_count": "ch",
    "clock_offset": "offset (s)",
}


def _fmt(key: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}" if key == "clock_offset" else f"{value:.1f}"
    return str(value)


def _table(rows: list[dict[str, object]]) -> str:
    head = " ".join(f"{HEADERS.get(k, k):<{w}}" for k, w in COLUMNS)
    body = [" ".join(f"{_fmt(k, r.get(k)):<{w}}" for k, w in COLUMNS) for r in rows]
    refused = [f"  refused: {r['reason']}" for r in rows if r.get("state") == "refused"]
    return "\n".join([head, *body, *refused]) if rows else "(no matching stream yet)"


def run(args: argparse.Namespace) -> int:
    from affectstream.streaming.ingest.session import (
        IngestSession,
        SessionMatch,
        StreamExpectation,
        canonical_type,
    )

    try:
        match = SessionMatch.from_pairs(args.match) if args.match else None
        expectations = {}
        for item in args.expect:
            kind, _, count = item.partition("=")
            expectations[canonical_type(kind)] = StreamExpectation(canonical_type(kind), int(count))
    except ValueError as e:
        print(f"affectstream monitor: error: {e}", file=sys.stderr)
        return 2
    if match is None:  # every stream: a prefix every source_id has
        match = SessionMatch(source_id_prefix="")

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    start = time.monotonic()
    with IngestSession(match, expectations=expectations) as session:
        while not stop.wait(1.0):
            if not args.json:
                print(
                    f"\n[{time.monotonic() - start:6.1f} s]\n{_table(session.report())}", flush=True
                )
            if args.seconds is not None and time.monotonic() - start >= args.seconds:
                break
        rows = session.report()
    if args.json:
        doc = {
            "match": match.as_dict(),
            "seconds": round(time.monotonic() - start, 3),
            "streams": rows,
        }
        print(json.dumps(doc, indent=2))
    return 0
