"""The shipped models: loadable with ONNX Runtime only (no torch), and honestly labelled."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"
MODELS = sorted(p.parent for p in ZOO.glob("*/model.onnx"))


def test_at_least_the_two_default_models_ship() -> None:
    assert {"cnn-lstm", "rtcan1d"} <= {p.name for p in MODELS}


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_loads_and_runs_without_torch(model_dir: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from affectstream.models.runner import ModelRunner

        r = ModelRunner({str(model_dir)!r})
        feats = [{{i.name: np.zeros(i.shape) for i in r.contract.inputs}} for _ in range(3)]
        probs = r.predict(feats)
        assert probs.shape == (3, 2) and ((probs >= 0) & (probs <= 1)).all()
        assert "torch" not in sys.modules
        print(r.name, r.provider)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "CPUExecutionProvider" in done.stdout or "CUDAExecutionProvider" in done.stdout


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_labelled_as_trained_on_synthetic_data(model_dir: Path) -> None:
    contract = json.loads((model_dir / "model.json").read_text())
    trained = contract["trained_on"]
    assert trained["dataset"]["synthetic"] is True
    assert trained["protocol"] == "subject"
    assert "Demo model trained on synthetic data" in (model_dir / "README.md").read_text()
    report = json.loads((model_dir / "training" / "report.json").read_text())
    assert report["dataset"]["synthetic"] is True and not report["leaky"]
    for fold in report["folds"]:
        assert not set(fold["test_subjects"]) & set(fold["train_subjects"])
    # the leaky split's figure is quoted beside it, labelled as such
    assert trained["comparison"]["leaky"] is True
