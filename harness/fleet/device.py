"""The device side of a fleet: `python -m harness fleet device-*`, run on the device by the controller.

Nothing here is a daemon: the controller starts one short command per job over its transport and
reads what it prints. `device-run` runs a given subset of a matrix's cells into a run folder on
the device (harness.run.run_matrix with a cell filter) and reports progress as JSON lines on
stdout; the run folder stays the source of truth and the controller pulls it between cells.

The controller holds the command's stdin open for as long as it wants the cell to run: end of
stdin means the controller (or the link to it) is gone, and the run stops the way Ctrl-C stops
it (finished records kept, the cell in progress abandoned), so a device that lost its
controller never measures on beside the retried cell.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from ..errors import HarnessError
from ..store import LOCK_FILE, MANIFEST_FILE

LOCK_WAIT_S = 60.0  # how long a retried cell waits for the abandoned attempt to release its lock


def emit(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One progress line: a JSON object with `event`, flushed at once (the controller reads it
    as it comes; nothing asks the device for it)."""
    out = stream or sys.stdout
    try:
        out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):
        pass  # the controller is gone; the stdin watch stops the run


def device_info(workdir: str | None) -> dict[str, Any]:
    """What the controller checks before it sends any cell: version, python, profile, disk, battery."""
    from ..devices import detect

    folder = Path(workdir or ".").expanduser()
    free = None
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
    return {"harness_version": __version__, "python": sys.version.split()[0],
            "executable": sys.executable, "hostname": socket.gethostname(),
            "detected_profile": detect().profile, "workdir": str(folder.resolve()),
            "workdir_writable": os.access(folder, os.W_OK), "free_disk_bytes": free,
            "battery": _battery(), "time_s": time.time()}


def _battery() -> dict[str, Any] | None:
    """The battery's status when there is one (a phone measured on its battery must not charge)."""
    from ..devices.state import ReadError, read_battery

    try:
        return read_battery()
    except (ReadError, OSError):
        return None


def clock_server(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Answer each line read with this machine's wall clock: the controller's remote-time reader
    for harness.clock.measure_offset (one process, so a reading costs a round trip, not a start)."""
    for _ in stdin:
        stdout.write(repr(time.time()) + "\n")
        stdout.flush()
    return 0


class JsonProgress:
    """harness.run's progress reporter, as JSON lines (same calls as harness.run.planning.Progress)."""

    def __init__(self, cells: list[Any], quiet: bool, stream: TextIO | None = None, **_: Any):
        self.stream = stream or sys.stdout
        emit("plan", self.stream, cells=[c.key.cell_id for c in cells])

    def say(self, text: str) -> None:
        emit("log", self.stream, text=text.strip())

    def start(self, cell: Any) -> None:
        emit("cell_start", self.stream, cell_id=cell.key.cell_id, label=cell.key.label(),
             t_s=time.time())

    def finish(self, cell: Any, outcome: Any) -> None:
        if outcome is None:
            emit("cell_done", self.stream, cell_id=cell.key.cell_id, status="finished_before")
            return
        emit("cell_done", self.stream, cell_id=cell.key.cell_id,
             status="ok" if outcome.ok else "failed", elapsed_s=outcome.elapsed_s,
             reason=None if outcome.ok else outcome.failure.get("reason"), t_s=time.time())


def device_run(matrix: str, run_dir: str, profile: str | None, emulate: bool, cell_ids: list[str],
               manifest_extra: dict[str, Any]) -> int:
    """Run `cell_ids` of `matrix` into `run_dir` (created, or resumed when it has a manifest)."""
    from ..run import RunOptions, run_matrix

    t0 = time.monotonic()
    folder = Path(run_dir).expanduser()
    out = sys.stdout
    _stop_when_stdin_closes()
    _wait_for_lock(folder)
    resume = (folder / MANIFEST_FILE).exists()
    options = RunOptions(matrix=None if resume else matrix, resume=str(folder) if resume else None,
                         emulate=profile if emulate and not resume else None,
                         device=profile if not emulate and not resume else None,
                         output_dir=str(folder.parent), run_id=folder.name, no_report=True,
                         argv=list(sys.argv), cell_ids=frozenset(cell_ids),
                         manifest_extra={} if resume else manifest_extra,
                         progress=lambda cells, quiet, **kw: JsonProgress(cells, quiet, out))
    emit("started", out, pid=os.getpid(), run_dir=str(folder.resolve()), resume=resume)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the results table is not progress
            code = run_matrix(options)
    except HarnessError as e:
        emit("error", out, message=str(e), exit_code=e.exit_code)
        code = e.exit_code
    emit("exit", out, exit_code=code, wall_s=time.monotonic() - t0, process_s=_process_age_s())
    return code


def _process_age_s() -> float | None:
    """Seconds since this process started (interpreter start and imports included): what the
    device itself spends on a cell, so the controller's own share can be told apart.

    From the kernel's start time of this process (clock ticks since boot, /proc/self/stat: our
    own process, not a device file, so not through harness.sysfs) against CLOCK_BOOTTIME: both
    count from boot, so the age is exact to a tick (psutil's create_time adds the whole-second
    boot time and can be off by up to a second)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None  # not Linux: the controller then reports the run's wall time only


def _stop_when_stdin_closes() -> None:
    """End of stdin: the controller is gone; stop like Ctrl-C (see the module docstring)."""
    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read1(4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # a cell that ignores the first request is stopped at once by the second
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _wait_for_lock(folder: Path) -> None:
    """A retried cell may arrive while the attempt it replaces is still stopping: wait (bounded)
    while that attempt's process lives and holds the run folder, rather than fail on its lock."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while time.monotonic() < deadline and _lock_holder_alive(folder / LOCK_FILE):
        time.sleep(0.2)


def _lock_holder_alive(lock: Path) -> bool:
    try:
        info = json.loads(lock.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no lock, an unreadable one, or its holder is gone (RunLock takes it over)
    return info.get("host") == socket.gethostname()
