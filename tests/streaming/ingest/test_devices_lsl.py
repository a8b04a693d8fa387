"""Real devices as they are, on real LSL outlets on loopback: types spelt many ways, labels present,
wrong or absent, skin conductance in other units (docs/lsl.md#types-labels-and-units)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from affectstream.streaming.formats.deap import EEG_NAMES
from affectstream.streaming.ingest.acquisition import StreamAcquirer
from affectstream.streaming.ingest.session import IngestSession, SessionMatch, StreamOverrides

pylsl = pytest.importorskip("pylsl")
pytestmark = pytest.mark.lsl


def _outlet(
    prefix: str,
    name: str,
    kind: str,
    n_ch: int,
    srate: float,
    *,
    labels: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    fmt: str = "float32",
) -> pylsl.StreamOutlet:
    """An outlet with ``<channels>`` only if labels or units are given (many devices send none)."""
    info = pylsl.StreamInfo(f"{prefix} {name}", kind, n_ch, srate, fmt, f"{prefix}-{name}")
    if labels is not None or units is not None:
        chans = info.desc().append_child("channels")
        for i in range(n_ch):
            ch = chans.append_child("channel")
            if labels is not None:
                ch.append_child_value("label", labels[i])
            if units is not None:
                ch.append_child_value("unit", units[i])
    return pylsl.StreamOutlet(info)


def _until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _push_and_read(
    outlet: pylsl.StreamOutlet, acq: StreamAcquirer, values: np.ndarray, srate: float
) -> np.ndarray:
    """Push ``values`` (n, n_ch) once the acquirer listens; the values as stored."""
    time.sleep(0.2)
    t0 = pylsl.local_clock()
    outlet.push_chunk(values.astype(np.float32), (t0 + np.arange(len(values)) / srate).tolist())
    _until(lambda: acq.health.samples >= len(values), 5.0, "the samples")
    assert acq.buffer is not None
    stored, _ = acq.buffer.latest(len(values))
    return stored


def test_types_in_any_spelling_and_one_channel_streams_named_by_their_modality(
    session_name: str,
) -> None:
    p = session_name
    outlets = [
        _outlet(p, "wrist-eda", "eda", 1, 4.0),  # wristband: no <channels> at all
        _outlet(p, "wrist-bvp", "BVP", 1, 64.0, labels=["Channel 1"]),  # a wrong label
        _outlet(p, "belt", "Resp", 1, 32.0, labels=[""]),  # an empty label
        _outlet(p, "ekg", "EKG", 1, 256.0, labels=["GSR"]),  # another modality's label
        _outlet(p, "headband", "eeg", 4, 256.0, labels=["TP9", "AF7", "AF8", "TP10"]),
        _outlet(p, "ppg", "ppg", 2, 64.0),  # multichannel, unlabelled
        _outlet(p, "events", "markers", 1, pylsl.IRREGULAR_RATE, fmt="string"),
    ]
    with IngestSession(SessionMatch(source_id_prefix=p)) as session:
        wanted = ["GSR", "RESP", "ECG", "EEG", "Markers"]
        assert session.wait_for(wanted, 15)
        _until(lambda: len(session.acquirers) == 7, what="all seven streams")
        for kind in ("GSR", "RESP", "ECG"):
            acq = session.by_type(kind)
            assert acq is not None
            assert acq.channel_labels == (kind,), kind
        bvp = next(a for a in session.acquirers.values() if a.stream.type == "BVP")
        assert bvp.channel_labels == ("PPG",)
        assert bvp.stream.channel_labels == ("Channel 1",)  # what the outlet said, kept
        eeg = session.by_type("eeg")
        assert eeg is not None and eeg.stream.type == "eeg"  # reported as the device spells it
        assert eeg.channel_labels == ("TP9", "AF7", "AF8", "TP10")
        assert session.by_type("MARKERS") is not None
        rows = {r["source_id"]: r for r in session.report()}
    assert rows[f"{p}-wrist-eda"]["labels"] == ["GSR"]
    assert rows[f"{p}-wrist-eda"]["labels_from"] == "type"
    assert rows[f"{p}-headband"]["labels_from"] == "stream"
    assert rows[f"{p}-ppg"]["labels"] is None and rows[f"{p}-ppg"]["labels_from"] is None
    assert rows[f"{p}-ppg"]["state"] != "refused"
    del outlets


def test_unlabelled_eeg_labelled_by_the_session_and_a_count_mismatch_refused(
    session_name: str,
) -> None:
    p = session_name
    amp = _outlet(p, "amp-eeg", "EEG", 32, 128.0)  # lab amplifier, no labels
    headband = _outlet(p, "band-eeg", "EEG", 4, 256.0)  # 4 channels, the override names 32
    gsr = _outlet(p, "amp-gsr", "GSR", 1, 128.0)
    overrides = StreamOverrides(channels={"eeg": EEG_NAMES})
    with IngestSession(SessionMatch(source_id_prefix=p), overrides=overrides) as session:
        _until(lambda: bool(session.refused and session.by_type("EEG") and session.by_type("GSR")))
        eeg = session.by_type("EEG")
        assert eeg is not None
        assert eeg.stream.key == f"{p}-amp-eeg"
        assert eeg.channel_labels == tuple(EEG_NAMES)
        assert eeg.stream.channel_labels == ()
        x = np.tile(np.arange(32, dtype=float), (16, 1)) + np.arange(16)[:, None] * 100
        stored = _push_and_read(amp, eeg, x, 128.0)
        np.testing.assert_array_equal(stored, x)  # columns in the order the labels name them
        rows = {r["source_id"]: r for r in session.report()}
    ok, refused = rows[f"{p}-amp-eeg"], rows[f"{p}-band-eeg"]
    assert ok["labels"] == list(EEG_NAMES) and ok["labels_from"] == "override"
    assert refused["state"] == "refused"
    assert "has 4 channel(s); the session's labels for EEG name 32" in str(refused["reason"])
    assert rows[f"{p}-amp-gsr"]["state"] in ("connecting", "ok")  # the others go on
    del headband, gsr


def test_gsr_in_kiloohm_from_the_session_is_stored_in_microsiemens(session_name: str) -> None:
    p = session_name
    sensor = _outlet(p, "gsr", "GSR", 1, 50.0)  # a GSR sensor at 50 Hz that sends kΩ, unsaid
    overrides = StreamOverrides(units={"gsr": "kOhm"})
    with IngestSession(SessionMatch(source_id_prefix=p), overrides=overrides) as session:
        assert session.wait_for(["GSR"], 15)
        acq = session.by_type("GSR")
        assert acq is not None
        kohm = np.array([100.0, 200.0, 50.0, 0.0, -3.0, 1000.0, 400.0, 250.0])[:, None]
        stored = _push_and_read(sensor, acq, kohm, 50.0)
        row = session.report()[0]
    np.testing.assert_allclose(stored[[0, 1, 2, 5, 6, 7], 0], [10.0, 5.0, 20.0, 1.0, 2.5, 4.0])
    assert np.isnan(stored[[3, 4], 0]).all()  # no conductance for a resistance ≤ 0
    assert acq.health.nonfinite == 2  # counted as the non-finite rule says
    assert acq.channels.units == ("µS",)
    assert row["unit"] == "µS" and row["unit_from"] == "override" and row["unit_given"] == "kOhm"


def test_gsr_unit_from_the_description_is_converted_and_the_session_wins(
    session_name: str,
) -> None:
    p = session_name
    described = _outlet(p, "kohm", "EDA", 2, 32.0, labels=["L", "R"], units=["kΩ", "kOhm"])
    wrong = _outlet(p, "says-us", "SC", 1, 16.0, units=["uS"])  # the device says µS, sends Ω
    overrides = StreamOverrides(units={"EDA": "Ohm"})
    with IngestSession(SessionMatch(source_id_prefix=p, type="GSR")) as session:
        _until(lambda: len(session.acquirers) == 2, what="both streams")
        acq = session.acquirers[f"{p}-kohm"]
        stored = _push_and_read(described, acq, np.array([[100.0, 500.0], [20.0, 40.0]]), 32.0)
        row = next(r for r in session.report() if r["source_id"] == f"{p}-kohm")
    np.testing.assert_allclose(stored, [[10.0, 2.0], [50.0, 25.0]])
    assert acq.channel_labels == ("L", "R")
    assert row["unit"] == "µS" and row["unit_from"] == "description"
    assert row["unit_given"] == "kΩ, kOhm"
    del described
    with IngestSession(SessionMatch(source_id_prefix=f"{p}-says"), overrides=overrides) as session:
        assert session.wait_for(["GSR"], 15)
        acq = session.by_type("GSR")
        assert acq is not None
        stored = _push_and_read(wrong, acq, np.array([[250_000.0], [1e6]]), 16.0)
        row = session.report()[0]
    np.testing.assert_allclose(stored[:, 0], [4.0, 1.0])
    assert row["unit_from"] == "override" and row["unit_given"] == "Ohm"


def test_gsr_without_unit_is_assumed_microsiemens_and_reported(session_name: str) -> None:
    p = session_name
    wristband = _outlet(p, "eda", "EDA", 1, 4.0)
    with IngestSession(SessionMatch(source_id_prefix=p)) as session:
        assert session.wait_for(["GSR"], 15)
        acq = session.by_type("GSR")
        assert acq is not None
        stored = _push_and_read(wristband, acq, np.array([[0.5], [1.25], [3.0]]), 4.0)
        row = session.report()[0]
    np.testing.assert_allclose(stored[:, 0], [0.5, 1.25, 3.0])  # values untouched
    assert row["unit"] == "µS (assumed)" and row["unit_from"] == "assumed"
    assert row["unit_given"] is None and row["state"] == "ok"


def test_gsr_with_an_unknown_unit_is_refused_not_guessed(session_name: str) -> None:
    p = session_name
    odd = _outlet(p, "odd", "GSR", 1, 10.0, labels=["GSR"], units=["mOhm"])
    ppg = _outlet(p, "ppg", "PPG", 1, 64.0, units=["a.u."])  # other types: unit not read
    with IngestSession(SessionMatch(source_id_prefix=p)) as session:
        _until(lambda: bool(session.refused and session.by_type("PPG")), what="refusal")
        rows = {r["type"]: r for r in session.report()}
        assert session.by_type("GSR") is None
    assert rows["GSR"]["state"] == "refused"
    assert "channel 1: unit 'mOhm' is no skin-conductance unit known here" in str(
        rows["GSR"]["reason"]
    )
    assert rows["PPG"]["unit"] == "a.u." and rows["PPG"]["state"] != "refused"
    del odd, ppg
