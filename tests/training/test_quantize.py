"""The int8 variant of an exported model (#16): written with its record and measured against the
float model on held-out subjects, refused past the limits, served by the runner only while it
belongs to the folder's ``model.onnx``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectstream.models.runner import QUANTIZED_ONNX, QUANTIZED_RECORD, ModelRunner
from affectstream.training.commands.quantize import main as quantize_main
from affectstream.training.coverage import held_out_files
from affectstream.training.quantize import quantize_model_dir

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


@pytest.fixture(scope="module")
def tiny_deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from affectstream.streaming.synthetic.deap import write_synthetic_deap

    out = tmp_path_factory.mktemp("quantize-deap")
    write_synthetic_deap(out, n_subjects=3, n_trials=2, seed=5)
    return out


@pytest.fixture(scope="module")
def quantized(tiny_deap: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped mlstm-fcn-periph (GSR, PPG, RESP) with its int8 variant."""
    folder = tmp_path_factory.mktemp("quantized") / "mlstm-fcn-periph"
    shutil.copytree(ZOO / "mlstm-fcn-periph", folder)
    for name in (QUANTIZED_ONNX, QUANTIZED_RECORD):
        (folder / name).unlink(missing_ok=True)
    code = quantize_main(
        [
            str(folder),
            "--data",
            str(tiny_deap),
            "--calib-subjects",
            "1",
            "--eval-subjects",
            "2",
            "3",
            "--max-mean-diff",
            "1",
            "--min-decisive-agreement",
            "0",
            "--keep-float",
            "fcn.0/",
        ]
    )
    assert code == 0
    return folder


@pytest.mark.timeout(300)
def test_the_variant_is_written_with_its_record_and_measured(
    quantized: Path, tiny_deap: Path
) -> None:
    from affectstream.models.contract import file_sha256
    from affectstream.training.datasets.deap import deap_windows

    record = json.loads((quantized / QUANTIZED_RECORD).read_text())
    float_runner = ModelRunner(quantized, providers=["CPUExecutionProvider"])
    assert record["source_onnx_sha256"] == float_runner.contract.onnx_sha256
    assert record["onnx_sha256"] == file_sha256(quantized / QUANTIZED_ONNX)
    assert record["calibration"]["subjects"] == [1]
    assert record["evaluation"]["subjects"] == [2, 3]
    assert record["evaluation"]["synthetic"] is True
    assert all(v > 0 for v in record["cpu_ms_per_window"].values())
    card = (quantized / "README.md").read_text()
    assert card.count("## int8 variant") == 1 and "synthetic subjects" in card
    # the first convolution stayed float, as asked, and the card says so
    assert record["keep_float"] == ["fcn.0/"]
    kept = record["kept_float"]
    assert "/model/fcn/fcn.0/fcn.0.1/Conv" in kept and all("fcn.0/" in n for n in kept)
    assert f"{len(kept)} node(s) kept float (their names contain `fcn.0/`" in card
    # the recorded agreement is what the two runners give on the held-out windows
    int8_runner = ModelRunner(quantized, providers=["CPUExecutionProvider"], precision="int8")
    assert (int8_runner.precision, float_runner.precision) == ("int8", "float32")
    c = float_runner.contract
    ws = deap_windows(held_out_files(tiny_deap, [2, 3]), c.preprocess_spec(), 2.0)
    x = {i.name: i.normalise(ws.X[i.name]) for i in c.inputs}
    p_float, p_int8 = float_runner.run(x), int8_runner.run(x)
    assert len(p_float) == record["evaluation"]["windows"]
    for k, dim in enumerate(("valence", "arousal")):
        diff = np.abs(p_float[:, k].astype(np.float64) - p_int8[:, k])
        assert diff.max() == pytest.approx(record["evaluation"][dim]["max_abs_prob_diff"], abs=1e-4)
        same = (p_float[:, k] > 0.5) == (p_int8[:, k] > 0.5)
        assert same.mean() == pytest.approx(record["evaluation"][dim]["decisions_agree"], abs=1e-4)
        decisive = np.abs(p_float[:, k] - 0.5) >= 0.1
        assert record["evaluation"][dim]["decisive_windows"] == decisive.sum()
        if decisive.any():
            kept = record["evaluation"][dim]["decisive_agree"]
            assert same[decisive].mean() == pytest.approx(kept, abs=1e-4)
    assert not np.array_equal(p_float, p_int8)  # another graph really ran
    described = int8_runner.describe()
    assert described["precision"] == "int8" and described["quantized"] == record


@pytest.mark.timeout(300)
def test_a_variant_past_the_limits_is_not_written(tiny_deap: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(ZOO / "mlstm-fcn-periph", folder)
    for name in (QUANTIZED_ONNX, QUANTIZED_RECORD):
        (folder / name).unlink(missing_ok=True)
    card = (folder / "README.md").read_text()
    with pytest.raises(ValueError, match="not written"):
        quantize_model_dir(
            folder,
            held_out_files(tiny_deap, [1]),
            held_out_files(tiny_deap, [2]),
            max_mean_diff=0.0,
        )
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name
        for p in (ZOO / "mlstm-fcn-periph").iterdir()
        if "int8" not in p.name and p.name != QUANTIZED_RECORD
    )
    assert (folder / "README.md").read_text() == card
    with pytest.raises(ValueError, match="in both"):
        quantize_model_dir(folder, held_out_files(tiny_deap, [1]), held_out_files(tiny_deap, [1]))


def test_the_runner_serves_the_variant_only_for_its_own_model(
    quantized: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    shutil.copytree(quantized, folder)
    assert ModelRunner(folder, precision="float32").precision == "float32"
    # a record made from another model.onnx (the float model retrained): the float model served
    record = json.loads((folder / QUANTIZED_RECORD).read_text())
    (folder / QUANTIZED_RECORD).write_text(json.dumps({**record, "source_onnx_sha256": "0" * 64}))
    stale = ModelRunner(folder, precision="int8")
    assert stale.precision == "float32" and "another model.onnx" in stale.precision_note
    assert stale.describe()["precision_note"] == stale.precision_note
    # a changed variant file
    (folder / QUANTIZED_RECORD).write_text(json.dumps(record))
    with (folder / QUANTIZED_ONNX).open("ab") as f:
        f.write(b"\0")
    changed = ModelRunner(folder, precision="int8")
    assert changed.precision == "float32" and "differs from its record" in changed.precision_note
    # the record without its file, and no variant at all
    (folder / QUANTIZED_ONNX).unlink()
    alone = ModelRunner(folder, precision="int8")
    assert alone.precision == "float32" and "missing" in alone.precision_note
    (folder / QUANTIZED_RECORD).unlink()
    none = ModelRunner(folder, precision="int8")
    assert none.precision == "float32" and none.precision_note == "the folder has no int8 variant"
    with pytest.raises(ValueError, match="precision 'fp16'"):
        ModelRunner(folder, precision="fp16")
