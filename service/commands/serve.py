"""Run the service: LSL sessions in, valence/arousal over WebSocket out, with REST and dashboard."""

from __future__ import annotations

import argparse
import logging
import sys

# Said in `serve --help` only (the settings table carries the rest).
_EXTRA_HELP = {
    "models": "repeatable",
    "token": "prefer AFFECTSTREAM_TOKEN, which does not show in the process list",
    "auto_attach_types": "comma-separated",
    "allowed_hosts": "comma-separated",
    "allowed_origins": "comma-separated",
    "lsl_out": "for every session, auto-attached ones included",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per setting, ``--<setting with dashes>`` (``--model NAME`` for ``models``).
    Values stay strings here: the settings validate them, so a bad value gets the same message
    from the command line as from the environment."""
    from affectstream.service.settings import ENV_PREFIX, Settings, shown_default

    for name, field in Settings.model_fields.items():
        hints = [_EXTRA_HELP[name]] if name in _EXTRA_HELP else []
        hints.append(f"default {shown_default(name).replace('`', '')}")
        hints.append(f"env {ENV_PREFIX}{name.upper()}")
        help_ = f"{field.description} ({'; '.join(hints)})".replace("%", "%%")
        if name == "models":
            parser.add_argument(
                "--model", action="append", dest="models", metavar="NAME", help=help_
            )
        elif name == "auto_attach":
            # --auto-attach alone: every group (auto_attach_pattern); --auto-attach PATTERN: the
            # groups whose key matches PATTERN
            parser.add_argument(
                "--auto-attach",
                nargs="?",
                const=True,
                default=None,
                metavar="PATTERN",
                help=help_ + " (with PATTERN: sets auto_attach_pattern as well)",
            )
        elif field.annotation is bool:
            parser.add_argument(
                f"--{name.replace('_', '-')}", action="store_true", default=None, help=help_
            )
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", metavar=name.upper(), help=help_)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def run(args: argparse.Namespace) -> int:
    from affectstream.service.settings import Settings, SettingsError, load_settings

    overrides = {name: getattr(args, name, None) for name in Settings.model_fields}
    if args.models:
        overrides["models"] = tuple(args.models)
    if isinstance(args.auto_attach, str):  # --auto-attach PATTERN
        overrides["auto_attach"] = True
        if overrides.get("auto_attach_pattern") is None:
            overrides["auto_attach_pattern"] = args.auto_attach
    try:
        settings = load_settings(overrides)
    except SettingsError as e:
        print(f"affectstream serve: invalid setting: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from affectstream.models.runner import ModelLoadError
    from affectstream.service.app import create_app
    from affectstream.service.state import load_models

    app = create_app(settings)
    try:
        # before the server starts: a model that cannot be loaded is a message and exit code 2,
        # not a traceback from the server's start-up
        load_models(app.state.service)
    except ModelLoadError as e:
        print(f"affectstream serve: {e}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        # a client message larger than this is refused by the protocol (close 1009) before the
        # service buffers it (the route checks again, for servers started otherwise)
        ws_max_size=settings.max_ws_message_bytes,
    )
    return 0
