"""Settings from pydantic-settings: the sources (command line, environment, ``.env``), list values,
the ``serve`` options made from the fields, and the settings table kept in step in the module
docstring and the README."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

import affectstream.service.settings as settings_module
from affectstream.service.cli import build_parser
from affectstream.service.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    load_settings,
    settings_table,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Settings()`` and ``load_settings()`` read the process environment: start from none."""
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)


def _zoo(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "model.onnx").write_bytes(b"")
    return root


def _table_rows(text: str) -> list[list[str]]:
    """The rows of the first Markdown table in ``text`` with a ``setting`` header, header and
    separator left out."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| setting |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _readme_configuration() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Configuration")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_docstring_table_lists_every_setting_with_env_and_default(tmp_path: Path) -> None:
    doc = settings_module.__doc__ or ""
    assert settings_table() in doc, "regenerate the table: print(settings_table())"
    rows = _table_rows(doc)
    assert [r[0] for r in rows] == [f"`{name}`" for name in Settings.model_fields]
    assert [r[1] for r in rows] == [
        f"`{ENV_PREFIX}{name.upper()}`" for name in Settings.model_fields
    ]
    defaults = {r[0].strip("`"): r[2] for r in rows}
    assert defaults["token"] == "none" and defaults["models"] == "every model in `model_dir`"
    for name, field in Settings.model_fields.items():
        shown = defaults[name]
        if name == "model_dir" or not re.fullmatch(r"`[^`]+`", shown):
            continue
        # a literal default, given as the variable, is the default
        env = {f"{ENV_PREFIX}{name.upper()}": shown.strip("`")}
        s = load_settings({"model_dir": tmp_path}, environ=env, dotenv=None)
        assert getattr(s, name) == field.default, name


def test_readme_configuration_table_is_the_settings_table() -> None:
    """The README's Configuration section carries the same table (paste ``settings_table()``)."""
    section = _readme_configuration()
    assert settings_table() in section, "README.md, Configuration: paste settings_table()"


def test_every_table_row_is_read_from_the_environment(tmp_path: Path) -> None:
    zoo = _zoo(tmp_path / "zoo", "a", "b")
    values = {
        "host": "0.0.0.0",
        "port": "9001",
        "models": "a, b",
        "model_dir": str(zoo),
        "auto_attach": "yes",
        "token": "k" * 20,
        "queue_size": "3",
        "resume_buffer": "7",
        "tick_s": "0.05",
        "inference_threads": "3",
        "inference_precision": "float32",
        "stagger_windows": "off",
        "buffer_s": "30",
        "auto_attach_types": "EEG,GSR",
        "auto_attach_pattern": "lab-*",
        "auto_attach_grace_s": "12",
        "lsl_out": "on",
        "max_sessions": "5",
        "max_models_per_session": "4",
        "max_subscribers": "3",
        "max_body_bytes": "2048",
        "max_ws_message_bytes": "512",
        "max_ws_messages_per_s": "2.5",
        "ws_compression": "true",
        "allowed_hosts": "lab-pc, lab-pc.local",
        "allowed_origins": "http://lab-pc:8000",
        "bus": "redis://10.0.0.5:6379/2",
        "workers": "3",
    }
    assert set(values) == set(Settings.model_fields)
    env = {f"{ENV_PREFIX}{k.upper()}": v for k, v in values.items()}
    s = load_settings(environ=env, dotenv=None)
    assert (s.host, s.port, s.models, s.model_dir) == ("0.0.0.0", 9001, ("a", "b"), zoo)
    assert (s.auto_attach, s.token, s.queue_size) == (True, "k" * 20, 3)
    assert (s.tick_s, s.buffer_s, s.auto_attach_types) == (0.05, 30.0, ("EEG", "GSR"))
    assert (s.auto_attach_pattern, s.auto_attach_grace_s, s.lsl_out) == ("lab-*", 12.0, True)
    assert (s.max_sessions, s.max_models_per_session, s.max_subscribers) == (5, 4, 3)
    assert s.ws_compression is True
    assert (s.max_body_bytes, s.max_ws_message_bytes, s.max_ws_messages_per_s) == (2048, 512, 2.5)
    assert s.allowed_hosts == ("lab-pc", "lab-pc.local")
    assert s.allowed_origins == ("http://lab-pc:8000",)
    assert s.resume_buffer == 7
    assert s.inference_threads == s.inference_threads_used() == 3
    assert s.inference_precision == "float32"
    assert s.stagger_windows is False
    assert (s.bus, s.workers) == ("redis://10.0.0.5:6379/2", 3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": 2}, "workers: local workers need a bus"),
        ({"bus": "http://x:6379"}, "bus: a Redis URL"),
        ({"bus": "redis://x:6379/0", "workers": 65}, "workers: must be within 0-64"),
    ],
)
def test_bus_settings_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**values)


