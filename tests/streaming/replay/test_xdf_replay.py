"""XDF replay: the outlets and play list of a lab recording, the command's errors, and the streams
over real LSL (names, rates, labels, units, values, relative timing, --streams, --speed, --loop)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
import pytest

from affectstream.service import cli as cli_module
from affectstream.streaming.formats.xdf import XdfChannel, XdfStream, read_xdf, write_xdf
from affectstream.streaming.replay.xdf import XdfReplay, default_session_name

EEG_LABELS = ("Fp1", "Fp2", "C3", "C4")
N_EEG, N_GSR = 640, 120  # 2.5 s at 256 Hz, 2.4 s at 50 Hz
OFFSET = 5.0  # the EEG amplifier's clock runs 5 s behind the recording computer's
MARKERS = (("block start", 0.5), ("stimulus 2", 2.0))  # seconds after the first EEG sample


def write_lab_file(path: Path, tag: str, start: float = 1000.0, marker_source_id: str = "") -> Path:
    """EEG (4 ch @ 256 Hz, µV, on a clock 5 s behind, with ClockOffset chunks) from ``start``,
    GSR (1 ch @ 50 Hz, kOhm) from ``start + 0.1``, markers at ``start + 0.5`` and ``+ 2.0``
    (recorded with ``marker_source_id``). Stream names and source ids carry ``tag`` so that
    tests never see each other's streams."""
    eeg = XdfStream(
        name=f"{tag} EEG",
        type="EEG",
        srate=256.0,
        fmt="float32",
        channels=tuple(XdfChannel(label, "microvolts", "EEG") for label in EEG_LABELS),
        time_stamps=start - OFFSET + np.arange(N_EEG) / 256.0,
        values=np.random.default_rng(3).standard_normal((N_EEG, 4)).astype(np.float32) * 20,
        source_id=f"{tag}-amp",
        desc={"manufacturer": "Acme"},
        clock_offsets=tuple((start - OFFSET + t, OFFSET) for t in (0.0, 1.0, 2.0, 3.0)),
    )
    gsr = XdfStream(
        name=f"{tag} GSR",
        type="GSR",
        srate=50.0,
        fmt="double64",
        channels=(XdfChannel("GSR", "kOhm", "GSR"),),
        time_stamps=start + 0.1 + np.arange(N_GSR) / 50.0,
        values=(200 + np.arange(N_GSR, dtype=np.float64) / 7)[:, None],
        source_id=f"{tag}-shimmer",
    )
    markers = XdfStream(
        name=f"{tag} Markers",
        type="Markers",
        srate=0.0,
        fmt="string",
        channels=(XdfChannel("Marker"),),
        time_stamps=start + np.array([t for _, t in MARKERS]),
        values=np.array([[m] for m, _ in MARKERS], dtype=object),
        source_id=marker_source_id,
    )
    return write_xdf(path, [eeg, gsr, markers])


@pytest.fixture
def lab_file(tmp_path: Path, session_name: str) -> Path:
    """The markers recorded without a source_id: the replay derives one."""
    return write_lab_file(tmp_path / "lab.xdf", session_name)


@pytest.fixture
def lsl_file(tmp_path: Path, session_name: str) -> Path:
    """For tests over LSL: every source_id is a recorded one that ``serve --auto-attach`` does
    not group (not ``<key>-<TYPE>``), so a service auto-attaching on this machine (another test
    run) cannot consume the streams before the test's inlets do and start the clock early."""
    return write_lab_file(
        tmp_path / "lab.xdf", session_name, marker_source_id=f"{session_name}-psy"
    )


@pytest.fixture
def odd_session(session_name: str) -> str:
    """A ``--session`` that is not a valid service session id, so that auto-attach (another
    test run on this machine) leaves the ``<session>-<TYPE>`` streams alone."""
    return f"{session_name}+xdf"


# -- the play list, without LSL ------------------------------------------------------------


def test_every_stream_is_republished_as_recorded(lab_file: Path, session_name: str) -> None:
    r = XdfReplay(read_xdf(lab_file))
    derived = default_session_name(lab_file)
    specs = {s.type: s for s in r.specs}
    eeg, gsr, mk = specs["EEG"], specs["GSR"], specs["Markers"]
    assert (eeg.name, eeg.srate, eeg.fmt, eeg.source_id) == (
        f"{session_name} EEG",
        256.0,
        "float32",
        f"{session_name}-amp",
    )
    assert [(c.label, c.unit, c.type) for c in eeg.channels] == [
        (label, "microvolts", "EEG") for label in EEG_LABELS
    ]
    assert eeg.desc == {"manufacturer": "Acme", "session": derived}
    assert eeg.groups["replay"]["recorded_source_id"] == f"{session_name}-amp"
    assert (gsr.srate, gsr.fmt, gsr.channels[0].unit) == (50.0, "double64", "kOhm")
    assert (mk.srate, mk.fmt, mk.source_id) == (0.0, "string", f"{derived}-Markers")
    # time 0 is the first EEG sample once the clock offset is applied
    rel = {t.spec.type: t.rel for t in r.tracks}
    assert rel["EEG"][0] == 0.0
    np.testing.assert_allclose(rel["GSR"][0], 0.1, atol=1e-9)
    np.testing.assert_allclose(rel["Markers"], [0.5, 2.0], atol=1e-9)
    assert r.duration == pytest.approx(2.5)  # last EEG sample + one period


