"""The DEAP format: channel table, reader and writer, and every malformed-file case."""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from affectstream.streaming.formats import deap
from affectstream.streaming.formats.deap import DeapFormatError, read_deap, write_deap


def _arrays(n_trials: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_trials, 40, 8064))
    data[:, deap.GSR_INDEX] = 2e5 + 1e4 * rng.random((n_trials, 8064))  # resistance, Ohm
    labels = rng.uniform(1, 9, size=(n_trials, 4))
    return data, labels


def _pickle_file(tmp_path: Path, obj: object, name: str = "s05.dat", protocol: int = 2) -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# -- channel table ------------------------------------------------------------------------------


def test_channel_table_matches_the_deap_readme() -> None:
    assert len(deap.CHANNELS) == deap.N_CHANNELS == 40
    assert [c.index for c in deap.CHANNELS] == list(range(40))
    # spot checks against docs/datasets.md#deap-channels (1-based numbers in the readme)
    assert deap.CHANNELS[0].name == "Fp1"
    assert deap.CHANNELS[15].name == "Pz"
    assert deap.CHANNELS[16].name == "Fp2"
    assert deap.CHANNELS[23].name == "Cz"
    assert deap.CHANNELS[31].name == "O2"
    peripheral = [c.name for c in deap.CHANNELS[32:]]
    assert peripheral == [
        "hEOG",
        "vEOG",
        "zEMG",
        "tEMG",
        "GSR",
        "Respiration",
        "Plethysmograph",
        "Temperature",
    ]
    assert deap.channel("GSR").index == deap.GSR_INDEX == 36
    assert deap.channel("GSR").unit == "Ohm"
    assert deap.indices_of_kind(deap.ChannelKind.EEG) == tuple(range(32))
    assert deap.indices_of_kind(deap.ChannelKind.EOG, deap.ChannelKind.EMG) == (32, 33, 34, 35)
    assert len(set(deap.EEG_NAMES)) == 32
    assert deap.N_SAMPLES == 63 * 128 and deap.BASELINE_SAMPLES == 3 * 128


def test_unknown_channel_name_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match=r"no DEAP channel 'EDA'.*'GSR'"):
        deap.channel("EDA")


def test_gsr_resistance_to_conductance() -> None:
    r = np.array([1e6, 2e5, 5e4])
    np.testing.assert_allclose(deap.gsr_ohm_to_microsiemens(r), [1.0, 5.0, 20.0])
    for bad in (0.0, -3.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="finite and > 0 Ohm"):
            deap.gsr_ohm_to_microsiemens(np.array([1e5, bad]))


# -- round trip and compatibility ----------------------------------------------------------------


def test_write_then_read_gives_identical_arrays(tmp_path: Path) -> None:
    data, labels = _arrays(3)
    path = write_deap(tmp_path / "s01.dat", data, labels)
    subject = read_deap(path)
    assert subject.data.dtype == np.float64 and subject.labels.dtype == np.float64
    np.testing.assert_array_equal(subject.data, data)
    np.testing.assert_array_equal(subject.labels, labels)
    assert subject.subject == 1 and subject.n_trials == 3


def test_written_file_is_a_python2_pickle_that_public_loaders_read(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    path = write_deap(tmp_path / "s02.dat", data, labels)
    raw = path.read_bytes()
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    # Python 2 str opcodes only; no Python-3 unicode/bytes opcodes, protocol 2
    assert raw[:2] == b"\x80\x02"
    assert {"SHORT_BINSTRING", "BINSTRING", "GLOBAL"} <= ops
    assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    # the way every public DEAP loader reads it (docs/datasets.md#deap-files)
    with path.open("rb") as f:
        obj = pickle.load(f, encoding="latin1")
    assert set(obj) == {"data", "labels"}
    np.testing.assert_array_equal(obj["data"], data)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_pickles_of_the_same_dict_load(tmp_path: Path, protocol: int) -> None:
    data, labels = _arrays(1)
    path = _pickle_file(tmp_path, {"data": data, "labels": labels}, protocol=protocol)
    np.testing.assert_array_equal(read_deap(path).data, data)


def test_byte_string_keys_load(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    path = _pickle_file(tmp_path, {b"data": data, b"labels": labels})
    np.testing.assert_array_equal(read_deap(path).labels, labels)


def test_subject_number_from_file_name() -> None:
    assert deap.subject_number("data/s32.dat") == 32
    assert deap.subject_number("subject1.dat") is None


# -- malformed files: each gives an error naming the file and the problem -------------------------


def _assert_refused(path: Path, *fragments: str) -> DeapFormatError:
    with pytest.raises(DeapFormatError) as info:
        read_deap(path)
    msg = str(info.value)
    assert msg.startswith(str(path) + ": "), msg
    for fragment in fragments:
        assert fragment in msg, msg
    return info.value


def test_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "s01.dat"
    path.write_text("subject,trial,valence\n1,1,5.0\n")
    _assert_refused(path, "not a pickle")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "s01.dat"
    path.write_bytes(b"")
    _assert_refused(path, "file is empty")


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.999])
def test_truncated_pickle(tmp_path: Path, fraction: float) -> None:
    data, labels = _arrays(1)
    full = write_deap(tmp_path / "full.dat", data, labels).read_bytes()
    path = tmp_path / "s01.dat"
    cut = int(len(full) * fraction)
    path.write_bytes(full[:cut])
    _assert_refused(path, "truncated pickle", f"after {cut} bytes")


