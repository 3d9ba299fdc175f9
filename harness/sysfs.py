"""The one place that reads files under HARNESS_SYSFS_ROOT.

Every read of /sys, /proc or /etc on a device goes through here so tests can point the
harness at a fixture tree (HARNESS_SYSFS_ROOT=/tmp/fake-jetson) instead of the real machine.
"""
from __future__ import annotations

import glob as _glob
import os
from pathlib import Path


def root() -> Path:
    """The root that absolute device paths are resolved against (default '/')."""
    return Path(os.environ.get("HARNESS_SYSFS_ROOT", "/"))


def path(p: str | os.PathLike[str]) -> Path:
    """Map an absolute device path such as /sys/class/powercap to its place under the root."""
    rel = str(p).lstrip("/")
    return root() / rel


def exists(p: str | os.PathLike[str]) -> bool:
    return path(p).exists()


def read_text(p: str | os.PathLike[str]) -> str:
    """Read a small text file; raises FileNotFoundError / PermissionError as the OS does."""
    return path(p).read_text(errors="replace")


def read_int(p: str | os.PathLike[str]) -> int:
    return int(read_text(p).strip())


def glob(pattern: str) -> list[str]:
    """Glob an absolute device pattern; returns absolute *device* paths (root stripped), sorted."""
    base = root()
    hits = _glob.glob(str(base / pattern.lstrip("/")))
    out = []
    for h in sorted(hits):
        rel = os.path.relpath(h, base)
        out.append("/" + rel.replace(os.sep, "/"))
    return out
