"""Settings validation and the hub's bounded, drop-oldest queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from affectstream.service.hub import Hub
from affectstream.service.settings import Settings, SettingsError, load_settings


def test_defaults_bind_loopback(tmp_path: Path) -> None:
    s = load_settings(environ={}, dotenv=None, overrides={"model_dir": tmp_path})
    assert s.host == "127.0.0.1" and s.port == 8000 and s.token is None


def test_non_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^host: binding to 0.0.0.0 .* requires a token"):
        Settings(host="0.0.0.0", model_dir=tmp_path)
    Settings(host="0.0.0.0", token="x" * 20, model_dir=tmp_path)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"AFFECTSTREAM_PORT": "eighty"}, "port: 'eighty' is not a valid"),
        ({"AFFECTSTREAM_PORT": "70000"}, "port: 70000 is not a TCP port"),
        ({"AFFECTSTREAM_TOKEN": "short"}, "token: use at least 16"),
        ({"AFFECTSTREAM_AUTO_ATTACH": "maybe"}, "auto_attach: 'maybe'"),
        ({"AFFECTSTREAM_TICK_S": "5"}, "tick_s: must be within"),
        ({"AFFECTSTREAM_MODELS": "nope"}, "models: 'nope' is neither"),
    ],
)
def test_invalid_settings_name_the_setting(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    env = {"AFFECTSTREAM_MODEL_DIR": str(tmp_path), **env}
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env, dotenv=None)
    assert fragment in str(info.value)


def test_precedence_cli_over_env_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("AFFECTSTREAM_PORT=7000\nAFFECTSTREAM_QUEUE_SIZE=9\n# comment\n")
    env = {"AFFECTSTREAM_PORT": "7100", "AFFECTSTREAM_MODEL_DIR": str(tmp_path)}
    s = load_settings(environ=env, dotenv=dotenv, overrides={"port": 7200})
    assert s.port == 7200 and s.queue_size == 9
    assert load_settings(environ=env, dotenv=dotenv).port == 7100


def test_slow_subscriber_drops_oldest_and_never_blocks_the_others() -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        hub = Hub(queue_size=4, loop=asyncio.get_running_loop())
        slow, fast = hub.subscribe("s"), hub.subscribe("s")
        got: list[int] = []
        for i in range(20):
            hub.publish("s", {"seq": i})
            await asyncio.sleep(0)  # let the loop run the threadsafe callbacks
            got.append((await fast.queue.get())["seq"])
        slow_left = [slow.queue.get_nowait()["seq"] for _ in range(slow.queue.qsize())]
        return got, slow_left, slow.dropped

    fast_seen, slow_left, dropped = asyncio.run(scenario())
    assert fast_seen == list(range(20))  # the fast client got everything, in order
    assert slow_left == [16, 17, 18, 19]  # the blocked one kept the newest 4
    assert dropped == 16