def test_comma_lists_from_env_dotenv_and_overrides(tmp_path: Path) -> None:
    zoo = _zoo(tmp_path / "zoo", "one", "two")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f'AFFECTSTREAM_MODELS="one,two"\nAFFECTSTREAM_MODEL_DIR={zoo}\n')
    assert load_settings(environ={}, dotenv=dotenv).models == ("one", "two")
    env = {"AFFECTSTREAM_MODELS": "two", "AFFECTSTREAM_MODEL_DIR": str(zoo)}
    assert load_settings(environ=env, dotenv=dotenv).models == ("two",)
    assert load_settings({"models": ("one",)}, environ=env, dotenv=dotenv).models == ("one",)
    assert Settings(model_dir=zoo, auto_attach_types="PPG , RESP,").auto_attach_types == (  # type: ignore[arg-type]
        "PPG",
        "RESP",
    )


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    """``AFFECTSTREAM_TOKEN=`` (as in docker/.env.example) is no token, not an empty one."""
    env = {
        "AFFECTSTREAM_MODEL_DIR": str(tmp_path),
        "AFFECTSTREAM_TOKEN": "",
        "AFFECTSTREAM_MODELS": "",
    }
    s = load_settings(environ=env, dotenv=None)
    assert s.token is None and s.models == ()
    with pytest.raises(SettingsError, match=r"^host: binding to 0\.0\.0\.0 .* requires a token"):
        load_settings(environ={**env, "AFFECTSTREAM_HOST": "0.0.0.0"}, dotenv=None)


def test_dotenv_may_hold_other_variables(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("LSLAPICFG=/x.cfg\nexport AFFECTSTREAM_PORT=7001\n# comment\n\nOTHER='1'\n")
    s = load_settings(environ={"AFFECTSTREAM_MODEL_DIR": str(tmp_path)}, dotenv=dotenv)
    assert s.port == 7001


def test_dotenv_of_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"AFFECTSTREAM_PORT=7004\nAFFECTSTREAM_MODEL_DIR={tmp_path}\n")
    assert load_settings(environ={}).port == 7004  # the default: ./.env
    assert Settings().port == 7004
    assert load_settings({"model_dir": tmp_path}, environ={}, dotenv=None).port == 8000


def test_environ_replaces_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFFECTSTREAM_PORT", "7002")
    monkeypatch.setenv("AFFECTSTREAM_MODEL_DIR", str(tmp_path))
    assert load_settings(dotenv=None).port == 7002  # environ=None: the process environment
    assert (
        load_settings(environ={"AFFECTSTREAM_MODEL_DIR": str(tmp_path)}, dotenv=None).port == 8000
    )
    assert Settings().port == 7002  # constructed directly: a BaseSettings reads the environment


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"port": "eighty"}, "port: 'eighty' is not a valid integer"),
        ({"tick_s": "fast"}, "tick_s: 'fast' is not a valid number"),
        ({"queue_size": 0}, "queue_size: must be ≥ 1, got 0"),
        ({"buffer_s": 1}, "buffer_s: must be ≥ 5 s, got 1"),
        ({"inference_threads": 65}, "inference_threads: must be within 0-64, got 65"),
        ({"inference_precision": "fp16"}, "inference_precision: int8 or float32, got 'fp16'"),
        ({"model_dir": "/does/not/exist"}, "model_dir: /does/not/exist is not a folder"),
        ({"modle_dir": "x"}, "modle_dir: not a setting"),
    ],
)
def test_invalid_overrides_name_the_setting(
    tmp_path: Path, overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"model_dir": tmp_path, **overrides}, environ={}, dotenv=None)
    assert fragment in str(info.value)


def test_several_invalid_settings_are_all_named(tmp_path: Path) -> None:
    env = {"AFFECTSTREAM_PORT": "x", "AFFECTSTREAM_QUEUE_SIZE": "0"}
    with pytest.raises(SettingsError) as info:
        load_settings({"model_dir": tmp_path}, environ=env, dotenv=None)
    assert str(info.value).startswith("port: 'x' is not a valid integer; queue_size: must be")


def test_settings_are_frozen_and_hide_the_token(tmp_path: Path) -> None:
    s = Settings(model_dir=tmp_path, token="secret-token-0123456789")
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]
    assert "secret-token" not in repr(s)
    assert s == Settings(model_dir=tmp_path, token="secret-token-0123456789")


def _serve_options() -> dict[str, argparse.Action]:
    parser = build_parser("serve")
    return {a.dest: a for a in parser._actions if a.option_strings}


def test_every_setting_is_a_serve_option() -> None:
    options = _serve_options()
    assert set(Settings.model_fields) <= set(options)
    assert options["models"].option_strings == ["--model"]
    assert options["model_dir"].option_strings == ["--model-dir"]
    for name in Settings.model_fields:
        assert f"{ENV_PREFIX}{name.upper()}" in (options[name].help or "")


def test_serve_options_override_environment_and_dotenv(tmp_path: Path) -> None:
    zoo = _zoo(tmp_path / "zoo", "one", "two")
    args = build_parser("serve").parse_args(
        ["--model", "one", "--model", "two", "--model-dir", str(zoo), "--tick-s", "0.1"]
    )
    overrides = {name: getattr(args, name) for name in Settings.model_fields}
    overrides["models"] = tuple(args.models)
    env = {"AFFECTSTREAM_TICK_S": "0.5", "AFFECTSTREAM_PORT": "7003"}
    s = load_settings(overrides, environ=env, dotenv=None)
    assert (s.models, s.model_dir, s.tick_s, s.port) == (("one", "two"), zoo, 0.1, 7003)


def test_serve_reports_a_bad_option_value(capsys: pytest.CaptureFixture[str]) -> None:
    from affectstream.service.cli import main

    assert main(["serve", "--port", "eighty", "--model-dir", "/"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"invalid setting: port: 'eighty' is not a valid integer", err), err
