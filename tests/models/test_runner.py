"""ONNX Runtime runner: provider choice, validation before every run, refusal of bad models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectstream.models import runner as runner_module
from affectstream.models.runner import CPU, CUDA, ModelLoadError, ModelRunner, choose_providers

pytest.importorskip("onnx")
from tiny_models import write_tiny_model


def test_cuda_is_chosen_when_available_and_cpu_otherwise() -> None:
    assert choose_providers([CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers([CPU]) == [CPU]


def test_runner_uses_the_chosen_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[str]] = {}
    real = runner_module.ort.InferenceSession

    def spy(path: str, opts: object, providers: list[str]) -> object:
        seen["providers"] = providers
        # this machine has no GPU: open the session on CPU, as onnxruntime's fallback would
        return real(path, opts, providers=[p for p in providers if p != CUDA])

    monkeypatch.setattr(runner_module.ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(runner_module.ort, "InferenceSession", spy)
    r = ModelRunner(write_tiny_model(tmp_path / "m"))
    assert seen["providers"] == [CUDA, CPU]
    assert r.provider == CPU


def test_without_cuda_the_session_runs_on_cpu(tmp_path: Path) -> None:
    r = ModelRunner(write_tiny_model(tmp_path / "m"))
    assert r.provider == CPU
    assert r.describe()["provider"] == CPU
    probs = r.run({"eda": np.zeros((4, 3, 320), np.float32)})
    assert probs.shape == (4, 2) and np.allclose(probs, 0.5)


@pytest.mark.parametrize("spin", [False, True])
def test_worker_threads_spin_only_when_asked(tmp_path: Path, spin: bool) -> None:
    # spinning ONNX Runtime workers cost ~0.45 core at 4 service sessions (affectstream bench)
    r = ModelRunner(write_tiny_model(tmp_path / "m"), spin=spin)
    opts = r.session.get_session_options()
    for entry in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert opts.get_session_config_entry(entry) == ("1" if spin else "0")


def test_predict_normalises_and_batches(tmp_path: Path) -> None:
    r = ModelRunner(write_tiny_model(tmp_path / "m"))
    windows = [{"eda": np.ones((3, 320))} for _ in range(5)]
    assert r.predict(windows).shape == (5, 2)


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({"eda": np.zeros((2, 3, 320), np.float64)}, "is float64, expected float32"),
        ({"eda": np.zeros((2, 3, 321), np.float32)}, "expected [batch, 3, 320]"),
        ({"eda": np.zeros((3, 320), np.float32)}, "expected [batch, 3, 320]"),
        ({"x": np.zeros((2, 3, 320), np.float32)}, "expected ['eda']"),
        ({"eda": np.full((2, 3, 320), np.nan, np.float32)}, "NaN/Inf"),
    ],
)
def test_every_run_is_validated(
    tmp_path: Path, batch: dict[str, np.ndarray], fragment: str
) -> None:
    r = ModelRunner(write_tiny_model(tmp_path / "m"))
    with pytest.raises(ValueError, match="tiny@3") as info:
        r.run(batch)
    assert fragment in str(info.value)


def test_corrupt_onnx_file_is_refused(tmp_path: Path) -> None:
    from affectstream.models.contract import file_sha256

    folder = write_tiny_model(tmp_path / "m")
    (folder / "model.onnx").write_bytes(b"this is not an onnx model")
    # even with a matching hash (someone re-signed garbage), ONNX Runtime's refusal is reported
    import json

    doc = json.loads((folder / "model.json").read_text())
    doc["onnx_sha256"] = file_sha256(folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load it"):
        ModelRunner(folder)


def test_changed_file_is_refused(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "m")
    with (folder / "model.onnx").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ModelLoadError, match="differs from the contract"):
        ModelRunner(folder)


def test_contract_that_does_not_match_the_onnx_inputs_is_refused(tmp_path: Path) -> None:
    import json

    from affectstream.models.contract import file_sha256

    folder = write_tiny_model(tmp_path / "m")
    doc = json.loads((folder / "model.json").read_text())
    doc["inputs"][0]["shape"] = [3, 640]  # the graph takes [batch, 3, 320]
    doc["onnx_sha256"] = file_sha256(folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelLoadError, match=r"has shape \['batch', 3, 320\], the contract says"):
        ModelRunner(folder)
