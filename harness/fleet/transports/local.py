"""The `local` transport: the device is the controller's own machine (a process and its files)."""
from __future__ import annotations

import collections
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

from ...errors import HarnessError
from .base import TransportError


class LocalProcess:
    def __init__(self, argv: list[str], cwd: str, env: dict[str, str]):
        Path(cwd).expanduser().mkdir(parents=True, exist_ok=True)
        try:
            self._p = subprocess.Popen(argv, cwd=Path(cwd).expanduser(), env={**os.environ, **env},
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, bufsize=1)
        except FileNotFoundError:
            raise HarnessError(f"'{argv[0]}' not found on this machine (set `python:` in the "
                               "inventory)") from None
        except OSError as e:
            raise TransportError(f"cannot start {argv[0]}: {e.strerror}") from None
        self._err: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        for line in self._p.stderr:
            self._err.append(line)

    def lines(self) -> Iterator[str]:
        for line in self._p.stdout:
            yield line.rstrip("\n")

    def send(self, text: str) -> None:
        try:
            self._p.stdin.write(text)
            self._p.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise TransportError(f"process stdin closed: {e}") from None

    def wait(self, timeout_s: float) -> int:
        try:
            return self._p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._p.kill()
            raise TransportError(f"no exit within {timeout_s:.0f} s") from None

    def stderr_tail(self) -> str:
        return "".join(self._err)

    def close(self) -> None:
        if self._p.stdin and not self._p.stdin.closed:
            try:
                self._p.stdin.close()
            except BrokenPipeError:
                pass


class LocalTransport:
    kind = "local"

    def __init__(self, spec: Any):
        self.spec = spec

    def connect(self) -> None:
        return None

    def identity(self) -> dict[str, Any]:
        return {"transport": "local"}

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> LocalProcess:
        return LocalProcess(argv, cwd, env)

    def list_files(self, folder: str) -> dict[str, int]:
        root = Path(folder).expanduser()
        if not root.is_dir():
            return {}
        return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        with open(Path(path).expanduser(), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def write_file(self, path: str, data: bytes) -> None:
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def close(self) -> None:
        return None
