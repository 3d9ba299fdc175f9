"""Running the external tools that some sensors read (vcgencmd, tegrastats, powermetrics).

Tools are found on PATH with shutil.which and always run with a timeout, so tests put a fake
script first on PATH and a hung tool cannot hang a benchmark.
"""
from __future__ import annotations

import atexit
import shutil
import subprocess
import threading
import time
from collections import deque
from typing import Callable, Protocol

from .base import SensorProblem


def find_tool(tool: str, fix: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise SensorProblem(f"'{tool}' is not on PATH", fix)
    return exe


def run_tool(tool: str, args: list[str], timeout_s: float, fix: str) -> subprocess.CompletedProcess:
    """Run once; the caller interprets the exit code and output (tools report errors oddly)."""
    exe = find_tool(tool, fix)
    try:
        return subprocess.run([exe, *args], capture_output=True, timeout=timeout_s, text=True,
                              errors="replace")
    except subprocess.TimeoutExpired:
        raise SensorProblem(f"'{tool} {' '.join(args)}' did not answer within {timeout_s} s",
                            fix) from None


class LineParser(Protocol):
    def feed(self, line: str) -> float | None:
        """Return a power in W when a complete reading has been seen, else None."""


class StreamingTool:
    """A tool that prints one reading per interval; a thread keeps the latest parsed value.

    The sampler then reads the latest value at its own rate, so the effective resolution is the
    tool's interval (documented per sensor). A value older than `max_age_s` is an error rather
    than a silently repeated number.
    """

    def __init__(self, argv: list[str], parser: LineParser, max_age_s: float, fix: str):
        self.argv = argv
        self.parser = parser
        self.max_age_s = max_age_s
        self.fix = fix
        self._lock = threading.Lock()
        self._latest: tuple[float, float] | None = None
        self._error: str | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._proc: subprocess.Popen | None = None

    def start(self, first_value_timeout_s: float) -> None:
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace", bufsize=1)
        atexit.register(self.close)  # a forgotten close() must not leave the tool running
        threading.Thread(target=self._pump, args=(self._proc.stdout, self._on_line),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self._proc.stderr, self._stderr.append),
                         daemon=True).start()
        deadline = time.monotonic() + first_value_timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._latest is not None or self._error is not None:
                    break
            if self._proc.poll() is not None:
                time.sleep(0.05)  # let the pumps drain what it printed before exiting
                break
            time.sleep(0.02)
        try:
            self.latest_w()
        except SensorProblem:
            self.close()
            raise

    @staticmethod
    def _pump(stream, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def _on_line(self, line: str) -> None:
        try:
            value = self.parser.feed(line)
        except ValueError as e:
            with self._lock:
                self._error = str(e)
            return
        if value is not None:
            with self._lock:
                self._latest = (time.monotonic(), value)
                self._error = None

    def latest_w(self) -> float:
        tool = self.argv[0].rsplit("/", 1)[-1]
        with self._lock:
            latest, error = self._latest, self._error
        if error is not None:
            raise SensorProblem(f"{tool}: cannot parse its output: {error}", self.fix)
        if latest is None or time.monotonic() - latest[0] > self.max_age_s:
            status = self._proc.poll() if self._proc else None
            tail = " | ".join(list(self._stderr)[-3:])
            state = f"exited with code {status}" if status is not None else "printed no reading"
            raise SensorProblem(f"{tool} {state} within {self.max_age_s:.1f} s"
                                + (f" ({tail})" if tail else ""), self.fix)
        return latest[1]

    def close(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=2)
