"""Each device row that this machine can simulate, end to end (issue #14): device-like LSL outlets
(tests/service/producers.py, not the replay) → real uvicorn service → POST /sessions → a real
``websockets`` client that validates every message against the published schema.

Models: the shipped ``cnn-lstm`` (EEG 32 + peripheral with AUX, 1 s windows) where the row is about
it; the shipped ``rtcan1d`` needs a 20 s window (plus the cvxEDA warm-up), beyond the ~20 s budget
of one test, so the rate, unit and type rows use small ONNX fixtures with short windows written
here and by ``live_service.write_gsr_model`` (2 s of GSR at 16 Hz):

- ``gsr-tiny``: GSR 16 Hz, 2 s; valence = sigmoid(mean((µS − 4.5) / 1)): values reach the model
  in µS or valence saturates at 1;
- ``wrist-tiny``: GSR 16 Hz + PPG 64 Hz, 2 s (a wristband's two streams);
- ``lab-tiny``: the ``cnn-lstm``'s EEG grid input (32 electrodes, 128 Hz, 1 s, 3 s baseline) +
  GSR, RESP, PPG at 128 Hz, without AUX (a lab model that a lab setup without EOG/EMG can serve);
- ``grid-tiny``: the EEG grid input alone (what a headband's electrodes can be placed on).

Every fixture's output is a sigmoid of the mean of its (normalised) inputs, so every input reaches
the graph.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from live_service import LiveService, run_service, write_gsr_model
from producers import (
    DEAP_EEG,
    Device,
    FloatArray,
    StreamSpec,
    eeg,
    ppg,
    resp,
    skin_conductance,
    skin_conductance_us,
)

from affectstream.models.contract import (
    InputContract,
    ModelContract,
    file_sha256,
    load_contract,
)
from affectstream.service.messages import parse_server_message
from affectstream.service.settings import Settings
from affectstream.streaming.ingest.channels import canonical_type
from affectstream.streaming.preprocess.spec import ChannelRef, FeatureInput, FeatureKind

pytest.importorskip("onnx")
pytest.importorskip("pylsl")
pytestmark = [pytest.mark.lsl]

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "models" / "zoo"
Message = dict[str, Any]


# -- fixture models --------------------------------------------------------------------------------


def _write_mean_onnx(path: Path, inputs: list[tuple[str, tuple[int, ...]]]) -> None:
    """ONNX graph: inputs → probs (batch, 2) = sigmoid(Σ mean(input)) for both classes."""
    import onnx
    from onnx import TensorProto, helper

    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", *s]) for n, s in inputs]
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2])
    nodes = [
        helper.make_node(
            "ReduceMean", [n], [f"{n}_mean"], axes=list(range(1, len(s) + 1)), keepdims=0
        )
        for n, s in inputs
    ]
    total = [f"{n}_mean" for n, _ in inputs]
    nodes += [
        helper.make_node("Sum", total, ["total"]),
        helper.make_node("Reshape", ["total", "col_shape"], ["col"]),
        helper.make_node("Concat", ["col", "col"], ["logits"], axis=1),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
    ]
    col_shape = helper.make_tensor("col_shape", TensorProto.INT64, [2], [-1, 1])
    graph = helper.make_graph(nodes, "mean_fixture", values, [y], [col_shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_mean_model(folder: Path, inputs: list[InputContract], hop_s: float = 0.25) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_mean_onnx(folder / "model.onnx", [(i.name, i.shape) for i in inputs])
    contract = ModelContract(
        name=folder.name,
        version="1",
        architecture="test-fixture",
        inputs=tuple(inputs),
        hop_s=hop_s,
        label_rule={"kind": "threshold", "value": 5.0},
        trained_on={"dataset": {"name": "test fixture", "synthetic": True}},
        created="2026-01-01T00:00:00+00:00",
        onnx_sha256=file_sha256(folder / "model.onnx"),
        description="test fixture: sigmoid of the sum of its inputs' means",
    )
    (folder / "model.json").write_text(contract.to_json())
    return folder


def _raw(name: str, refs: list[tuple[str, str]], srate: float, window_s: float) -> InputContract:
    feature = FeatureInput(
        name=name,
        kind=FeatureKind.RAW,
        channels=tuple(ChannelRef(s, label) for s, label in refs),
        srate=srate,
        window_s=window_s,
    )
    n = len(refs)
    return InputContract(feature, feature.shape, np.zeros(n), np.ones(n))


def _eeg_grid() -> InputContract:
    """The shipped cnn-lstm's EEG grid input (its preprocessing and normalisation)."""
    contract, _ = load_contract(ZOO / "cnn-lstm")
    return next(i for i in contract.inputs if i.feature.kind == FeatureKind.EEG_GRID)


def write_wrist_model(folder: Path) -> Path:
    return _write_mean_model(
        folder,
        [
            InputContract(
                _raw("eda", [("GSR", "GSR")], 16.0, 2.0).feature,
                (32, 1),
                np.array([4.5]),
                np.array([1.0]),
            ),
            _raw("bvp", [("PPG", "PPG")], 64.0, 2.0),
        ],
    )


