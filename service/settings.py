"""Service settings: one typed object from command line, environment, ``.env`` and defaults.

Precedence (highest first): command-line options of ``affectstream serve``, ``AFFECTSTREAM_*``
environment variables, a ``.env`` file in the working directory, defaults. Every setting is also a
``serve`` option, ``--<setting with dashes>`` (``--model NAME``, repeatable, for ``models``). List
settings take comma-separated values in the environment (``AFFECTSTREAM_MODELS=a,b``); an empty
variable counts as unset. Invalid values stop start-up with a message that names the setting
(:class:`SettingsError`).

| setting | environment variable | default | meaning |
|---|---|---|---|
| `host` | `AFFECTSTREAM_HOST` | `127.0.0.1` | bind address; any address other than loopback requires `token` |
| `port` | `AFFECTSTREAM_PORT` | `8000` | TCP port |
| `models` | `AFFECTSTREAM_MODELS` | every model in `model_dir` | models to load: folder names in `model_dir`, or paths of model folders |
| `model_dir` | `AFFECTSTREAM_MODEL_DIR` | `models/zoo` of the package | where to look for models by name |
| `auto_attach` | `AFFECTSTREAM_AUTO_ATTACH` | `false` | create a session for every group of streams `<key>-<TYPE>` that appears with `<key>` matching `auto_attach_pattern` (up to `max_sessions`) |
| `token` | `AFFECTSTREAM_TOKEN` | none | required on every REST call and WebSocket; at least 16 characters; required off loopback |
| `queue_size` | `AFFECTSTREAM_QUEUE_SIZE` | `64` | messages queued per WebSocket subscriber before the oldest is dropped |
| `resume_buffer` | `AFFECTSTREAM_RESUME_BUFFER` | `1024` | predictions kept per session for clients that reconnect with `?since=` (0-16384; 0: no resume) |
| `tick_s` | `AFFECTSTREAM_TICK_S` | `0.02` | the scheduler's round over every session, seconds (0.001-1); between rounds a session is served as soon as its streams complete a window |
| `inference_threads` | `AFFECTSTREAM_INFERENCE_THREADS` | `0` | threads on which the models due in a tick run in parallel, each model's ONNX Runtime run on one thread (0-64; 0: one per core) |
| `inference_precision` | `AFFECTSTREAM_INFERENCE_PRECISION` | `int8` | `int8`: serve a model's int8 variant (`model.int8.onnx`, made and measured against the float model by `affectstream.training.commands.quantize`) where its folder has a valid one, the float model elsewhere; `float32`: always the float model |
| `stagger_windows` | `AFFECTSTREAM_STAGGER_WINDOWS` | `true` | each session's window ends shifted within the hop by a fraction derived from its id, so that sessions fall due spread over the hop instead of all at once (`false`: every session's ends on multiples of the model's hop) |
| `buffer_s` | `AFFECTSTREAM_BUFFER_S` | `60` | signal kept per stream, seconds (at least 5) |
| `auto_attach_types` | `AFFECTSTREAM_AUTO_ATTACH_TYPES` | `EEG,GSR,PPG,RESP` | stream types that auto-attach groups into a session |
| `auto_attach_pattern` | `AFFECTSTREAM_AUTO_ATTACH_PATTERN` | `*` | auto-attach only groups whose `<key>` matches this glob (case-sensitive; `serve --auto-attach PATTERN` sets it) |
| `auto_attach_grace_s` | `AFFECTSTREAM_AUTO_ATTACH_GRACE_S` | `30` | an auto-attached session whose streams have all been gone this long is removed, seconds (at least 1) |
| `lsl_out` | `AFFECTSTREAM_LSL_OUT` | `false` | publish each session's predictions as LSL streams, one per model (`affectstream-<session>-<model>`, type `Affect`, stamped with the window's end; docs/lsl.md); `"lsl_out"` in `POST /sessions` overrides it per session |
| `max_sessions` | `AFFECTSTREAM_MAX_SESSIONS` | `32` | sessions at once (POST /sessions and auto-attach); beyond: 429 |
| `max_models_per_session` | `AFFECTSTREAM_MAX_MODELS_PER_SESSION` | `16` | models named in one session, no duplicates; beyond: 422 |
| `max_subscribers` | `AFFECTSTREAM_MAX_SUBSCRIBERS` | `8` | WebSocket clients per session; beyond: closed with 1013 (try again later) |
| `max_body_bytes` | `AFFECTSTREAM_MAX_BODY_BYTES` | `1048576` | request body size, bytes; beyond: 413 before parsing |
| `max_ws_message_bytes` | `AFFECTSTREAM_MAX_WS_MESSAGE_BYTES` | `4096` | a client's WebSocket message size, bytes; beyond: closed with 1009 |
| `max_ws_messages_per_s` | `AFFECTSTREAM_MAX_WS_MESSAGES_PER_S` | `10` | client messages per second per WebSocket (bursts of as many); beyond: an error message, then closed with 1008 |
| `ws_compression` | `AFFECTSTREAM_WS_COMPRESSION` | `true` | compress WebSocket messages (permessage-deflate) for clients that offer it; off: a message's encoded bytes go out as they are, without a compression per client (~25 µs of the event loop per message and client, ~100 KiB per connection saved) |
| `allowed_hosts` | `AFFECTSTREAM_ALLOWED_HOSTS` | bound to loopback: `localhost`, `127.0.0.1`, `::1` and `host`; otherwise any (the token protects) | names the `Host` header may carry (`*`: any); beyond: 400, WebSocket closed with 4403 |
| `allowed_origins` | `AFFECTSTREAM_ALLOWED_ORIGINS` | none (same origin only) | browser origins (`scheme://host:port`, `*`: any) allowed besides the service's own; requests without `Origin` pass; beyond: 403, WebSocket closed with 4403 |
| `bus` | `AFFECTSTREAM_BUS` | none | Redis URL (`redis://HOST:6379/0`): this service becomes a gateway (registry, REST, WebSocket relay) and workers on the same bus serve the sessions; none: one process does everything |
| `workers` | `AFFECTSTREAM_WORKERS` | `0` | worker processes to start on `bus` beside the gateway (0-64; the way to use several cores of one machine); needs `bus` |

The table is :func:`settings_table` (a test keeps this docstring and the README in step with it).
"""  # noqa: E501 (the table's rows are as long as they are)

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

