"""Run the service: LSL sessions in, valence/arousal over WebSocket out, with REST and dashboard."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from typing import Any

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
    from affectstream.service.bus import BusUnavailableError
    from affectstream.service.state import load_models

    try:
        app = create_app(settings, freeze_heap=True)
    except BusUnavailableError as e:
        print(f"affectstream serve: {e}", file=sys.stderr)
        return 2
    try:
        # before the server starts: a model that cannot be loaded is a message and exit code 2,
        # not a traceback from the server's start-up
        load_models(app.state.service)
    except ModelLoadError as e:
        print(f"affectstream serve: {e}", file=sys.stderr)
        return 2
    workers = start_workers(settings, args.log_level)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            **server_options(settings),
        )
    finally:
        stop_workers(workers)
    return 0


def server_options(settings: Any) -> dict[str, Any]:
    """The uvicorn options the settings decide (``serve``, and the tests' live server)."""
    return {
        # the route refuses a client message over max_ws_message_bytes with a close handshake
        # (1009) once it has read it; the protocol refuses only what is over max_body_bytes
        # (1 MiB), before buffering it: refused there, while the client is still sending, the
        # client may see the connection reset before the close frame (the fuzz test did)
        "ws_max_size": max(settings.max_ws_message_bytes, settings.max_body_bytes),
        # permessage-deflate costs ~25 us of the event loop's CPU per message and client and
        # ~100 KiB of zlib state per connection (measured; #16); on by default: see CHANGELOG
        "ws_per_message_deflate": settings.ws_compression,
    }


# what a local worker needs to serve as this process would (the rest is the gateway's)
_WORKER_SETTINGS = ("model_dir", "models", "tick_s", "buffer_s", "lsl_out")


def start_workers(settings: Any, log_level: str) -> list[subprocess.Popen[bytes]]:
    """``settings.workers`` processes of ``affectstream worker`` on ``settings.bus``, with this
    service's model and pipeline settings (through the environment)."""
    from affectstream.service.settings import ENV_PREFIX

    if not settings.workers:
        return []
    env = dict(os.environ)
    for name in _WORKER_SETTINGS:
        value = getattr(settings, name)
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        if isinstance(value, bool):
            text = str(value).lower()
        if value is not None and text:
            env[f"{ENV_PREFIX}{name.upper()}"] = text
    for name in ("BUS", "WORKERS", "AUTO_ATTACH", "TOKEN"):
        env.pop(f"{ENV_PREFIX}{name}", None)  # a worker serves no clients and starts no workers
    command = [sys.executable, "-m", "affectstream.service", "worker", "--bus", settings.bus]
    return [
        subprocess.Popen([*command, "--log-level", log_level], env=env)
        for _ in range(settings.workers)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM each (a worker gives its leases back), SIGKILL what has not ended after
    ``grace_s``."""
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in workers:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