def write_lab_model(folder: Path) -> Path:
    periph = InputContract(
        _raw("periph", [("GSR", "GSR"), ("RESP", "RESP"), ("PPG", "PPG")], 128.0, 1.0).feature,
        (128, 3),
        np.array([4.5, 1000.0, 1.0]),
        np.array([1.0, 200.0, 1.0]),
    )
    return _write_mean_model(folder, [_eeg_grid(), periph])


def write_grid_model(folder: Path) -> Path:
    return _write_mean_model(folder, [_eeg_grid()])


AUX_LABELS = ("hEOG", "vEOG", "zEMG", "tEMG", "Temperature")


def write_lab_aux_model(folder: Path) -> Path:
    """``lab-tiny`` whose peripheral input may also use an AUX stream (EOG, EMG, temperature)."""
    refs = [("GSR", "GSR"), ("RESP", "RESP"), ("PPG", "PPG")] + [("AUX", x) for x in AUX_LABELS]
    feature = FeatureInput(
        name="periph",
        kind=FeatureKind.RAW,
        channels=tuple(ChannelRef(st, label) for st, label in refs),
        srate=128.0,
        window_s=1.0,
        optional_streams=("AUX",),
    )
    mean = np.array([4.5, 1000.0, 1.0, 0.0, 0.0, 0.0, 0.0, 30.0])
    std = np.array([1.0, 200.0, 1.0, 100.0, 100.0, 100.0, 100.0, 5.0])
    return _write_mean_model(folder, [_eeg_grid(), InputContract(feature, (128, 8), mean, std)])


def write_frontal_model(folder: Path) -> Path:
    """Raw EEG of AF7 and AF8 (a headband's frontal pair), 128 Hz, 1 s."""
    return _write_mean_model(
        folder, [_raw("frontal", [("EEG", "AF7"), ("EEG", "AF8")], 128.0, 1.0)]
    )


def aux_stream() -> StreamSpec:
    """DEAP's AUX channels as one 128 Hz stream: EOG/EMG-like noise and a skin temperature."""

    def signal(t: FloatArray) -> FloatArray:
        rng = np.random.default_rng(int(t[0] * 1000) % 2**32 if len(t) else 0)
        x = rng.normal(0.0, 50.0, size=(len(t), 5))
        x[:, 4] = 32.0 + 0.1 * np.sin(t / 10.0)
        return x

    return StreamSpec("aux", "AUX", 5, 128.0, signal, AUX_LABELS, None, "AUX")


# -- talking to the service ------------------------------------------------------------------------


