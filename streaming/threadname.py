"""The operating system's name of the calling thread (#16).

Python 3.11 names its threads for Python only: ``top -H``, ``/proc/<pid>/task/*/comm`` and the
benchmark's per-thread CPU split see every thread of the service as ``python``. The long-lived
threads (acquisition, scheduler, inference, discovery) give themselves their Python name here
too. Linux keeps at most 15 bytes of it; elsewhere, or when the C library lacks
``pthread_setname_np``, nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

__all__ = ["name_os_thread"]

_setname = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _setname = _libc.pthread_setname_np
        _setname.argtypes = [ctypes.c_ulong, ctypes.c_char_p]
        _setname.restype = ctypes.c_int
    except (OSError, AttributeError):
        _setname = None


def name_os_thread(name: str | None = None) -> bool:
    """Give the calling thread ``name`` (default its Python name) at the OS level, cut to 15
    bytes; ``True`` if the OS took it."""
    if _setname is None:
        return False
    raw = (name or threading.current_thread().name).encode("utf-8", "replace")[:15]
    return bool(_setname(threading.get_ident(), raw) == 0)