import affectstream.models as models_package

__all__ = [
    "DEFAULT_MODEL_DIR",
    "ENV_PREFIX",
    "MAX_RESUME_BUFFER",
    "Settings",
    "SettingsError",
    "available_models",
    "load_settings",
    "settings_table",
    "shown_default",
]

DEFAULT_MODEL_DIR = Path(models_package.__file__).resolve().parent / "zoo"
ENV_PREFIX = "AFFECTSTREAM_"
MAX_RESUME_BUFFER = 16384
"""The most predictions ``resume_buffer`` may keep per session (a few MB at most per session)."""


class SettingsError(ValueError):
    """An invalid setting; the message names it."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def available_models(model_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in Path(model_dir).glob("*/model.onnx"))


# What load_settings reads instead of os.environ and ./.env: (environ, dotenv file or None).
_SOURCES: ContextVar[tuple[Mapping[str, str], Path | None] | None] = ContextVar(
    "affectstream_settings_sources", default=None
)


class _MappingEnvSource(EnvSettingsSource):
    """The ``AFFECTSTREAM_*`` variables of a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # what EnvSettingsSource does with os.environ: names matched case-insensitively (unless
        # configured otherwise), empty values dropped (env_ignore_empty)
        return {
            (k if self.case_sensitive else k.lower()): v
            for k, v in self._environ.items()
            if not (self.env_ignore_empty and v == "")
        }


# Shown in the table's default column where the default itself says little.
_SHOWN_DEFAULTS = {
    "models": "every model in `model_dir`",
    "model_dir": "`models/zoo` of the package",
    "allowed_hosts": "bound to loopback: `localhost`, `127.0.0.1`, `::1` and `host`; "
    "otherwise any (the token protects)",
    "allowed_origins": "none (same origin only)",
}

_KINDS = {
    "int": "integer",
    "float": "number",
    "bool": "boolean (true/false, 1/0, yes/no, on/off)",
    "path": "path",
    "string": "string",
}


