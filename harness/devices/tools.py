"""Running device tools (getprop, vcgencmd, nvpmodel, sysctl, termux-battery-status).

Found with shutil.which on PATH and run with a timeout so that tests can put a fake script first on
PATH and a wedged tool cannot hang a cell.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 5.0


class ToolError(Exception):
    """A tool is missing, timed out or failed; the message says which and why."""

    def __init__(self, message: str, missing: bool = False, permission: bool = False):
        super().__init__(message)
        self.missing = missing
        self.permission = permission


@dataclass(frozen=True)
class ToolResult:
    stdout: str
    stderr: str
    returncode: int


def run_tool(name: str, args: list[str], timeout_s: float = DEFAULT_TIMEOUT_S,
             check: bool = True) -> ToolResult:
    exe = shutil.which(name)
    if exe is None:
        raise ToolError(f"'{name}' not found on PATH", missing=True)
    try:
        cp = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout_s,
                            errors="replace")
    except subprocess.TimeoutExpired:
        raise ToolError(f"'{name} {' '.join(args)}' did not finish within {timeout_s:g} s") from None
    except PermissionError:
        raise ToolError(f"'{exe}' is not executable by this user", permission=True) from None
    res = ToolResult(cp.stdout, cp.stderr, cp.returncode)
    if check and cp.returncode != 0:
        tail = (cp.stderr or cp.stdout).strip().splitlines()[-1:] or [""]
        denied = any(w in (cp.stderr + cp.stdout).lower()
                     for w in ("permission denied", "not permitted", "must be root", "root privilege"))
        raise ToolError(f"'{name} {' '.join(args)}' exited with {cp.returncode}: {tail[0]}",
                        permission=denied)
    return res
