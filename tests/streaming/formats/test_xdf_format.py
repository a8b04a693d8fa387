"""XDF files written by :func:`write_xdf` read back by pyxdf (directly and through
:func:`read_xdf`): streams, channel descriptions, values, clock offsets, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyxdf

from affectstream.streaming.formats.xdf import (
    XdfChannel,
    XdfFormatError,
    XdfStream,
    read_xdf,
    write_xdf,
)

EEG_LABELS = ("Fp1", "Fp2", "C3", "C4")
OFFSET = 5.0  # the EEG amplifier's clock runs 5 s behind the recording computer's


def lab_streams(tag: str = "lab", start: float = 100.0) -> list[XdfStream]:
    """A lab recording: EEG (4 ch, 256 Hz, µV, recorded on a clock ``OFFSET`` behind, with
    ClockOffset chunks), GSR (1 ch, 50 Hz, kOhm, double), markers (irregular strings)."""
    rng = np.random.default_rng(3)
    n_eeg, n_gsr = 640, 120  # 2.5 s, 2.4 s
    eeg = XdfStream(
        name=f"{tag} EEG",
        type="EEG",
        srate=256.0,
        fmt="float32",
        channels=tuple(XdfChannel(label, "microvolts", "EEG") for label in EEG_LABELS),
        time_stamps=start - OFFSET + np.arange(n_eeg) / 256.0,
        values=rng.standard_normal((n_eeg, 4)).astype(np.float32) * 20,
        source_id=f"{tag}-amp-EEG",
        hostname="lab-pc-eeg",
        desc={"manufacturer": "Acme"},
        clock_offsets=tuple((start - OFFSET + t, OFFSET) for t in (0.0, 1.0, 2.0, 3.0)),
    )
    gsr = XdfStream(
        name=f"{tag} GSR",
        type="GSR",
        srate=50.0,
        fmt="double64",
        channels=(XdfChannel("GSR", "kOhm", "GSR"),),
        time_stamps=start + 0.1 + np.arange(n_gsr) / 50.0,
        values=(200 + np.arange(n_gsr, dtype=np.float64) / 7)[:, None],
        source_id=f"{tag}-shimmer-GSR",
    )
    markers = XdfStream(
        name=f"{tag} Markers",
        type="Markers",
        srate=0.0,
        fmt="string",
        channels=(XdfChannel("Marker"),),
        time_stamps=start + np.array([0.5, 2.0]),
        values=np.array([["block start"], ["stimulus 2 · é"]], dtype=object),
        source_id=f"{tag}-psychopy-Markers",
    )
    return [eeg, gsr, markers]


def test_pyxdf_reads_a_written_file(tmp_path: Path) -> None:
    path = write_xdf(tmp_path / "lab.xdf", lab_streams(), header={"datetime": "2026-01-02"})
    streams, header = pyxdf.load_xdf(str(path), dejitter_timestamps=False)
    assert header["info"]["datetime"] == ["2026-01-02"]
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg = by_name["lab EEG"]
    assert eeg["info"]["nominal_srate"] == ["256.0"] and eeg["info"]["channel_format"] == [
        "float32"
    ]
    chans = eeg["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == list(EEG_LABELS)
    assert {c["unit"][0] for c in chans} == {"microvolts"}
    assert eeg["time_series"].shape == (640, 4)
    np.testing.assert_allclose(eeg["time_stamps"][0], 100.0)  # the offset was applied
    assert by_name["lab Markers"]["time_series"] == [["block start"], ["stimulus 2 · é"]]
    assert eeg["footer"]["info"]["sample_count"] == ["640"]


def test_read_xdf_gives_every_stream_on_the_recording_clock(tmp_path: Path) -> None:
    written = lab_streams()
    rec = read_xdf(write_xdf(tmp_path / "lab.xdf", written))
    assert rec.names == ["lab EEG", "lab GSR", "lab Markers"]
    eeg, gsr, markers = rec.streams
    assert (eeg.type, eeg.srate, eeg.fmt, eeg.source_id) == ("EEG", 256.0, "float32", "lab-amp-EEG")
    assert eeg.channels == written[0].channels and eeg.desc == {"manufacturer": "Acme"}
    assert eeg.hostname == "lab-pc-eeg" and eeg.clock_offsets[0] == (95.0, OFFSET)
    np.testing.assert_array_equal(eeg.values, written[0].values)
    # not dejittered, offset applied: the recorded times + 5 s
    np.testing.assert_allclose(eeg.time_stamps, written[0].time_stamps + OFFSET, atol=1e-9)
    assert gsr.fmt == "double64" and gsr.values.dtype == np.float64
    assert gsr.channels == (XdfChannel("GSR", "kOhm", "GSR"),)
    np.testing.assert_array_equal(gsr.values, written[1].values)
    np.testing.assert_array_equal(gsr.time_stamps, written[1].time_stamps)
    assert markers.srate == 0 and markers.is_string
    assert markers.values.tolist() == [["block start"], ["stimulus 2 · é"]]
    np.testing.assert_array_equal(markers.time_stamps, [100.5, 102.0])
    assert markers.time_stamps[1] - eeg.time_stamps[0] == pytest.approx(2.0, abs=1e-9)


def test_jittered_timestamps_are_kept_as_recorded(tmp_path: Path) -> None:
    ts = 10 + np.arange(300) / 100.0 + np.random.default_rng(1).uniform(-2e-3, 2e-3, 300)
    ts.sort()
    s = XdfStream(
        "jit", "PPG", 100.0, "int16", (XdfChannel("PPG", "au"),), ts,
        np.arange(300, dtype=np.int16)[:, None],
    )  # fmt: skip
    back = read_xdf(write_xdf(tmp_path / "j.xdf", [s])).streams[0]
    np.testing.assert_array_equal(back.time_stamps, ts)
    assert back.values.dtype == np.int16 and back.values[:, 0].tolist() == list(range(300))


def test_a_stream_without_samples_or_description(tmp_path: Path) -> None:
    empty = XdfStream("quiet", "EEG", 128.0, "float32", (XdfChannel(""),) * 2,
                      np.zeros(0), np.zeros((0, 2), np.float32))  # fmt: skip
    back = read_xdf(write_xdf(tmp_path / "e.xdf", [empty, *lab_streams()])).streams[0]
    assert back.name == "quiet" and back.n_samples == 0 and back.channel_count == 2
    assert back.channels == (XdfChannel(""), XdfChannel(""))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        (b"not xdf at all", "not an XDF file"),
        (b"XDF:\x01\xff\x01\x00<info", "unreadable XDF file"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, content: bytes | None, fragment: str) -> None:
    path = tmp_path / "bad.xdf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(XdfFormatError, match=fragment):
        read_xdf(path)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write_xdf(tmp_path / "lab.xdf", lab_streams())
    path.write_bytes(path.read_bytes()[:300])  # inside the first stream header
    with pytest.raises(XdfFormatError, match="unreadable XDF file"):
        read_xdf(path)


def test_write_refuses_streams_that_do_not_fit(tmp_path: Path) -> None:
    s = lab_streams()[0]
    bad = XdfStream(s.name, s.type, s.srate, s.fmt, s.channels[:3], s.time_stamps, s.values)
    with pytest.raises(XdfFormatError, match=r"values of shape \(640, 4\), expected \(640, 3\)"):
        write_xdf(tmp_path / "x.xdf", [bad])
    odd = XdfStream("x", "EEG", 1.0, "complex", (XdfChannel("a"),), np.zeros(1), np.zeros((1, 1)))
    with pytest.raises(XdfFormatError, match="unknown channel format"):
        write_xdf(tmp_path / "x.xdf", [odd])
