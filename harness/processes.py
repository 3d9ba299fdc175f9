"""Is a process alive? Asked by the orphan check of a resumed run and by the level cache's
stale-build cleanup, which must agree on what "alive" means."""
from __future__ import annotations

import os

from . import sysfs


def pid_alive(pid: int) -> bool:
    """True for a running process, also one owned by another user; False for a pid that is gone
    or a zombie (dead, not yet reaped: it computes nothing and holds nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    try:
        return sysfs.read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) said it exists