class Settings(BaseSettings):
    """The service's settings (see the module docstring). Frozen; build it with
    :func:`load_settings`, or directly (``Settings(model_dir=...)``), which also reads the
    environment and ``.env``."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",  # a shared .env may hold other programs' variables
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
    )

    host: str = Field(
        "127.0.0.1",
        description="bind address; any address other than loopback requires `token`",
    )
    port: int = Field(8000, description="TCP port")
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="models to load: folder names in `model_dir`, or paths of model folders",
    )
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="where to look for models by name")
    auto_attach: bool = Field(
        False,
        description="create a session for every group of streams `<key>-<TYPE>` that appears "
        "with `<key>` matching `auto_attach_pattern` (up to `max_sessions`)",
    )
    token: str | None = Field(
        None,
        repr=False,  # a secret: keep it out of logs and tracebacks
        description="required on every REST call and WebSocket; at least 16 characters; "
        "required off loopback",
    )
    queue_size: int = Field(
        64, description="messages queued per WebSocket subscriber before the oldest is dropped"
    )
    resume_buffer: int = Field(
        1024,
        description="predictions kept per session for clients that reconnect with `?since=` "
        "(0-16384; 0: no resume)",
    )
    tick_s: float = Field(
        0.02,
        description="the scheduler's round over every session, seconds (0.001-1); between "
        "rounds a session is served as soon as its streams complete a window",
    )
    inference_threads: int = Field(
        0,
        description="threads on which the models due in a tick run in parallel, each model's "
        "ONNX Runtime run on one thread (0-64; 0: one per core)",
    )
    inference_precision: str = Field(
        "int8",
        description="`int8`: serve a model's int8 variant (`model.int8.onnx`, made and measured "
        "against the float model by `affectstream.training.commands.quantize`) where its folder "
        "has a valid one, the float model elsewhere; `float32`: always the float model",
    )
    stagger_windows: bool = Field(
        True,
        description="each session's window ends shifted within the hop by a fraction derived "
        "from its id, so that sessions fall due spread over the hop instead of all at once "
        "(`false`: every session's ends on multiples of the model's hop)",
    )
    buffer_s: float = Field(60.0, description="signal kept per stream, seconds (at least 5)")
    auto_attach_types: Annotated[tuple[str, ...], NoDecode] = Field(
        ("EEG", "GSR", "PPG", "RESP"),
        description="stream types that auto-attach groups into a session",
    )
    auto_attach_pattern: str = Field(
        "*",
        min_length=1,
        max_length=256,
        description="auto-attach only groups whose `<key>` matches this glob (case-sensitive; "
        "`serve --auto-attach PATTERN` sets it)",
    )
    auto_attach_grace_s: float = Field(
        30.0,
        description="an auto-attached session whose streams have all been gone this long is "
        "removed, seconds (at least 1)",
    )
    lsl_out: bool = Field(
        False,
        description="publish each session's predictions as LSL streams, one per model "
        "(`affectstream-<session>-<model>`, type `Affect`, stamped with the window's end; "
        'docs/lsl.md); `"lsl_out"` in `POST /sessions` overrides it per session',
    )
    max_sessions: int = Field(
        32, description="sessions at once (POST /sessions and auto-attach); beyond: 429"
    )
    max_models_per_session: int = Field(
        16, description="models named in one session, no duplicates; beyond: 422"
    )
    max_subscribers: int = Field(
        8,
        description="WebSocket clients per session; beyond: closed with 1013 (try again later)",
    )
    max_body_bytes: int = Field(
        1_048_576, description="request body size, bytes; beyond: 413 before parsing"
    )
    max_ws_message_bytes: int = Field(
        4096, description="a client's WebSocket message size, bytes; beyond: closed with 1009"
    )
    max_ws_messages_per_s: float = Field(
        10.0,
        description="client messages per second per WebSocket (bursts of as many); beyond: an "
        "error message, then closed with 1008",
    )
    ws_compression: bool = Field(
        True,
        description="compress WebSocket messages (permessage-deflate) for clients that offer "
        "it; off: a message's encoded bytes go out as they are, without a compression per "
        "client (~25 µs of the event loop per message and client, ~100 KiB per connection "
        "saved)",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="names the `Host` header may carry (`*`: any); beyond: 400, WebSocket "
        "closed with 4403",
    )
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="browser origins (`scheme://host:port`, `*`: any) allowed besides the "
        "service's own; requests without `Origin` pass; beyond: 403, WebSocket closed with 4403",
    )
    bus: str | None = Field(
        None,
        description="Redis URL (`redis://HOST:6379/0`): this service becomes a gateway "
        "(registry, REST, WebSocket relay) and workers on the same bus serve the sessions; "
        "none: one process does everything",
    )
    workers: int = Field(
        0,
        description="worker processes to start on `bus` beside the gateway (0-64; the way to "
        "use several cores of one machine); needs `bus`",
    )

    if not TYPE_CHECKING:  # keep the typed keyword signature that type checkers derive

        def __init__(self, **values: Any) -> None:
            unknown = [k for k in values if k not in type(self).model_fields and k[:1] != "_"]
            if unknown:
                known = ", ".join(type(self).model_fields)
                raise SettingsError(f"{unknown[0]}: not a setting (settings: {known})")
            try:
                super().__init__(**values)
            except ValidationError as e:
                raise SettingsError(_describe(e)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = _SOURCES.get()
        if given is not None:  # inside load_settings
            environ, dotenv = given
            env_settings = _MappingEnvSource(settings_cls, environ)
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=dotenv)
        return init_settings, env_settings, dotenv_settings

    @field_validator(
        "models", "auto_attach_types", "allowed_hosts", "allowed_origins", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("port")
    @classmethod
    def _check_port(cls, port: int) -> int:
        if not 0 <= port <= 65535:
            raise SettingsError(f"port: {port} is not a TCP port (0-65535)")
        return port

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: str | None) -> str | None:
        if token is not None and len(token) < 16:
            raise SettingsError("token: use at least 16 characters")
        return token

    @field_validator("queue_size")
    @classmethod
    def _check_queue_size(cls, queue_size: int) -> int:
        if queue_size < 1:
            raise SettingsError(f"queue_size: must be ≥ 1, got {queue_size}")
        return queue_size

    @field_validator("resume_buffer")
    @classmethod
    def _check_resume_buffer(cls, resume_buffer: int) -> int:
        if not 0 <= resume_buffer <= MAX_RESUME_BUFFER:
            raise SettingsError(
                f"resume_buffer: must be within 0-{MAX_RESUME_BUFFER}, got {resume_buffer}"
            )
        return resume_buffer

    @field_validator("tick_s")
    @classmethod
    def _check_tick(cls, tick_s: float) -> float:
        if not 0.001 <= tick_s <= 1.0:
            raise SettingsError(f"tick_s: must be within 0.001-1 s, got {tick_s}")
        return tick_s

    @field_validator("inference_threads")
    @classmethod
    def _check_inference_threads(cls, threads: int) -> int:
        if not 0 <= threads <= 64:
            raise SettingsError(f"inference_threads: must be within 0-64, got {threads}")
        return threads

    @field_validator("inference_precision")
    @classmethod
    def _check_inference_precision(cls, precision: str) -> str:
        if precision not in ("int8", "float32"):
            raise SettingsError(f"inference_precision: int8 or float32, got {precision!r}")
        return precision

    def inference_threads_used(self) -> int:
        """``inference_threads``, with 0 meaning one per core of this machine."""
        return self.inference_threads or os.cpu_count() or 1

    @field_validator("buffer_s")
    @classmethod
    def _check_buffer(cls, buffer_s: float) -> float:
        if buffer_s < 5:
            raise SettingsError(f"buffer_s: must be ≥ 5 s, got {buffer_s}")
        return buffer_s

    @field_validator(
        "max_sessions",
        "max_models_per_session",
        "max_subscribers",
        "max_body_bytes",
        "max_ws_message_bytes",
    )
    @classmethod
    def _check_positive(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise SettingsError(f"{info.field_name}: must be ≥ 1, got {value}")
        return value

    @field_validator("max_models_per_session")
    @classmethod
    def _check_models_per_session(cls, value: int) -> int:
        if value > 256:
            raise SettingsError(f"max_models_per_session: at most 256, got {value}")
        return value

    @field_validator("max_ws_messages_per_s")
    @classmethod
    def _check_rate(cls, rate: float) -> float:
        if not 0 < rate < math.inf:
            raise SettingsError(f"max_ws_messages_per_s: must be > 0, got {rate}")
        return rate

    @field_validator("auto_attach_grace_s")
    @classmethod
    def _check_grace(cls, grace: float) -> float:
        if not 1 <= grace < math.inf:
            raise SettingsError(f"auto_attach_grace_s: must be ≥ 1 s, got {grace}")
        return grace

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for o in origins:
            if o != "*" and not re.fullmatch(r"https?://[^/?#\s]+", o):
                raise SettingsError(
                    f"allowed_origins: {o!r} is not an origin (scheme://host[:port], or *)"
                )
        return tuple(o.lower() for o in origins)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for h in hosts:
            if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]*]+", h):
                raise SettingsError(f"allowed_hosts: {h!r} is not a host name (or *)")
        return tuple(h.lower().strip("[]") for h in hosts)

    @field_validator("model_dir")
    @classmethod
    def _check_model_dir(cls, model_dir: Path) -> Path:
        if not model_dir.is_dir():
            raise SettingsError(f"model_dir: {model_dir} is not a folder")
        return model_dir

    @field_validator("bus")
    @classmethod
    def _check_bus(cls, bus: str | None) -> str | None:
        if bus is not None and not re.match(r"^(redis|rediss|unix)://", bus):
            raise SettingsError(
                "bus: a Redis URL, redis://HOST:PORT/DB (rediss:// for TLS, unix:// for a socket)"
            )
        return bus

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, workers: int) -> int:
        if not 0 <= workers <= 64:
            raise SettingsError(f"workers: must be within 0-64, got {workers}")
        return workers

    @model_validator(mode="after")
    def _check_together(self) -> Self:
        if self.workers and self.bus is None:
            raise SettingsError("workers: local workers need a bus (--bus redis://HOST:6379/0)")
        if not _is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"host: binding to {self.host} (not loopback) requires a token "
                "(--token or AFFECTSTREAM_TOKEN): anyone on the network could read the stream"
            )
        for name in self.models:
            if (
                not (self.model_dir / name / "model.onnx").is_file()
                and not (Path(name) / "model.onnx").is_file()
            ):
                raise SettingsError(
                    f"models: {name!r} is neither a folder of {self.model_dir} nor a model path "
                    f"(available: {', '.join(available_models(self.model_dir)) or 'none'})"
                )
        return self

    def host_names(self) -> frozenset[str] | None:
        """The names the ``Host`` header may carry (lower case, no port); ``None``: any."""
        if "*" in self.allowed_hosts:
            return None
        if self.allowed_hosts:
            return frozenset(self.allowed_hosts)
        if _is_loopback(self.host):
            return frozenset({"localhost", "127.0.0.1", "::1", self.host.lower().strip("[]")})
        return None  # bound off loopback: a token is required, which rebinding cannot read

    def model_paths(self) -> list[Path]:
        names = self.models or tuple(available_models(self.model_dir))
        out = []
        for name in names:
            direct = Path(name)
            out.append(direct if (direct / "model.onnx").is_file() else self.model_dir / name)
        return out


def _describe(error: ValidationError) -> str:
    """One line per invalid setting, each starting with the setting's name."""
    lines = []
    for e in error.errors(include_url=False):
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, SettingsError):
            lines.append(str(cause))
            continue
        name = ".".join(str(p) for p in e["loc"]) or "settings"
        kind = _KINDS.get(e["type"].split("_")[0])
        if kind is not None and isinstance(e["input"], str):
            lines.append(f"{name}: {e['input']!r} is not a valid {kind}")
        else:
            lines.append(f"{name}: {e['input']!r}: {e['msg']}")
    return "; ".join(lines)


@contextmanager
def _sources(environ: Mapping[str, str], dotenv: Path | None) -> Iterator[None]:
    token = _SOURCES.set((environ, dotenv))
    try:
        yield
    finally:
        _SOURCES.reset(token)


def load_settings(
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> Settings:
    """Build :class:`Settings`; see the module docstring for the precedence.

    ``overrides`` are the command-line values (``None`` values are ignored); ``environ`` replaces
    ``os.environ``; ``dotenv=None`` reads no ``.env`` file.
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    with _sources(os.environ if environ is None else environ, dotenv):
        return Settings(**values)


def shown_default(name: str) -> str:
    """A setting's default as the table shows it (Markdown)."""
    if name in _SHOWN_DEFAULTS:
        return _SHOWN_DEFAULTS[name]
    value = Settings.model_fields[name].default
    if value is None:
        return "none"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, tuple):
        text = ",".join(value)
    else:
        text = str(value)
    return f"`{text}`"


def settings_table() -> str:
    """The Markdown table of the settings (module docstring and README, Configuration)."""
    rows = [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = f"{ENV_PREFIX}{name.upper()}"
        rows.append(f"| `{name}` | `{env}` | {shown_default(name)} | {field.description} |")
    return "\n".join(rows)
