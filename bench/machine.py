"""The machine description every benchmark writes beside its figures, and process CPU time."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def machine(*packages: str) -> dict[str, object]:
    """Host, CPU model, cores, memory, Python, load, and the versions of ``packages``."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    out: dict[str, object] = {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid → (thread name as the OS knows it, CPU seconds so far) for every thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (task / "stat").read_text()
                name = raw[raw.index("(") + 1 : raw.rindex(")")]
                fields = raw.rsplit(")", 1)[1].split()
                out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (from ``/proc``; empty if it has ended)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (a gateway and the workers it started)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total
