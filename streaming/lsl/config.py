"""liblsl configuration files shipped with affectstream.

liblsl reads its settings from the file named by the ``LSLAPICFG`` environment variable (then
``~/lsl_api/lsl_api.cfg``, then ``/etc/lsl_api/lsl_api.cfg``). The variable must be set before the
library is loaded, i.e. before the first ``import pylsl`` in the process.
"""

from __future__ import annotations

import os
from pathlib import Path

MACHINE_SCOPE_CFG = Path(__file__).with_name("machine_scope.cfg")
"""Discovery limited to this machine (loopback), IPv4 only, liblsl logging at errors only.

Used by the demo and the test-suite, where outlets and inlets live on one machine: nothing is
multicast onto the local network, and several test runs on a LAN cannot see each other's streams.
"""


def use_machine_scope(env: dict[str, str] | None = None) -> bool:
    """Point ``LSLAPICFG`` at :data:`MACHINE_SCOPE_CFG` unless the user already chose a config.

    Returns ``True`` if it set the variable. Pass ``env`` to change a child process' environment
    instead of this process' one.
    """
    target = os.environ if env is None else env
    if target.get("LSLAPICFG"):
        return False
    target["LSLAPICFG"] = str(MACHINE_SCOPE_CFG)
    return True
