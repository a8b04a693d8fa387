"""End to end with a fusion model: a replayed PMEmo EDA stream whose markers carry the song's id →
the service looks the id up in the model's feature table → predictions over a real WebSocket.

The fixture model's valence is ``sigmoid(normalised music features · w)``: a prediction can only
carry the expected value if the service used the right row of the table for the current song, with
the contract's normalisation. Its arousal depends on the EDA window (online cvxEDA).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from live_service import replay_log, run_replay, run_service, wait_until

from affectstream.models.contract import (
    STIMULUS_TABLE,
    InputContract,
    ModelContract,
    StimulusInput,
    file_sha256,
)
from affectstream.service.messages import parse_server_message
from affectstream.service.settings import Settings
from affectstream.streaming.formats.pmemo import open_pmemo
from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind
from affectstream.streaming.synthetic.pmemo import write_synthetic_pmemo

pytest.importorskip("onnx")
pytestmark = [pytest.mark.lsl, pytest.mark.slow]

# 10 Hz: an integer fraction of PMEmo's 50 Hz (the decimator's rule); with a 0.2 s hop (a hop
# must be a whole number of samples at every rate: 0.25 s is 12.5 samples at 50 Hz)
EDA = FeatureInput("eda", FeatureKind.EDA_CVX3, (ChannelRef("GSR", "GSR"),), 10.0, 10.0)


def write_fusion_model(folder: Path, ids: list[str], table: np.ndarray) -> np.ndarray:
    """A fusion model over ``table`` (raw features per id); returns its weight vector ``w``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True)
    n = table.shape[1]
    w = (np.random.default_rng(1).standard_normal(n) / np.sqrt(n)).astype(np.float32)
    inputs = [
        helper.make_tensor_value_info("eda", TensorProto.FLOAT, ["batch", *EDA.shape]),
        helper.make_tensor_value_info("music", TensorProto.FLOAT, ["batch", n]),
    ]
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])
    consts = [
        numpy_helper.from_array(w[:, None], "w"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "col"),
    ]
    nodes = [
        helper.make_node("MatMul", ["music", "w"], ["valence_logit"]),
        helper.make_node("ReduceMean", ["eda"], ["m3"], axes=[1, 2], keepdims=1),
        helper.make_node("Reshape", ["m3", "col"], ["arousal_logit"]),
        helper.make_node("Concat", ["valence_logit", "arousal_logit"], ["logits"], axis=1),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
    ]
    graph = helper.make_graph(nodes, "fusion_tiny", inputs, [out], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    names = np.array([f"f{i}" for i in range(n)])
    np.savez(folder / STIMULUS_TABLE, ids=np.array(ids), names=names, values=table)
    contract = ModelContract(
        name="fusion-tiny",
        version="1",
        architecture="test-fixture",
        inputs=(InputContract(EDA, EDA.shape),),
        stimulus=StimulusInput(
            "music",
            n,
            "synthetic PMEmo-layout features",
            table.mean(axis=0),
            table.std(axis=0) + 1e-9,
            STIMULUS_TABLE,
            file_sha256(folder / STIMULUS_TABLE),
        ),
        hop_s=0.2,
        label_rule={"kind": "threshold", "value": 0.5},
        trained_on={"dataset": {"name": "test fixture", "synthetic": True}},
        created="2026-01-01T00:00:00+00:00",
        onnx_sha256=file_sha256(folder / "model.onnx"),
    )
    (folder / "model.json").write_text(contract.to_json())
    return w


def expected_valence(row: np.ndarray, table: np.ndarray, w: np.ndarray) -> float:
    z = ((row - table.mean(axis=0)) / (table.std(axis=0) + 1e-9)).astype(np.float32)
    return float(1 / (1 + np.exp(-float(z @ w))))


def _call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def _collect(url: str, until: Any, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        while not until(out) and time.monotonic() < deadline:
            try:
                out.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
            except TimeoutError:
                continue
    return out


@pytest.mark.timeout(150)
def test_fusion_model_serves_a_replayed_eda_stream_with_its_stimulus(
    tmp_path: Path, cli_env: dict[str, str], session_name: str
) -> None:
    write_synthetic_pmemo(tmp_path / "pmemo", n_subjects=3, n_songs=4, seed=3)
    data = open_pmemo(tmp_path / "pmemo")
    ids_int, _, table = data.features()
    ids = [str(i) for i in ids_int]
    w = write_fusion_model(tmp_path / "zoo" / "fusion", ids, table)
    trials = [t for t in data.trials(min_seconds=20.0)]
    subject = trials[0].subject
    songs = [t.music_id for t in trials if t.subject == subject][:2]
    assert len(songs) == 2, "the generated set should give a subject two long songs"
    want = {str(m): expected_valence(table[ids.index(str(m))], table, w) for m in songs}
    assert abs(want[str(songs[0])] - want[str(songs[1])]) > 1e-3  # the songs are told apart

    settings = Settings(model_dir=tmp_path / "zoo", models=("fusion",))
    with (
        run_replay(
            tmp_path / "pmemo",
            session_name,
            cli_env,
            "--format",
            "pmemo",
            "--subject",
            subject,
            "--songs",
            ",".join(map(str, songs)),
            "--wait-for-consumers",
            "15",
            log_dir=tmp_path,
        ),
        run_service(settings) as live,
    ):
        base = live.url
        for sid, prefix in (
            ("with-markers", f"{session_name}-"),
            ("eda-only", f"{session_name}-GSR"),
        ):
            body = {"session": sid, "match": {"source_id_prefix": prefix}, "models": ["fusion"]}
            status, body = _call("POST", base + "/sessions", body)
            assert status == 201, body

        # 1. the stimulus id comes with the replay's markers
        def predictions(ms: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [m for m in ms if m["type"] == "prediction"]

        ws = f"ws://127.0.0.1:{live.port}/ws/sessions/"
        got = asyncio.run(_collect(ws + "with-markers", lambda ms: len(predictions(ms)) >= 6, 60))
        preds = predictions(got)
        for m in got:  # every message follows docs/messages.schema.json
            parse_server_message(m)
        if len(preds) < 6:
            pytest.fail(
                f"{len(preds)} predictions; {live.get_json('/sessions')}\n"
                + replay_log(session_name, tmp_path)
            )
        for p in preds:
            assert p["model"] == "fusion-tiny@1"
            assert p["stimulus"]["source"] == "markers"
            sid = p["stimulus"]["id"]
            assert sid in want
            assert p["valence"] == pytest.approx(want[sid], abs=1e-4)
            assert p["ground_truth"] is not None and 0 <= p["ground_truth"]["valence"] <= 1

        # 2. a session without a stimulus: the model is refused for it, with the reason
        def refused() -> bool:
            (model,) = live.get_json("/sessions/eda-only")["models"]
            return model["refused_windows"] > 0

        wait_until(refused, 20, what="windows refused for lack of a stimulus")
        (model,) = live.get_json("/sessions/eda-only")["models"]
        assert model["state"].startswith("refused: fusion-tiny@1 needs the current stimulus")
        assert "PUT /sessions/eda-only/stimulus" in model["state"]
        assert model["predictions"] == 0

        # 3. bad stimulus requests are refused and change nothing
        for bad in (
            {"id": "no-such-song"},
            {"features": [1.0, 2.0]},
            {"id": "1", "features": [1.0]},
        ):
            status, body = _call("PUT", base + "/sessions/eda-only/stimulus", bad)
            assert status == 422, (bad, body)
        assert live.get_json("/sessions/eda-only")["models"][0]["predictions"] == 0

        # 4. the stimulus given over REST: predictions start, with that song's features
        chosen = str(songs[1])
        status, body = _call("PUT", base + "/sessions/eda-only/stimulus", {"id": chosen})
        assert status == 200, body
        got = asyncio.run(_collect(ws + "eda-only", lambda ms: len(predictions(ms)) >= 3, 20))
        preds = predictions(got)
        assert len(preds) >= 3
        for m in got:
            parse_server_message(m)
        for p in preds:
            assert p["stimulus"] == {"id": chosen, "source": "rest"}
            assert p["valence"] == pytest.approx(want[chosen], abs=1e-4)
        state = live.get_json("/sessions/eda-only")["models"][0]["state"]
        assert state == "running"

        # 5. the stimulus can come with the session itself (models: all loaded ones)
        body = {
            "session": "given",
            "match": {"source_id_prefix": f"{session_name}-GSR"},
            "stimulus": {"id": chosen},
        }
        status, created = _call("POST", base + "/sessions", body)
        assert status == 201, created
        body = {**body, "session": "given-bad", "stimulus": {"id": "no-such-song"}}
        status, refused = _call("POST", base + "/sessions", body)
        assert status == 422 and "no-such-song" in json.dumps(refused)
        assert "given-bad" not in live.state.sessions


@pytest.mark.timeout(240)
def test_a_trained_and_exported_rtcan1d_music_serves_the_pmemo_replay(
    tmp_path: Path, cli_env: dict[str, str], session_name: str
) -> None:
    # the real path: synth → train → export → serve, fed by the PMEmo replay with song ids
    pytest.importorskip("torch")
    from affectstream.service.cli import main

    data = tmp_path / "pmemo"
    write_synthetic_pmemo(data, n_subjects=6, n_songs=6, seed=3)
    run, zoo = tmp_path / "run", tmp_path / "zoo"
    assert (
        main(
            [
                "train",
                "--dataset",
                "pmemo",
                "--data",
                str(data),
                "--model",
                "rtcan1d-music",
                "--folds",
                "2",
                "--epochs",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert main(["export", str(run), "--out", str(zoo / "rtcan1d-music")]) == 0
    trials = list(open_pmemo(data).trials(min_seconds=25.0))
    subject = trials[0].subject
    songs = ",".join(str(t.music_id) for t in trials if t.subject == subject)
    settings = Settings(model_dir=zoo, auto_attach=True)
    with (
        run_replay(
            data,
            session_name,
            cli_env,
            "--format",
            "pmemo",
            "--subject",
            subject,
            "--songs",
            songs,
            "--wait-for-consumers",
            "15",
            log_dir=tmp_path,
        ),
        run_service(settings) as live,
    ):
        wait_until(lambda: session_name in live.state.sessions, 20, what="auto-attach")
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session_name}"
        got = asyncio.run(
            _collect(url, lambda ms: sum(m["type"] == "prediction" for m in ms) >= 3, 60)
        )
        preds = [m for m in got if m["type"] == "prediction"]
        if len(preds) < 3:
            pytest.fail(f"{live.get_json('/sessions')}\n" + replay_log(session_name, tmp_path))
        for p in preds:
            assert p["model"].startswith("rtcan1d-music@")
            assert p["stimulus"]["source"] == "markers" and p["stimulus"]["id"] in songs.split(",")
            assert 0 <= p["valence"] <= 1 and 0 <= p["arousal"] <= 1
