"""Packaging: the runtime set has no torch, and the serving packages import without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    try:
        reqs = requires("affectstream")
    except PackageNotFoundError:
        pytest.skip("affectstream is not installed (run through `make test`, which installs it)")
    assert reqs is not None
    return reqs


def test_torch_only_in_the_train_extra() -> None:
    reqs = _requirements()
    runtime = [r for r in reqs if "extra ==" not in r]
    assert runtime, "no runtime requirement found"
    assert not [r for r in runtime if r.lower().startswith(("torch", "onnx>", "onnx="))], runtime
    train = [r.split(";")[0].strip() for r in reqs if 'extra == "train"' in r]
    assert "torch==2.13.0" in train
    assert any(r.startswith("onnx") and not r.startswith("onnxruntime") for r in train)
    gpu = [r.split(";")[0].strip() for r in reqs if 'extra == "gpu"' in r]
    assert any(r.startswith("onnxruntime-gpu") for r in gpu)


def test_serving_packages_import_without_torch() -> None:
    """Every module of service/, streaming/ and models/ (except the PyTorch architectures and
    export code, which only training uses) imports with torch made unimportable."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        # the PyTorch side of models/ (architectures, export) is for training only
        TORCH_SIDE = ("affectstream.models.architectures", "affectstream.models.export")
        names = []
        for pkg in ("affectstream.service", "affectstream.streaming", "affectstream.models"):
            mod = importlib.import_module(pkg)
            names.append(pkg)
            for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
                if info.name.endswith("__main__") or info.name.startswith(TORCH_SIDE):
                    continue
                importlib.import_module(info.name)
                names.append(info.name)
        assert "torch" not in sys.modules
        print(len(names))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 8  # the packages and their modules were really walked


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pip_resolves_the_runtime_set_without_torch(tmp_path: Path) -> None:
    """What `pip install .` would install on a fresh machine (resolved, not installed)."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"no package index reachable: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"numpy", "pylsl", "onnxruntime", "fastapi", "cvxopt"} <= names
    assert not {n for n in names if n == "torch" or n.startswith("nvidia-")}, sorted(names)