def _post_session(live: LiveService, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"{live.url}/sessions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _create(live: LiveService, session: str, **extra: Any) -> dict[str, Any]:
    body = {"session": session, "match": {"source_id_prefix": session + "-"}, **extra}
    status, answer = _post_session(live, body)
    assert status == 201, answer
    return dict(answer)


def _watch(
    live: LiveService,
    session: str,
    until: Callable[[list[Message]], bool],
    timeout: float,
    action: Callable[[list[Message]], None] | None = None,
) -> list[Message]:
    """Every message of the session's WebSocket until ``until(messages)`` holds (each one
    validated against the published schema); fails with what arrived and the session's state
    after ``timeout`` s. ``action`` is called after each message (e.g. to restart a device)."""
    return _watch_many(live, [session], until, timeout, action)[session]


def _watch_many(
    live: LiveService,
    sessions: list[str],
    until: Callable[[list[Message]], bool],
    timeout: float,
    action: Callable[[list[Message]], None] | None = None,
) -> dict[str, list[Message]]:
    """:func:`_watch` on several sessions at once (one WebSocket each, at the same time)."""

    async def one(session: str) -> list[Message]:
        seen: list[Message] = []
        url = f"ws://127.0.0.1:{live.port}/ws/sessions/{session}"
        async with websockets.connect(url) as ws:
            deadline = time.monotonic() + timeout
            while not until(seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    raw = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    break
                parse_server_message(raw)  # raises if it breaks the schema
                seen.append(json.loads(raw))
                if action is not None:
                    await asyncio.to_thread(action, seen)
        return seen

    async def run() -> list[list[Message]]:
        return list(await asyncio.gather(*(one(s) for s in sessions)))

    out = dict(zip(sessions, asyncio.run(run()), strict=True))
    for session, seen in out.items():
        if not until(seen):
            detail = live.get_json(f"/sessions/{session}")
            kinds = [(m["type"], m.get("model"), m.get("state"), m.get("reason")) for m in seen]
            pytest.fail(f"not reached in {timeout} s; messages {kinds[-12:]}; session {detail}")
    return out


def _predictions(seen: list[Message], model: str | None = None) -> list[Message]:
    return [
        m
        for m in seen
        if m["type"] == "prediction" and (model is None or m["model"].split("@")[0] == model)
    ]


def _has_predictions(model: str, n: int = 1) -> Callable[[list[Message]], bool]:
    return lambda seen: len(_predictions(seen, model)) >= n


def _statuses(seen: list[Message], model: str) -> list[dict[str, Any]]:
    """The model's states in order: the hello's row, then every model_status message."""
    rows: list[dict[str, Any]] = []
    for m in seen:
        if m["type"] == "hello":
            rows += [r for r in m["model_status"] if r["model"].split("@")[0] == model]
        elif m["type"] == "model_status" and m["model"].split("@")[0] == model:
            rows.append(m)
    return rows


def _stream_row(live: LiveService, session: str, source_id: str) -> dict[str, Any]:
    rows = live.get_json(f"/sessions/{session}")["streams"]
    return dict(next(r for r in rows if r["source_id"] == source_id))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """Fixture models in ``tmp_path/zoo`` (serve a subset with ``Settings(models=…)``)."""
    folder = tmp_path / "zoo"
    write_gsr_model(folder / "gsr-tiny")
    write_wrist_model(folder / "wrist-tiny")
    write_lab_model(folder / "lab-tiny")
    write_grid_model(folder / "grid-tiny")
    write_lab_aux_model(folder / "lab-aux-tiny")
    write_frontal_model(folder / "frontal-tiny")
    return folder


@pytest.fixture
def serve(zoo: Path) -> Callable[..., Any]:
    """``with serve("gsr-tiny", …) as live``: the service with only these models (fixture names,
    or shipped ones given as folders)."""

    def start(*models: str | Path, **settings: Any) -> Any:
        return run_service(
            Settings(model_dir=zoo, models=tuple(str(m) for m in models), **settings)
        )

    return start


def _lab_streams(
    eeg_rate: float, labelled: bool, types: tuple[str, str, str] = ("GSR", "PPG", "RESP")
) -> list[StreamSpec]:
    gsr_t, ppg_t, resp_t = types
    return [
        eeg("eeg", "EEG", eeg_rate, DEAP_EEG if labelled else None, n_channels=32),
        skin_conductance("gsr", gsr_t, 128.0, label="GSR" if labelled else None),
        ppg("ppg", ppg_t, 128.0, label="Plethysmograph" if labelled else None),
        resp("resp", resp_t, 128.0, label="Respiration" if labelled else None),
    ]


def _check_lab_predictions(seen: list[Message]) -> None:
    preds = _predictions(seen, "lab-tiny")
    for p in preds:
        assert 0.0 < p["valence"] < 1.0 and math.isfinite(p["arousal"])
        assert p["window"]["end"] - p["window"]["start"] == pytest.approx(1.0)
        assert "coverage" not in p  # every electrode placed
        # keyed by the type as the device spells it (EDA, BVP, RSP …)
        assert sorted(canonical_type(k) for k in p["quality"]) == ["EEG", "GSR", "PPG", "RESP"]
    for p in _predictions(seen, "cnn-lstm-lab"):  # the shipped lab model, when shipped
        assert 0.0 <= p["valence"] <= 1.0 and 0.0 <= p["arousal"] <= 1.0
        assert p["window"]["end"] - p["window"]["start"] == pytest.approx(1.0)
        assert "coverage" not in p
    cnn = _statuses(seen, "cnn-lstm")
    assert cnn, "no state of the cnn-lstm"
    assert cnn[-1]["state"] == "waiting" and "AUX" in cnn[-1]["reason"], cnn


LAB_ZOO = ZOO / "cnn-lstm-lab"
"""The shipped lab CNN-LSTM without AUX (EEG grid + GSR, PPG, RESP): used when it is there."""


def _lab_models() -> tuple[str | Path, ...]:
    shipped = (LAB_ZOO,) if (LAB_ZOO / "model.onnx").is_file() else ()
    return ("lab-tiny", ZOO / "cnn-lstm", *shipped)


def _lab_served(seen: list[Message]) -> bool:
    shipped = not (LAB_ZOO / "model.onnx").is_file() or _has_predictions("cnn-lstm-lab", 2)(seen)
    return _has_predictions("lab-tiny", 2)(seen) and shipped and _cnn_waits_for_aux(seen)


def _cnn_waits_for_aux(seen: list[Message]) -> bool:
    rows = _statuses(seen, "cnn-lstm")
    return bool(rows) and rows[-1]["state"] == "waiting" and "AUX" in rows[-1]["reason"]


# -- (1), (2) the lab: EEG 32 + GSR, PPG, RESP ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_lab_labelled_128_hz(session_name: str, serve: Callable[..., Any]) -> None:
    """Row 1: a lab amplifier at 128 Hz whose streams carry their labels (DEAP order). The shipped
    cnn-lstm needs AUX (EOG/EMG/temperature) this setup lacks: its model_status says it waits for
    an AUX stream; ``lab-tiny`` (the same EEG grid input + GSR/RESP/PPG, no AUX) predicts, and so
    does the shipped ``cnn-lstm-lab`` (no AUX) when models/zoo has it."""
    with (
        Device(session_name, _lab_streams(128.0, labelled=True)),
        serve(*_lab_models()) as live,
    ):
        _create(live, session_name)
        seen = _watch(
            live,
            session_name,
            _lab_served,
            20,
        )
    _check_lab_predictions(seen)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("eeg_rate", [256.0, 512.0])
def test_lab_unlabelled_with_a_channel_map(
    session_name: str, serve: Callable[..., Any], eeg_rate: float
) -> None:
    """Row 2: the same lab without any labels, peripheral types spelt EDA/BVP/RSP, EEG at 256 or
    512 Hz (decimated to the model's 128 Hz); the session gives the EEG columns' labels."""
    streams = _lab_streams(eeg_rate, labelled=False, types=("EDA", "BVP", "RSP"))
    with Device(session_name, streams), serve(*_lab_models()) as live:
        answer = _create(live, session_name, channels={"EEG": DEAP_EEG})
        assert answer["overrides"]["channels"] == {"EEG": DEAP_EEG}
        seen = _watch(
            live,
            session_name,
            _lab_served,
            20,
        )
        rows = {r["source_id"]: r for r in live.get_json(f"/sessions/{session_name}")["streams"]}
    _check_lab_predictions(seen)
    row = rows[f"{session_name}-eeg"]
    assert row["nominal_srate"] == eeg_rate
    assert row["labels"] == DEAP_EEG and row["labels_from"] == "override"
    for key, kind in (("gsr", "GSR"), ("ppg", "PPG"), ("resp", "RESP")):
        assert rows[f"{session_name}-{key}"]["labels"] == [kind]  # named by their type


# -- (3) wristband, (4) rates, (5) type spellings: skin conductance -------------------------------


@pytest.mark.timeout(60)
def test_wristband_eda_4_hz_and_bvp_64_hz_unlabelled(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """Row 3: a wristband (Empatica-like): EDA at 4 Hz and BVP at 64 Hz, no description at all.
    ``wrist-tiny`` (GSR 16 Hz + PPG 64 Hz, 2 s): 4 Hz EDA is interpolated to 16 Hz."""
    streams = [skin_conductance("eda", "EDA", 4.0), ppg("bvp", "BVP", 64.0)]
    with Device(session_name, streams), serve("wrist-tiny") as live:
        _create(live, session_name)
        seen = _watch(live, session_name, _has_predictions("wrist-tiny", 3), 20)
    preds = _predictions(seen, "wrist-tiny")
    for p in preds:
        assert 0.05 < p["valence"] < 0.95  # µS near the fixture's mean: inputs well scaled
        assert p["quality"]["EDA"]["unit"] == "µS (assumed)"
        assert p["quality"]["EDA"]["state"] in ("ok", "recovered")
        assert p["quality"]["BVP"]["state"] in ("ok", "recovered")


def _check_gsr_tiny(seen: list[Message], kind: str, unit: str = "µS (assumed)") -> None:
    preds = _predictions(seen, "gsr-tiny")
    assert preds
    for p in preds:
        # 2 s of 4.5 ± 0.7 µS: valence sigmoid(mean − 4.5) within (0.3, 0.7); a value not in
        # µS (kΩ: ~220) would give 1.0
        assert 0.3 < p["valence"] < 0.7, p
        # 2 s, or the shortest longer span of whole samples (2.0117 s at 51.2 Hz)
        assert 2.0 <= p["window"]["end"] - p["window"]["start"] < 2.02
        assert p["quality"][kind]["unit"] == unit
        assert p["quality"][kind]["state"] in ("ok", "recovered")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("srate", "labelled"), [(50.0, True), (51.2, False)])
def test_gsr_at_50_and_51_2_hz(
    session_name: str, serve: Callable[..., Any], srate: float, labelled: bool
) -> None:
    """Row 4: a GSR sensor at 50 Hz (labelled "GSR", unit µS said) and one at 51.2 Hz (no
    description): resampled to ``gsr-tiny``'s 16 Hz (neither is a whole multiple)."""
    stream = skin_conductance(
        "gsr", "GSR", srate, label="GSR" if labelled else None, unit="µS" if labelled else None
    )
    with Device(session_name, [stream]), serve("gsr-tiny") as live:
        _create(live, session_name)
        seen = _watch(live, session_name, _has_predictions("gsr-tiny", 3), 20)
        detail = live.get_json(f"/sessions/{session_name}")
    _check_gsr_tiny(seen, "GSR", "µS" if labelled else "µS (assumed)")
    (model,) = detail["models"]
    assert model["status"] == "running" and model["replans"] == 0
    (row,) = detail["streams"]
    assert row["nominal_srate"] == srate


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["eda", "gsr", "SC"])
def test_type_spellings(session_name: str, serve: Callable[..., Any], kind: str) -> None:
    """Row 5: lower-case and alias types of skin conductance ("eda", "gsr", "SC"), one channel,
    unlabelled, 32 Hz: served by ``gsr-tiny`` (which needs "GSR")."""
    with Device(session_name, [skin_conductance("sc", kind, 32.0)]), serve("gsr-tiny") as live:
        _create(live, session_name)
        seen = _watch(live, session_name, _has_predictions("gsr-tiny", 3), 20)
        (row,) = live.get_json(f"/sessions/{session_name}")["streams"]
    _check_gsr_tiny(seen, kind)
    assert row["type"] == kind and row["labels"] == ["GSR"]  # as the device spells it


# -- (6) kΩ ----------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_kiloohm_input_reaches_the_model_in_microsiemens(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """Row 6: three sensors publish the same skin conductance at the same times: in µS (unit
    said), as kΩ resistance with the unit in its description, and as kΩ without a unit where the
    session says ``"units": {"GSR": "kOhm"}``. All three are read as µS: the same valence from
    ``gsr-tiny`` for the same window (sigmoid of the mean normalised µS; kΩ unconverted would give
    1.0), the quality says µS, GET /sessions says where the unit came from."""
    us, desc, post = (f"{session_name}-{k}" for k in ("us", "kd", "kp"))
    devices = [
        Device(us, [skin_conductance("gsr", "GSR", 32.0, label="GSR", unit="µS")]),
        Device(desc, [skin_conductance("gsr", "GSR", 32.0, label="GSR", unit="kΩ", kohm=True)]),
        Device(post, [skin_conductance("gsr", "GSR", 32.0, kohm=True)]),
    ]
    for d in devices:
        d.start()
    try:
        # the sessions are compared window by window: their grids aligned, as a study comparing
        # people at the same instants sets them (by default each session has its own phase)
        with serve("gsr-tiny", stagger_windows=False) as live:
            _create(live, us)
            _create(live, desc)
            answer = _create(live, post, units={"GSR": "kOhm"})
            assert answer["overrides"]["units"] == {"GSR": "kOhm"}
            seen = _watch_many(live, [us, desc, post], _has_predictions("gsr-tiny", 6), 20)
            rows = {s: _stream_row(live, s, f"{s}-gsr") for s in (us, desc, post)}
            last = {
                s: live.get_json(f"/sessions/{s}")["models"][0]["last_prediction"]
                for s in (us, desc, post)
            }
    finally:
        for d in devices:
            d.stop()
    for s in (us, desc, post):
        _check_gsr_tiny(seen[s], "GSR", "µS")
        assert rows[s]["unit"] == "µS"
    assert rows[us]["unit_from"] != "override"
    assert rows[desc]["unit_given"] == "kΩ" and rows[desc]["unit_from"] == "description"
    assert rows[post]["unit_given"] == "kOhm" and rows[post]["unit_from"] == "override"
    # the same window in the three sessions gives the same valence (float32 rounding of 1000/µS)
    by_end = {s: {p["window"]["end"]: p["valence"] for p in _predictions(seen[s])} for s in seen}
    for s in (desc, post):
        common = sorted(set(by_end[us]) & set(by_end[s]))
        assert common, (s, sorted(by_end[us]), sorted(by_end[s]))
        for end in common:
            assert by_end[s][end] == pytest.approx(by_end[us][end], abs=2e-3), (s, end)
    # and the value is the signal's: sigmoid(mean over the window − 4.5) of the µS published
    p = last[us]
    t = np.arange(math.ceil(p["window"]["start"] * 32), math.ceil(p["window"]["end"] * 32)) / 32
    expected = 1 / (1 + math.exp(-(float(np.mean(skin_conductance_us(t))) - 4.5)))
    assert p["valence"] == pytest.approx(expected, abs=0.02)


# -- (7) a headband ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_headband_eeg_4_channels_and_ppg(session_name: str, serve: Callable[..., Any]) -> None:
    """Row 7: a headband (Muse-like): EEG at 256 Hz with TP9, AF7, AF8, TP10 and PPG at 64 Hz.
    The shipped cnn-lstm says it waits for an AUX stream. ``grid-tiny`` (the cnn-lstm's EEG grid
    input alone) places an electrode only on the cell of one of its own 32; none of the four is
    on such a cell (TP9 (5, 0), AF7 (1, 1) … are not in the DEAP montage), so it is ``refused``
    with a reason naming the headband's electrodes and the montage (not the "channels" hint: the
    labels are right)."""
    streams = [
        eeg("eeg", "EEG", 256.0, ["TP9", "AF7", "AF8", "TP10"]),
        ppg("ppg", "PPG", 64.0),
    ]
    with Device(session_name, streams), serve("grid-tiny", ZOO / "cnn-lstm") as live:
        _create(live, session_name)
        seen = _watch(
            live,
            session_name,
            lambda s: _cnn_waits_for_aux(s) and _last_state(s, "grid-tiny") == "refused",
            20,
        )
        detail = live.get_json(f"/sessions/{session_name}")
    cnn = _statuses(seen, "cnn-lstm")[-1]
    assert cnn["state"] == "waiting" and cnn["reason"] == "waiting for a AUX stream"
    grid = _statuses(seen, "grid-tiny")[-1]
    reason = grid["reason"]
    assert "TP9, AF7, AF8, TP10" in reason and "model's montage" in reason, reason
    assert '"channels"' not in reason  # its labels are right: giving others is no fix
    assert not _predictions(seen)
    assert detail["served"] is False
    (eeg_row,) = [r for r in detail["streams"] if r["type"] == "EEG"]
    assert eeg_row["labels"] == ["TP9", "AF7", "AF8", "TP10"]
    assert eeg_row["state"] in ("connecting", "ok")  # acquired, not refused: the model refuses


def _last_state(seen: list[Message], model: str) -> str | None:
    rows = _statuses(seen, model)
    return str(rows[-1]["state"]) if rows else None


# -- (8) a stream that restarts at another rate ---------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.slow
def test_gsr_restarting_at_another_rate_is_replanned(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """Row 8: a GSR sensor at 50 Hz is reconfigured to 51.2 Hz (its outlet closes and comes back
    under the same source id): the model is re-planned (replans ≥ 1, "GSR 50 → 51.2 Hz") and
    predictions continue on the new rate."""
    import pylsl

    stream = skin_conductance("gsr", "GSR", 50.0, label="GSR", unit="µS")
    reopened: list[float] = []  # LSL time at which the outlet is back at 51.2 Hz

    def restart_once(seen: list[Message]) -> None:
        if not reopened and len(_predictions(seen)) >= 2:
            device.restart("gsr", gap_s=0.5, srate=51.2)
            reopened.append(pylsl.local_clock())

    def after(seen: list[Message]) -> list[Message]:
        return [p for p in _predictions(seen) if reopened and p["window"]["start"] > reopened[0]]

    def continued(seen: list[Message]) -> bool:
        return len(after(seen)) >= 3

    with Device(session_name, [stream]) as device, serve("gsr-tiny") as live:
        _create(live, session_name)
        seen = _watch(live, session_name, continued, 20, action=restart_once)
        detail = live.get_json(f"/sessions/{session_name}")
    (model,) = detail["models"]
    assert model["replans"] >= 1 and model["last_replan"] == "GSR 50 → 51.2 Hz", model
    (row,) = detail["streams"]
    assert row["nominal_srate"] == 51.2 and row["reconnects"] >= 1
    _check_gsr_tiny(seen, "GSR", "µS")
    before = [p for p in _predictions(seen) if p["window"]["end"] <= reopened[0]]
    assert before and all(p["window"]["end"] - p["window"]["start"] == 2.0 for p in before)
    # cut on the new plan: 2 s is 102.4 samples at 51.2 Hz, the window holds 103 (2.0117 s)
    for p in after(seen):
        assert p["window"]["end"] - p["window"]["start"] == pytest.approx(103 / 51.2)


# -- (9) unlabelled multichannel EEG without a channel map ----------------------------------------


@pytest.mark.timeout(60)
def test_unlabelled_eeg_without_a_channel_map_is_refused_naming_the_fix(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """Row 9: a 32-channel EEG with no labels and no ``channels`` in the session: ``grid-tiny``
    cannot place any column; its model_status is ``refused`` and says to give the labels in the
    session's "channels"."""
    streams = [eeg("eeg", "EEG", 128.0, None, n_channels=32)]
    with Device(session_name, streams), serve("grid-tiny") as live:
        _create(live, session_name)

        def refused(seen: list[Message]) -> bool:
            rows = _statuses(seen, "grid-tiny")
            return bool(rows) and rows[-1]["state"] == "refused"

        seen = _watch(live, session_name, refused, 15)
        detail = live.get_json(f"/sessions/{session_name}")
    status = _statuses(seen, "grid-tiny")[-1]
    assert '"channels"' in status["reason"], status
    assert not _predictions(seen)
    assert detail["served"] is False and '"channels"' in detail["unserved"]


