"""Helpers that run the real stack in tests: a tiny GSR model, a uvicorn server, a DEAP replay.

Typical use (the order matters on the way out: the server's inlets close before the replay's
outlets go away)::

    model = write_gsr_model(tmp_path / "models" / "gsr-tiny")
    with run_replay(synthetic_dir / "s01.dat", session_name, cli_env), \\
            run_service(Settings(model_dir=model.parent, models=(model.name,),
                                 auto_attach=True, token=TOKEN)) as live:
        wait_until(lambda: bool(live.get_json("/sessions", token=TOKEN)["sessions"]), 20)

The replay publishes ``<session>-EEG``, ``<session>-GSR`` … and with ``auto_attach`` the service
creates a session named ``<session>`` for them (about one second after they appear).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectstream.models.contract import InputContract, ModelContract, file_sha256
from affectstream.service.settings import Settings
from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind

__all__ = [
    "GSR_INPUT",
    "LiveService",
    "free_port",
    "gsr_contract",
    "replay_log",
    "restartable_port",
    "run_replay",
    "run_service",
    "stop_process",
    "wait_until",
    "write_gsr_model",
    "write_gsr_onnx",
]

GSR_INPUT = FeatureInput(
    name="x",
    kind=FeatureKind.RAW,
    channels=(ChannelRef("GSR", "GSR"),),
    srate=16.0,
    window_s=2.0,
)
"""2 s of raw skin conductance at 16 Hz: the model input is (batch, 32, 1)."""

# Synthetic DEAP skin conductance is about 4.5 ± 1 µS: normalised with these, the model's mean
# term moves around 0 and its outputs stay away from 0 and 1.
GSR_MEAN_US, GSR_STD_US = 4.5, 1.0


# -- a tiny model ----------------------------------------------------------------------------------


def write_gsr_onnx(path: Path) -> None:
    """ONNX graph ``x`` (batch, 32, 1) → ``probs`` (batch, 2), both outputs depend on the input.

    ``probs[:, 0] = sigmoid(mean(x))`` and ``probs[:, 1] = sigmoid(20 · (max(x) − min(x)) − 1)``
    (the window's spread; ×20 because a 2 s window of normalised conductance varies by ~0.05).
    """
    import onnx
    from onnx import TensorProto, helper

    n = GSR_INPUT.n_window
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n, 1])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])
    scalars = [
        helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("out_shape", TensorProto.INT64, [2], [-1, 2]),
    ]
    # opset 17: a reduction's axes are still an attribute (an input from opset 18)
    nodes = [
        helper.make_node(op, ["x"], [out], axes=[1, 2], keepdims=1)
        for op, out in (("ReduceMean", "mean"), ("ReduceMax", "hi"), ("ReduceMin", "lo"))
    ]
    nodes += [
        helper.make_node("Sub", ["hi", "lo"], ["spread"]),
        helper.make_node("Mul", ["spread", "gain"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "one"], ["arousal_logit"]),
        helper.make_node("Concat", ["mean", "arousal_logit"], ["logits3"], axis=2),
        helper.make_node("Reshape", ["logits3", "out_shape"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
    ]
    graph = helper.make_graph(nodes, "gsr_tiny", [x], [y], scalars)
    # IR 9: onnx 1.23 writes IR 14 by default, which onnxruntime 1.31 refuses to load
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def gsr_contract(
    name: str, version: str, sha: str, mean_us: float = GSR_MEAN_US, std_us: float = GSR_STD_US
) -> ModelContract:
    return ModelContract(
        name=name,
        version=version,
        architecture="test-fixture",
        inputs=(
            InputContract(
                GSR_INPUT,
                GSR_INPUT.shape,
                np.array([mean_us]),
                np.array([std_us]),
            ),
        ),
        hop_s=0.25,
        label_rule={"kind": "threshold", "value": 5.0},
        trained_on={"dataset": {"name": "test fixture", "synthetic": True}},
        created="2026-01-01T00:00:00+00:00",
        onnx_sha256=sha,
        description="test fixture: sigmoid of the mean and of the spread of 2 s of GSR",
    )


def write_gsr_model(
    folder: Path,
    name: str = "gsr-tiny",
    version: str = "1",
    mean_us: float = GSR_MEAN_US,
    std_us: float = GSR_STD_US,
) -> Path:
    """``folder/model.onnx`` + ``folder/model.json`` (a valid contract); returns ``folder``.

    Serve it with ``Settings(model_dir=folder.parent, models=(folder.name,))``; its name in
    messages is ``f"{name}@{version}"``. ``mean_us``, ``std_us``: the contract's normalisation
    (µS); two models that differ in both give different valence and arousal for one session.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_gsr_onnx(folder / "model.onnx")
    contract = gsr_contract(name, version, file_sha256(folder / "model.onnx"), mean_us, std_us)
    (folder / "model.json").write_text(contract.to_json())
    return folder


# -- the service -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now (for programs that cannot be handed a socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def restartable_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a server a test kills and
    starts again on the same port: a port from the ephemeral range can be taken meanwhile as the
    source port of an outgoing connection (a client retrying against the dead server can even
    connect to itself), and the restart then fails with "address already in use"."""
    import random

    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


@dataclass
class LiveService:
    """A running service: its base URL and the app's state (sessions, hub, scheduler)."""

    url: str
    port: int
    app: Any  # FastAPI

    @property
    def state(self) -> Any:  # affectstream.service.state.ServiceState
        return self.app.state.service

    def get_json(self, path: str, token: str | None = None, timeout: float = 5.0) -> Any:
        """GET ``path`` (with ``?token=`` if given) → parsed JSON; HTTP errors raise."""
        url = self.url + path
        if token is not None:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"token": token})
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())


