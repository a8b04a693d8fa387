"""Service settings: one typed object from defaults, ``.env``, environment and command line.

Precedence (highest first): command-line options, ``AFFECTSTREAM_*`` environment variables, a
``.env`` file in the working directory, defaults. Invalid values stop start-up with a message that
names the setting (:class:`SettingsError`).

| setting | env | default |
|---|---|---|
| host | AFFECTSTREAM_HOST | 127.0.0.1 |
| port | AFFECTSTREAM_PORT | 8000 |
| models | AFFECTSTREAM_MODELS (comma-separated) | every model in ``models/zoo`` |
| model_dir | AFFECTSTREAM_MODEL_DIR | ``models/zoo`` of the installed package |
| auto_attach | AFFECTSTREAM_AUTO_ATTACH | false |
| token | AFFECTSTREAM_TOKEN | none (required for a non-loopback host) |
| queue_size | AFFECTSTREAM_QUEUE_SIZE | 64 messages per subscriber |
| tick_s | AFFECTSTREAM_TICK_S | 0.02 |
| buffer_s | AFFECTSTREAM_BUFFER_S | 60 |
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import affectstream.models as models_package

__all__ = ["DEFAULT_MODEL_DIR", "Settings", "SettingsError", "load_settings"]

DEFAULT_MODEL_DIR = Path(models_package.__file__).resolve().parent / "zoo"


class SettingsError(ValueError):
    """An invalid setting; the message names it."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = ()
    model_dir: Path = DEFAULT_MODEL_DIR
    auto_attach: bool = False
    token: str | None = None
    queue_size: int = 64
    tick_s: float = 0.02
    buffer_s: float = 60.0
    auto_attach_types: tuple[str, ...] = field(default=("EEG", "GSR", "PPG", "RESP"))

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port: {self.port} is not a TCP port (0-65535)")
        if not _is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"host: binding to {self.host} (not loopback) requires a token "
                "(--token or AFFECTSTREAM_TOKEN): anyone on the network could read the stream"
            )
        if self.token is not None and len(self.token) < 16:
            raise SettingsError("token: use at least 16 characters")
        if self.queue_size < 1:
            raise SettingsError(f"queue_size: must be ≥ 1, got {self.queue_size}")
        if not 0.001 <= self.tick_s <= 1.0:
            raise SettingsError(f"tick_s: must be within 0.001-1 s, got {self.tick_s}")
        if self.buffer_s < 5:
            raise SettingsError(f"buffer_s: must be ≥ 5 s, got {self.buffer_s}")
        if not self.model_dir.is_dir():
            raise SettingsError(f"model_dir: {self.model_dir} is not a folder")
        for name in self.models:
            if (
                not (self.model_dir / name / "model.onnx").is_file()
                and not (Path(name) / "model.onnx").is_file()
            ):
                raise SettingsError(
                    f"models: {name!r} is neither a folder of {self.model_dir} nor a model path "
                    f"(available: {', '.join(available_models(self.model_dir)) or 'none'})"
                )

    def model_paths(self) -> list[Path]:
        names = self.models or tuple(available_models(self.model_dir))
        out = []
        for name in names:
            direct = Path(name)
            out.append(direct if (direct / "model.onnx").is_file() else self.model_dir / name)
        return out


def available_models(model_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in Path(model_dir).glob("*/model.onnx"))


def _read_dotenv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip().strip("'\"")
    return out


def _convert(name: str, kind: Any, raw: Any) -> Any:
    if raw is None or not isinstance(raw, str):
        return raw
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (bool, "bool"):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        if str(kind).startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if "None" in str(kind) and raw == "":
            return None
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a valid {kind}") from None
    return raw


def load_settings(
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> Settings:
    """Build :class:`Settings`; see the module docstring for the precedence."""
    env = dict(_read_dotenv(dotenv) if dotenv else {})
    env.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = f"AFFECTSTREAM_{f.name.upper()}"
        if key in env:
            values[f.name] = _convert(f.name, f.type, env[key])
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    try:
        return Settings(**values)
    except TypeError as e:
        raise SettingsError(str(e)) from None
