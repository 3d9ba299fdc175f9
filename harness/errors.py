"""Errors a user can act on.

Anything derived from HarnessError is printed as one clear message and exits with code 2
(bad input) unless it says otherwise; a traceback is shown only with --debug.
"""
from __future__ import annotations

import errno


class HarnessError(Exception):
    """A problem the user can fix: bad input, missing file, unreadable sensor."""

    exit_code = 2


class ConfigError(HarnessError):
    """A config file (matrix, device profile, budgets) is wrong at a known key path."""

    def __init__(self, file: str, key_path: str, message: str):
        self.file = file
        self.key_path = key_path
        self.message = message
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {message}")


class SensorError(HarnessError):
    """A power sensor cannot be read; the message says why and how to fix it."""


class ModelError(HarnessError):
    """A model file is missing, truncated, not the expected format or fails verification."""


class WriteError(HarnessError):
    """A file or folder could not be written: one line naming the path and the cause."""


_WRITE_CAUSES = {
    errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted", errno.ENOTDIR: "a parent path is a file, not a folder",
    errno.EISDIR: "it is a folder", errno.EEXIST: "it already exists",
    errno.ENOENT: "its folder does not exist",
}


def write_cause(e: OSError) -> str:
    """What a user reads as the reason a write failed (disk full, read-only, not a folder)."""
    return _WRITE_CAUSES.get(e.errno or 0, e.strerror or str(e))


def write_error(path: object, e: OSError, hint: str = "") -> WriteError:
    """`cannot write <path>: <cause>[; <hint>]`, for an OSError raised while writing `path`."""
    return WriteError(f"cannot write {path}: {write_cause(e)}" + (f"; {hint}" if hint else ""))