@contextmanager
def run_service(
    settings: Settings, port: int = 0, start_timeout: float = 20.0
) -> Iterator[LiveService]:
    """Run ``create_app(settings)`` under a real uvicorn server in a background thread.

    The listening socket is bound here and handed to uvicorn: ``port`` 0 (default) → a free port,
    no race; a given ``port`` lets a test restart the service where clients expect it.
    ``settings.port`` is ignored. On exit the server is asked to stop (``should_exit``), which
    runs the app's lifespan shutdown (sessions closed, scheduler stopped), and the thread joined.
    """
    import uvicorn

    from affectstream.service.app import create_app
    from affectstream.service.commands.serve import server_options

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **server_options(settings))
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # reported to the test below, not lost in the thread
            failure.append(e)

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if failure or not thread.is_alive():
                raise RuntimeError(f"the service did not start: {failure[:1] or 'thread ended'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not start within {start_timeout} s")
            time.sleep(0.02)
        yield LiveService(f"http://127.0.0.1:{port}", port, app)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the uvicorn thread did not stop within 15 s")


# -- the replay ------------------------------------------------------------------------------------


@contextmanager
def run_replay(
    path: Path,
    session: str,
    env: dict[str, str],
    *extra: str,
    log_dir: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m affectstream.service replay PATH --loop --quiet --session SESSION *extra`` as a
    subprocess.

    ``env``: the ``cli_env`` fixture (LSL limited to this machine, repo importable). Output goes to
    ``log_dir/replay-<session>.log`` (default: next to ``path``) so a failing test can show it.
    The process is terminated (then killed) on exit.
    """
    log_path = (log_dir or Path(path).parent) / f"replay-{session}.log"
    cmd = [
        sys.executable,
        "-m",
        "affectstream.service",
        "replay",
        str(path),
        "--loop",
        "--quiet",
        "--session",
        session,
        *extra,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Terminate ``proc``, kill it if it has not ended after ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace_s)


def replay_log(session: str, log_dir: Path) -> str:
    path = log_dir / f"replay-{session}.log"
    return path.read_text(errors="replace") if path.exists() else "(no replay log)"


# -- waiting ---------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout} s")
        time.sleep(interval)