def test_a_session_name_gives_the_replays_source_ids(lab_file: Path) -> None:
    r = XdfReplay(read_xdf(lab_file), session="lab7", speed=2.0)
    assert [s.source_id for s in r.specs] == ["lab7-EEG", "lab7-GSR", "lab7-Markers"]
    assert {s.desc["session"] for s in r.specs} == {"lab7"}
    assert [s.srate for s in r.specs] == [512.0, 100.0, 0.0]  # declared rate × speed
    assert r.specs[0].groups["replay"]["data_srate"] == "256"


def test_streams_selects_by_name_and_unknown_names_are_listed(
    lab_file: Path, session_name: str
) -> None:
    rec = read_xdf(lab_file)
    r = XdfReplay(rec, streams=[f"{session_name} GSR", f"{session_name} Markers"])
    assert [s.type for s in r.specs] == ["GSR", "Markers"]
    assert r.tracks[0].rel[0] == 0.0  # time 0: the earliest of the *played* streams
    np.testing.assert_allclose(r.tracks[1].rel, [0.4, 1.9], atol=1e-9)
    with pytest.raises(ValueError, match=rf"no stream named 'EEG'.*'{session_name} GSR' \(GSR\)"):
        XdfReplay(rec, streams=["EEG"])


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--streams", "nope"], "no stream named 'nope'"),
        (["--speed", "0"], "speed must be a positive number"),
        (["--faults", "drop=0.1"], "--faults is not supported for XDF"),
        (["--trials", "1"], "--trials is not used with XDF files"),
    ],
)
def test_command_errors_are_clear(
    lab_file: Path, extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_module.main(["replay", str(lab_file), *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_command_refuses_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(b"XDF:\x01\xff\x01\x00<info")
    assert cli_module.main(["replay", str(bad)]) == 2
    assert "unreadable XDF file" in capsys.readouterr().err
    assert cli_module.main(["replay", str(tmp_path / "missing.xdf")]) == 2
    assert "no such file" in capsys.readouterr().err


# -- over LSL --------------------------------------------------------------------------------


@dataclass
class Got:
    info: Any
    values: list[Any] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)


def _open_inlets(source_ids: list[str]) -> dict[str, pylsl.StreamInlet]:
    inlets = {}
    for sid in source_ids:
        found = pylsl.resolve_byprop("source_id", sid, timeout=10)
        assert found, f"no stream with source_id {sid}"
        inlet = pylsl.StreamInlet(found[0])  # no post-processing: timestamps as pushed
        inlet.open_stream(timeout=10)
        inlets[sid] = inlet
    return inlets


def _drain(inlets: dict[str, pylsl.StreamInlet], done: Callable[[], bool]) -> dict[str, Got]:
    got = {sid: Got(inlet.info(timeout=5)) for sid, inlet in inlets.items()}
    deadline = time.monotonic() + 12
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        n = 0
        for sid, inlet in inlets.items():
            data, ts = inlet.pull_chunk(timeout=0.1)
            got[sid].values += data
            got[sid].stamps += ts
            n += len(ts)
        quiet = quiet + 1 if n == 0 and done() else 0
    return got


def _channels(info: Any) -> list[tuple[str, str]]:
    out = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append((ch.child_value("label"), ch.child_value("unit")))
        ch = ch.next_sibling()
    return out


def _play(replay: XdfReplay, stop: threading.Event | None = None) -> dict[str, Got]:
    replay.open()
    inlets = _open_inlets([s.source_id for s in replay.specs])
    thread = threading.Thread(
        target=replay.run, args=(stop,), kwargs={"wait_for_consumers": 5}, daemon=True
    )
    thread.start()
    try:
        return _drain(inlets, lambda: not thread.is_alive())
    finally:
        if stop is not None:
            stop.set()
        thread.join(5)
        replay.close()


@pytest.mark.lsl
@pytest.mark.timeout(30)
def test_a_lab_recording_replays_as_its_live_session(lsl_file: Path, session_name: str) -> None:
    rec = read_xdf(lsl_file)
    replay = XdfReplay(rec, linger_s=0.5)
    got = _play(replay)
    sid = {s.type: s.source_id for s in replay.specs}
    eeg, gsr, mk = got[sid["EEG"]], got[sid["GSR"]], got[sid["Markers"]]
    assert (eeg.info.name(), eeg.info.type(), eeg.info.nominal_srate()) == (
        f"{session_name} EEG",
        "EEG",
        256.0,
    )
    assert eeg.info.channel_format() == pylsl.cf_float32
    assert _channels(eeg.info) == [(label, "microvolts") for label in EEG_LABELS]
    assert eeg.info.desc().child_value("manufacturer") == "Acme"
    assert (gsr.info.nominal_srate(), gsr.info.channel_format()) == (50.0, pylsl.cf_double64)
    assert _channels(gsr.info) == [("GSR", "kOhm")]
    assert (mk.info.nominal_srate(), mk.info.channel_format()) == (0.0, pylsl.cf_string)
    # values as in the file
    np.testing.assert_array_equal(np.array(eeg.values, np.float32), rec.streams[0].values)
    np.testing.assert_array_equal(np.array(gsr.values), rec.streams[1].values)
    assert [row[0] for row in mk.values] == [m for m, _ in MARKERS]
    # one clock: every stream keeps its offset from the first EEG sample (clock offset applied)
    t0 = eeg.stamps[0]
    np.testing.assert_allclose(np.array(mk.stamps) - t0, [t for _, t in MARKERS], atol=0.01)
    assert gsr.stamps[0] - t0 == pytest.approx(0.1, abs=0.01)
    assert eeg.stamps[-1] - t0 == pytest.approx((N_EEG - 1) / 256.0, abs=1e-6)
    assert replay.samples_pushed == [N_EEG, N_GSR, len(MARKERS)]


@pytest.mark.lsl
@pytest.mark.timeout(30)
def test_streams_and_speed_select_and_halve_the_durations(
    lsl_file: Path, session_name: str
) -> None:
    names = [f"{session_name} EEG", f"{session_name} Markers"]
    replay = XdfReplay(read_xdf(lsl_file), streams=names, speed=2.0, linger_s=0.5)
    assert [s.type for s in replay.specs] == ["EEG", "Markers"]
    got = _play(replay)
    eeg, mk = got[f"{session_name}-amp"], got[f"{session_name}-psy"]
    assert eeg.info.nominal_srate() == 512.0
    assert len(eeg.stamps) == N_EEG
    assert eeg.stamps[-1] - eeg.stamps[0] == pytest.approx((N_EEG - 1) / 256.0 / 2, abs=1e-6)
    np.testing.assert_allclose(np.array(mk.stamps) - eeg.stamps[0], [0.25, 1.0], atol=0.01)
    assert not pylsl.resolve_byprop("source_id", f"{session_name}-shimmer", timeout=0.5)


@pytest.mark.lsl
@pytest.mark.timeout(30)
def test_loop_starts_again_with_increasing_timestamps(
    lsl_file: Path, session_name: str, odd_session: str
) -> None:
    names = [f"{session_name} EEG", f"{session_name} Markers"]
    replay = XdfReplay(read_xdf(lsl_file), streams=names, speed=5.0, loop=True, session=odd_session)
    stop = threading.Event()

    def enough(last_ts: float, now: float) -> None:  # 0.5 s per pass: stop in the third
        if replay.samples_pushed[0] >= 2 * N_EEG + 10:
            stop.set()

    replay.on_chunk = enough
    got = _play(replay, stop)
    eeg, mk = got[f"{odd_session}-EEG"], got[f"{odd_session}-Markers"]
    stamps = np.array(eeg.stamps)
    assert len(stamps) > 2 * N_EEG and np.all(np.diff(stamps) > 0)
    period = 2.5 / 5.0
    assert stamps[N_EEG] - stamps[0] == pytest.approx(period, abs=1e-6)
    values = np.array(eeg.values, np.float32)
    np.testing.assert_array_equal(values[N_EEG : 2 * N_EEG], values[:N_EEG])
    rel = np.array(mk.stamps[:4]) - stamps[0]
    np.testing.assert_allclose(rel, [0.1, 0.4, 0.1 + period, 0.4 + period], atol=0.01)


@pytest.mark.lsl
@pytest.mark.timeout(30)
def test_the_command_replays_a_file(
    lsl_file: Path,
    odd_session: str,
    cli: Callable[..., list[str]],
    cli_env: dict[str, str],
) -> None:
    proc = subprocess.Popen(
        cli("replay", lsl_file, "--session", odd_session, "--speed", "2",
            "--wait-for-consumers", "10"),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        types = ("EEG", "GSR", "Markers")
        inlets = _open_inlets([f"{odd_session}-{t}" for t in types])
        got = _drain(inlets, lambda: proc.poll() is not None)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(got[f"{odd_session}-EEG"].stamps) == N_EEG
    assert len(got[f"{odd_session}-GSR"].stamps) == N_GSR
    assert [row[0] for row in got[f"{odd_session}-Markers"].values] == [m for m, _ in MARKERS]
    assert f"source_id={odd_session}-EEG" in out and "stimulus 2" in out
