"""Run the service: LSL sessions in, valence/arousal over WebSocket out, with REST and dashboard."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        default=None,
        metavar="NAME",
        help="model folder name in models/zoo, or a path (repeatable; default: all shipped)",
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="where to look for models")
    parser.add_argument(
        "--auto-attach",
        action="store_true",
        default=None,
        help="create a session for every group of streams <key>-<TYPE> that appears",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require this token on every REST call and WebSocket (required off loopback); "
        "prefer AFFECTSTREAM_TOKEN, which does not show in the process list",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def run(args: argparse.Namespace) -> int:
    from affectstream.service.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            {
                "host": args.host,
                "port": args.port,
                "models": tuple(args.models) if args.models else None,
                "model_dir": args.model_dir,
                "auto_attach": args.auto_attach,
                "token": args.token,
            }
        )
    except SettingsError as e:
        print(f"affectstream serve: invalid setting: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from affectstream.models.runner import ModelLoadError
    from affectstream.service.app import create_app

    app = create_app(settings)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    except ModelLoadError as e:
        print(f"affectstream serve: {e}", file=sys.stderr)
        return 2
    return 0
