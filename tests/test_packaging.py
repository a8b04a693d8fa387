"""Packaging: the runtime set has no torch, and the serving packages import without it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
import zipfile
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path
from typing import Any

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


# the folders the pyproject maps into the `affectstream` namespace: subpackage -> folder
PACKAGES = {
    "streaming": "streaming",
    "models": "models",
    "service": "service",
    "training": "training",
    "bench": "bench",
    "client": "clients",  # clients/ holds the Python client (the package) and clients/js/
}
PACKAGE_FOLDERS = tuple(PACKAGES.values())


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_and_nothing_else() -> None:
    """The explicit package list equals the folders holding an ``__init__.py``, so a new
    subpackage cannot be left out of the wheel (or silently be a namespace package)."""
    setuptools_cfg = _pyproject()["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"] == {f"affectstream.{n}": d for n, d in PACKAGES.items()}
    found = {
        ".".join(("affectstream", name, *init.parent.relative_to(REPO / d).parts))
        for name, d in PACKAGES.items()
        for init in (REPO / d).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert sorted(setuptools_cfg["packages"]) == sorted(found)
    # every folder of Python modules is a package (none would be missed by the list above)
    for d in PACKAGE_FOLDERS:
        for py in (REPO / d).rglob("*.py"):
            assert (py.parent / "__init__.py").is_file(), f"{py.parent} has modules but no __init__"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_installs_nothing_but_affectstream(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources, install it into a fresh venv and look at
    site-packages: ``affectstream/`` and its dist-info only, with the data files serving needs."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for d in PACKAGE_FOLDERS:
        shutil.copytree(REPO / d, src / d, ignore=ignore)
    dist = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            dist,
            src,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("affectstream-*.whl")
    with zipfile.ZipFile(wheel) as z:
        top_in_wheel = {n.split("/")[0] for n in z.namelist()}
    assert {t for t in top_in_wheel if not t.endswith(".dist-info")} == {"affectstream"}

    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = Path(purelib)
    top = sorted(p.name for p in site.iterdir() if p.name != "__pycache__")
    assert [t for t in top if not t.endswith(".dist-info")] == ["affectstream"], top
    name, version = wheel.name.split("-")[:2]
    assert [t for t in top if t.endswith(".dist-info")] == [f"{name}-{version}.dist-info"]
    pkg = site / "affectstream"
    assert not (pkg / "__init__.py").exists()  # a namespace: nothing claims `affectstream` alone
    assert sorted(p.name for p in pkg.iterdir() if p.is_dir()) == sorted(PACKAGES)
    # the data files serving needs travel with the code
    assert (pkg / "service" / "static" / "dashboard.html").is_file()
    assert list((pkg / "models" / "zoo").glob("*/model.onnx"))
    # the int8 variants with their records (the runner refuses one without the other)
    shipped = sorted(p.parent.name for p in (REPO / "models" / "zoo").glob("*/model.int8.onnx"))
    assert shipped == sorted(
        p.parent.name for p in (pkg / "models" / "zoo").glob("*/model.int8.onnx")
    )
    assert all((pkg / "models" / "zoo" / m / "quantized.json").is_file() for m in shipped)
    assert list((pkg / "streaming" / "lsl").glob("*.cfg"))
    # the installed copy is what imports (a dependency-free module; isolated mode, so neither the
    # source tree nor the editable install is on the path)
    probe = subprocess.run(
        [
            python,
            "-I",
            "-c",
            "import affectstream.streaming.preprocess.spec as m; print(m.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(pkg)