# -- (10) a partial montage: 8 of the 32 electrodes ------------------------------------------------

EIGHT = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_partial_montage_is_served_degraded_with_its_coverage(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """An 8-electrode EEG cap (+ GSR, PPG, RESP) on the shipped ``cnn-lstm-lab``, trained with
    electrode dropout (``min_channels`` in its contract): predictions with ``coverage`` 8/32, and
    a ``degraded`` model_status saying so. The shipped ``cnn-lstm`` (trained on all 32, and
    needing AUX) is not served."""
    if not (LAB_ZOO / "model.onnx").is_file():
        pytest.skip("models/zoo/cnn-lstm-lab is not shipped in this checkout")
    streams = [
        eeg("eeg", "EEG", 256.0, EIGHT, n_channels=len(EIGHT)),
        *_lab_streams(128.0, labelled=True)[1:],
    ]
    with Device(session_name, streams), serve(LAB_ZOO) as live:
        _create(live, session_name)
        seen = _watch(live, session_name, _has_predictions("cnn-lstm-lab", 2), 20)
    preds = _predictions(seen, "cnn-lstm-lab")
    assert preds and all(p["coverage"] == {"EEG": 0.25} for p in preds)
    rows = _statuses(seen, "cnn-lstm-lab")
    assert rows and rows[-1]["state"] == "degraded" and rows[-1]["coverage"] == {"EEG": 0.25}
    assert "partial montage" in rows[-1]["reason"]


# -- (11) every shipped model on the streams it can take ------------------------------------------

SHIPPED_PERIPHERAL = ("mlstm-fcn-periph", "rtcan1d", "rtcan1d-eda-bvp")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_shipped_peripheral_and_wearable_models_predict_on_device_streams(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """The shipped models for peripheral and wearable sensors, end to end on device-shaped
    streams: a lab's GSR + PPG + RESP at 128 Hz (unlabelled, types EDA/BVP/RSP) feeds
    ``mlstm-fcn-periph`` (10 s at 32 Hz), ``rtcan1d`` (cvxEDA of 20 s at 16 Hz) and
    ``rtcan1d-eda-bvp`` (+ BVP at 32 Hz); a wristband (EDA 4 Hz + BVP 64 Hz) feeds the two RTCAN-1D
    models. Their windows are long (20 s and a 3 s calibration), hence this test's time."""
    missing = [m for m in SHIPPED_PERIPHERAL if not (ZOO / m / "model.onnx").is_file()]
    if missing:
        pytest.skip(f"not shipped in this checkout: {missing}")
    lab, wrist = f"{session_name}-lab", f"{session_name}-wrist"
    lab_streams = _lab_streams(128.0, labelled=False, types=("EDA", "BVP", "RSP"))[1:]
    wrist_streams = [
        skin_conductance("eda", "EDA", 4.0, label=None),
        ppg("bvp", "BVP", 64.0, label=None),
    ]

    def served(seen: list[Message], models: tuple[str, ...]) -> bool:
        return all(_has_predictions(m, 1)(seen) for m in models)

    wearable = ("rtcan1d", "rtcan1d-eda-bvp")
    with (
        Device(lab, lab_streams),
        Device(wrist, wrist_streams),
        serve(*(ZOO / m for m in SHIPPED_PERIPHERAL)) as live,
    ):
        _create(live, lab)
        _create(live, wrist)
        seen = _watch_many(
            live,
            [lab, wrist],
            lambda s: (
                bool(s) and served(s, SHIPPED_PERIPHERAL if s[0]["session"] == lab else wearable)
            ),
            80,
        )
    assert served(seen[lab], SHIPPED_PERIPHERAL), "the lab session lacks a model's predictions"
    assert served(seen[wrist], wearable)
    for p in _predictions(seen[lab]) + _predictions(seen[wrist]):
        assert 0.0 <= p["valence"] <= 1.0 and 0.0 <= p["arousal"] <= 1.0
    # the wristband's mlstm-fcn-periph has no RESP stream: it says so
    rows = _statuses(seen[wrist], "mlstm-fcn-periph") or [
        r for r in live_rows(seen[wrist]) if r["model"] == "mlstm-fcn-periph"
    ]
    assert rows and rows[-1]["state"] == "waiting" and "RESP" in rows[-1]["reason"]


def live_rows(seen: list[Message]) -> list[dict[str, Any]]:
    """The model rows of the first ``hello`` (a model's state before any change)."""
    hello = next(m for m in seen if m["type"] == "hello")
    rows: list[dict[str, Any]] = hello["model_status"]
    return rows


# -- (12) a flat skin-conductance sensor: the cvxEDA fallback reaches the client ----------------


def write_cvx_model(folder: Path) -> Path:
    """An online-cvxEDA input (origin, tonic, phasic) over 4 s of GSR at 16 Hz."""
    feature = FeatureInput("eda", FeatureKind.EDA_CVX3, (ChannelRef("GSR", "GSR"),), 16.0, 4.0)
    return _write_mean_model(
        folder, [InputContract(feature, feature.shape, np.zeros(1), np.ones(1))]
    )


@pytest.mark.timeout(60)
def test_a_flat_gsr_sensor_gets_predictions_marked_with_the_cvxeda_fallback(
    session_name: str, serve: Callable[..., Any], zoo: Path
) -> None:
    """A GSR channel stuck at one value (a loose electrode) has no decomposition: the online
    cvxEDA falls back (tonic = signal, phasic = 0) and every prediction made from it says so in
    ``fallbacks`` with the reason, instead of passing it off as a decomposition."""
    write_cvx_model(zoo / "cvx-tiny")
    flat = StreamSpec("gsr", "GSR", 1, 32.0, lambda t: np.full((len(t), 1), 4.2))
    with Device(session_name, [flat]), serve("cvx-tiny") as live:
        _create(live, session_name)
        seen = _watch(live, session_name, _has_predictions("cvx-tiny", 2), 30)
    preds = _predictions(seen, "cvx-tiny")
    assert preds and all("flat" in p["fallbacks"]["eda"] for p in preds), preds[:1]


# -- (5) optional streams: a model that may use AUX ------------------------------------------------


def _session_model(live: LiveService, session: str, model: str) -> dict[str, Any]:
    rows = live.get_json(f"/sessions/{session}")["models"]
    return dict(next(r for r in rows if r["model"].split("@")[0] == model))


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_model_that_may_use_aux_runs_without_it_and_takes_it_when_it_comes(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """``lab-aux-tiny`` needs EEG, GSR, PPG, RESP and may use AUX: GET /models says so; a lab
    without AUX gets its predictions at once (``model_status`` running, the reason naming the
    absent optional stream); when an AUX stream appears the pipeline is rebuilt with it (counted
    in ``rebuilds``) and predictions go on. The shipped ``cnn-lstm-lab`` (AUX optional since
    version 2) does the same, when models/zoo has it."""
    shipped = ("cnn-lstm-lab",) if (LAB_ZOO / "model.onnx").is_file() else ()
    names = ("lab-aux-tiny", *shipped)
    with (
        Device(session_name, _lab_streams(128.0, labelled=True)),
        serve("lab-aux-tiny", *(LAB_ZOO for _ in shipped)) as live,
    ):
        models = {m["name"]: m for m in live.get_json("/models")["models"]}
        row = models["lab-aux-tiny"]
        assert row["needs"] == ["EEG", "GSR", "RESP", "PPG"] and row["may_use"] == ["AUX"], row
        for name in shipped:
            assert models[name]["needs"] == ["EEG", "GSR", "PPG", "RESP"], models[name]
            assert models[name]["may_use"] == ["AUX"], models[name]
        _create(live, session_name)

        def running_without_aux(seen: list[Message]) -> bool:
            return all(
                _has_predictions(name, 2)(seen)
                and _statuses(seen, name)[-1]["state"] == "running"
                and "optional AUX" in _statuses(seen, name)[-1]["reason"]
                for name in names
            )

        seen = _watch(live, session_name, running_without_aux, 25)
        for name in names:
            before = _session_model(live, session_name, name)
            assert "AUX" not in before["streams"], before
            assert before["without_optional"] == ["AUX"], before
            for p in _predictions(seen, name):
                assert sorted(p["quality"]) == ["EEG", "GSR", "PPG", "RESP"]
        with Device(session_name, [aux_stream()]):

            def with_aux(seen: list[Message]) -> bool:
                return all(
                    any("AUX" in p["quality"] for p in _predictions(seen, name))
                    and _statuses(seen, name)[-1]["reason"] == ""
                    for name in names
                )

            seen = _watch(live, session_name, with_aux, 30)
            after = {name: _session_model(live, session_name, name) for name in names}
    for name, row in after.items():
        assert "AUX" in row["streams"] and row["without_optional"] == [], row
        assert row["rebuilds"] == 1 and row["status"] == "running", row
        assert row["last_rebuild"] == "its optional AUX stream came", row
        late = [p for p in _predictions(seen, name) if "AUX" in p["quality"]]
        assert late and all(0.0 <= p["valence"] <= 1.0 for p in late)


# -- (8b) a stream restarting with another channel count -------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_eeg_restarting_with_another_channel_count_is_replanned(
    session_name: str, serve: Callable[..., Any]
) -> None:
    """A headband's EEG (TP9, AF7, AF8, TP10) is reconfigured to six channels (Fp1 and Fp2
    added, the order changed): the ingest takes the new channels (a new buffer, counted in
    ``channel_changes``), the model's pipeline is rebuilt on the new labels (counted in
    ``rebuilds``, with the reason), and predictions go on from the right columns: AF7 and AF8
    carry +2, every other channel −2, so the model's sigmoid of their mean is 0.88 when it reads
    AF7 and AF8 and at most 0.5 when it reads any other column."""
    import pylsl

    four = ("TP9", "AF7", "AF8", "TP10")
    six = ("Fp1", "AF8", "TP9", "AF7", "TP10", "Fp2")
    reopened: list[float] = []

    def marked(labels: tuple[str, ...]) -> StreamSpec:
        level = np.array([2.0 if x in ("AF7", "AF8") else -2.0 for x in labels])

        def signal(t: FloatArray) -> FloatArray:
            return level + 0.01 * np.sin(2 * np.pi * t)[:, None]

        return StreamSpec("eeg", "EEG", len(labels), 128.0, signal, labels, "microvolts", "EEG")

    def restart_once(seen: list[Message]) -> None:
        if not reopened and len(_predictions(seen)) >= 2:
            new = marked(six)
            device.restart("eeg", 0.5, labels=six, n_channels=6, signal=new.signal)
            reopened.append(pylsl.local_clock())

    def after(seen: list[Message]) -> list[Message]:
        return [p for p in _predictions(seen) if reopened and p["window"]["start"] > reopened[0]]

    with (
        Device(session_name, [marked(four)]) as device,
        serve("frontal-tiny") as live,
    ):
        _create(live, session_name)
        seen = _watch(live, session_name, lambda s: len(after(s)) >= 3, 30, action=restart_once)
        detail = live.get_json(f"/sessions/{session_name}")
    (model,) = detail["models"]
    assert model["rebuilds"] == 1, model
    assert model["last_rebuild"] == "EEG stream now has 4 → 6 channels", model
    (row,) = detail["streams"]
    assert row["channel_changes"] == 1 and row["labels"] == list(six), row
    assert row["channel_count"] == 6 and row["reconnects"] >= 1, row
    assert after(seen)
    for p in _predictions(seen):  # before and after: AF7 and AF8, wherever they are
        assert p["valence"] == pytest.approx(1 / (1 + math.exp(-2.0)), abs=0.01), p
