"""Run a worker on the Redis bus: it claims sessions from the registry and serves them there."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bus", required=True, metavar="URL", help="the Redis URL, e.g. redis://HOST:6379/0"
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=32,
        metavar="N",
        help="claim at most N sessions (default 32); a full worker leaves new ones to others",
    )
    parser.add_argument(
        "--lease-ms",
        type=int,
        default=3000,
        metavar="MS",
        help="lease time (default 3000): a dead worker's sessions are taken over after it",
    )
    parser.add_argument(
        "--renew-s",
        type=float,
        default=1.0,
        metavar="S",
        help="renew leases, heartbeat and claim this often (default 1.0)",
    )
    parser.add_argument("--worker-id", default=None, help="default: HOSTNAME-PID")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="load only these models (repeatable; default: the service's models setting)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def run(args: argparse.Namespace) -> int:
    from affectstream.models.runner import ModelLoadError
    from affectstream.service.bus import Bus, BusUnavailableError, redact_url
    from affectstream.service.settings import SettingsError, load_settings
    from affectstream.service.worker import Worker, default_worker_id

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.max_sessions < 1 or args.lease_ms < 200 or not 0 < args.renew_s * 1000 < args.lease_ms:
        print(
            "affectstream worker: need --max-sessions >= 1, --lease-ms >= 200 and "
            "0 < --renew-s < the lease time",
            file=sys.stderr,
        )
        return 2
    try:
        # a worker listens on no port: the host setting (an image's AFFECTSTREAM_HOST=0.0.0.0,
        # which would demand a token) does not apply to it
        overrides: dict[str, object] = {"host": "127.0.0.1", "workers": 0}
        if args.models:
            overrides["models"] = tuple(args.models)
        settings = load_settings(overrides)
    except SettingsError as e:
        print(f"affectstream worker: invalid setting: {e}", file=sys.stderr)
        return 2
    try:
        # the stream keeps what a gateway's resume buffer can hold, plus status messages
        bus = Bus.connect(args.bus, maxlen=max(64, settings.resume_buffer + 256))
    except BusUnavailableError as e:
        print(f"affectstream worker: {e}", file=sys.stderr)
        return 2
    worker = Worker(
        settings,
        bus,
        args.worker_id or default_worker_id(),
        max_sessions=args.max_sessions,
        lease_ms=args.lease_ms,
        renew_s=args.renew_s,
        freeze_heap=True,
    )
    try:
        worker.start()
    except ModelLoadError as e:
        print(f"affectstream worker: {e}", file=sys.stderr)
        return 2

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("affectstream.worker").info(
        "worker %s on %s: up to %d sessions",
        worker.worker_id,
        redact_url(bus.url),
        args.max_sessions,
    )
    try:
        worker.run()
    finally:
        worker.close()
        bus.close()
    return 0