def test_pickle_referring_to_code_is_refused_not_run(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = _pickle_file(tmp_path, {"data": Evil(), "labels": None})
    _assert_refused(path, "refers to", "system", "refusing to load")
    assert not (tmp_path / "pwned").exists()


def test_top_level_not_a_dict(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    _assert_refused(_pickle_file(tmp_path, [data, labels]), "top-level object is a list")


def test_missing_key(tmp_path: Path) -> None:
    data, _ = _arrays(1)
    _assert_refused(_pickle_file(tmp_path, {"data": data}), "missing key(s) 'labels'")


def test_unexpected_key(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    obj = {"data": data, "labels": labels, "subject": 3}
    _assert_refused(_pickle_file(tmp_path, obj), "unexpected key(s) 'subject'")


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ((2, 39, 8064), "expected (trials, 40, 8064)"),
        ((2, 40, 7680), "expected (trials, 40, 8064)"),
        ((40, 8064), "expected a 3-D array"),
        ((0, 40, 8064), "holds no trial"),
    ],
)
def test_wrong_data_shape(tmp_path: Path, shape: tuple[int, ...], fragment: str) -> None:
    data = np.ones(shape)
    labels = np.full((shape[0] if len(shape) == 3 else 2, 4), 5.0)
    _assert_refused(_pickle_file(tmp_path, {"data": data, "labels": labels}), "'data'", fragment)


@pytest.mark.parametrize("shape", [(2, 3), (3, 4), (2, 4, 1)])
def test_wrong_labels_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data, _ = _arrays(2)
    obj = {"data": data, "labels": np.full(shape, 5.0)}
    _assert_refused(_pickle_file(tmp_path, obj), "'labels'", "shape")


def test_wrong_dtype(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    obj = {"data": data.astype(np.float32), "labels": labels}
    _assert_refused(_pickle_file(tmp_path, obj), "'data' has dtype float32, expected float64")


def test_not_an_array(tmp_path: Path) -> None:
    data, _ = _arrays(1)
    obj = {"data": data, "labels": [[5.0] * 4]}
    _assert_refused(_pickle_file(tmp_path, obj), "'labels' is a list, expected a numpy array")


def test_non_finite_data_names_the_position(tmp_path: Path) -> None:
    data, labels = _arrays(2)
    data[1, 36, 100] = np.nan
    data[1, 37, 5] = np.inf
    _assert_refused(
        _pickle_file(tmp_path, {"data": data, "labels": labels}),
        "2 non-finite value(s)",
        "trial 2, channel 37 (GSR), sample 100",
    )


def test_ratings_off_the_scale(tmp_path: Path) -> None:
    data, labels = _arrays(2)
    labels[1, 1] = 9.5
    _assert_refused(
        _pickle_file(tmp_path, {"data": data, "labels": labels}),
        "outside 1-9",
        "trial 2 arousal = 9.5",
    )


def test_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    data, labels = _arrays(1)
    data[0, 0, 0] = np.nan
    with pytest.raises(DeapFormatError, match="non-finite"):
        write_deap(tmp_path / "s01.dat", data, labels)
    assert not (tmp_path / "s01.dat").exists()


def test_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_deap(tmp_path / "s99.dat")


def test_in_memory_validation_error_names_memory() -> None:
    data, labels = _arrays(1)
    with pytest.raises(DeapFormatError, match=r"^<memory>: 'labels' has shape \(1, 3\)"):
        deap.validate_deap(data, labels[:, :3])


def test_error_from_bytes_io_is_not_needed() -> None:
    # read_deap takes paths only: the error names a file; this guards the public signature
    with pytest.raises(TypeError):
        read_deap(io.BytesIO(b""))  # type: ignore[arg-type]
