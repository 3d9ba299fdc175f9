"""One device as the controller sees it: its link, its checks, its cells, its pulls.

The same DeviceSession is driven by the in-process engine (a thread per device) and by the Ray
engine (an actor per device), so both schedule exactly the same work.

The controller's traffic stays out of measured windows: while a cell runs, the controller sends
nothing to the device and asks nothing of it; it only reads the progress lines the device
writes on the command's stdout when it has something to say (cell start, cell end). Clock
checks happen before the device's first cell (and after it comes back), pulls after each cell
ends and before the next one starts. Keepalives are the ssh layer's few bytes every few seconds,
answered by sshd, not by anything that measures.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..clock import ClockOffset, measure_offset, require_within
from ..errors import HarnessError
from .inventory import AUTO_PROFILE, DeviceSpec
from .pull import PullResult, pull_run
from .transports import TransportError, open_transport

MIN_FREE_DISK_BYTES = 512 * 2**20  # a run folder and a level's cache fit; below: "disk full"
DEVICE_LOST = "device_lost"


@dataclass
class CellResult:
    """How one cell ended as the controller saw it."""

    cell_id: str
    status: str  # ok | failed | device_lost
    reason: str | None = None
    elapsed_s: float | None = None  # the device's own figure for the cell
    device_wall_s: float | None = None  # the device-side run, from its start to its exit
    device_process_s: float | None = None  # the device-side process, interpreter start to exit
    controller_s: float = 0.0  # the controller's time for the cell, command start to pull end
    events: list[dict[str, Any]] = field(default_factory=list)


class DeviceSession:
    """A device's link and what the controller does on it, one thing at a time."""

    def __init__(self, spec: DeviceSpec, fleet_id: str, controller: dict[str, Any],
                 say: Callable[[str], None] = lambda s: None):
        self.spec = spec
        self.fleet_id = fleet_id
        self.controller = controller
        self.say = say
        self.transport = open_transport(spec)
        self.info: dict[str, Any] = {}
        self.clock: ClockOffset | None = None
        self.profile: str | None = None if spec.profile == AUTO_PROFILE else spec.profile

    # -- before any cell -------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """Connect and check everything a cell needs; HarnessError (one line) when it cannot run."""
        self.transport.connect()
        self.info = self._device_info()
        self._check_info(self.info)
        if self.profile is None:
            self.profile = self.info.get("detected_profile")
            if not self.profile:
                raise HarnessError(f"{self.spec.name}: profile auto, but no profile matches the "
                                   "device (see `python -m harness devices --detect` on it)")
        self.clock = self.measure_clock()
        require_within(self.clock, f"{self.spec.name}")
        return self.facts()

    def facts(self) -> dict[str, Any]:
        """Controller, transport and device identity, and the clock offset: the manifest's `fleet`."""
        return {"fleet_id": self.fleet_id, "device": self.spec.name, "profile": self.profile,
                "controller": self.controller, "transport": self.transport.identity(),
                "device_identity": {k: self.info.get(k) for k in
                                    ("hostname", "harness_version", "python", "executable",
                                     "detected_profile", "workdir")},
                "clock_offset": self.clock.to_dict() if self.clock else None}

    def _device_info(self) -> dict[str, Any]:
        argv = [self.spec.python, "-m", "harness", "fleet", "device-info", "--workdir", self.spec.workdir]
        code, out, err = self.command(argv)
        if code == 127 or (code != 0 and "No such file" in err):
            raise HarnessError(f"{self.spec.name}: python '{self.spec.python}' not found on the device "
                               "(set `python:` in the inventory)")
        if code != 0:
            last = (err.strip().splitlines() or ["no output"])[-1]
            if "No module named harness" in err:
                last = "edgebench is not installed there (run `fleet setup --install`)"
            raise HarnessError(f"{self.spec.name}: device-info failed (exit {code}): {last}")
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise HarnessError(f"{self.spec.name}: device-info printed no JSON: {out[-200:]!r}") from None

    def _check_info(self, info: dict[str, Any]) -> None:
        name = self.spec.name
        if info.get("harness_version") != __version__:
            raise HarnessError(f"{name}: edgebench {info.get('harness_version')} on the device, "
                               f"{__version__} here; run `python -m harness fleet setup --install` "
                               "to install this controller's version there")
        if not info.get("workdir_writable"):
            raise HarnessError(f"{name}: working folder {info.get('workdir')} is not writable")
        free = info.get("free_disk_bytes")
        if free is not None and free < MIN_FREE_DISK_BYTES:
            raise HarnessError(f"{name}: disk full: {free / 2**20:.0f} MiB free in {info.get('workdir')}"
                               f" (at least {MIN_FREE_DISK_BYTES // 2**20} MiB needed)")

    def measure_clock(self) -> ClockOffset:
        """The device's clock against ours, through one process answering each line with its time."""
        argv = [self.spec.python, "-m", "harness", "fleet", "device-clock"]
        proc = self.transport.start(argv, self.spec.workdir, self.spec.env)
        lines = proc.lines()

        def read_remote() -> float:
            proc.send("t\n")
            return float(next(lines))
        try:
            return measure_offset(read_remote, samples=8)
        except StopIteration:
            raise TransportError("the clock reader ended early: " + proc.stderr_tail()[-200:]) from None
        finally:
            proc.close()

    def command(self, argv: list[str]) -> tuple[int, str, str]:
        """A short command to its end: (exit code, stdout, stderr)."""
        proc = self.transport.start(argv, self.spec.workdir, self.spec.env)
        proc.close()
        out = "\n".join(proc.lines())
        return proc.wait(self.spec.command_timeout_s), out, proc.stderr_tail()

    # -- cells ------------------------------------------------------------------------------
    @property
    def run_rel(self) -> str:
        return f"runs/{self.fleet_id}-{self.spec.name}"

    def upload_matrix(self, matrix_bytes: bytes) -> str:
        rel = f"fleet/{self.fleet_id}/matrix.yaml"
        self.transport.write_file(self.spec.remote(rel), matrix_bytes)
        return rel

    def run_cell(self, cell_id: str, matrix_rel: str, timeout_s: float,
                 on_event: Callable[[dict[str, Any]], None] = lambda e: None) -> CellResult:
        """Run one cell on the device and wait for its end; TransportError: the device was lost."""
        argv = [self.spec.python, "-m", "harness", "fleet", "device-run", "--matrix", matrix_rel,
                "--run-dir", self.run_rel, "--profile", str(self.profile), "--cells", cell_id,
                "--manifest-extra", json.dumps({"fleet": self.facts()})]
        if self.spec.emulate:
            argv.append("--emulate")
        result = CellResult(cell_id, "failed")
        proc = self.transport.start(argv, self.spec.workdir, self.spec.env)
        try:
            for line in proc.lines():  # blocks until the device writes: no polling
                event = _parse(line)
                if event is None:
                    continue
                result.events.append(event)
                self._take(event, result)
                on_event(event)
            code = proc.wait(timeout_s)
        finally:
            proc.close()
        if not any(e.get("event") == "exit" for e in result.events):
            raise TransportError(f"the device-side run ended without its last line (exit {code}): "
                                 + proc.stderr_tail()[-300:])
        if result.status == "failed" and result.reason is None:
            result.reason = f"device-run exit {code}: " + (proc.stderr_tail().strip().splitlines()
                                                           or ["no message"])[-1]
        return result

    @staticmethod
    def _take(event: dict[str, Any], result: CellResult) -> None:
        kind = event.get("event")
        if kind == "cell_done":
            result.status = "ok" if event.get("status") in ("ok", "finished_before") else "failed"
            result.reason = event.get("reason")
            result.elapsed_s = event.get("elapsed_s")
        elif kind == "error":
            result.reason = event.get("message")
        elif kind == "exit":
            result.device_wall_s = event.get("wall_s")
            result.device_process_s = event.get("process_s")
            if event.get("exit_code") == 0 and not any(e.get("event") == "cell_done" for e in result.events):
                result.status = "ok"  # the device's run had finished this cell before: nothing to do

    def run_and_pull(self, cell_id: str, matrix_rel: str, timeout_s: float,
                     local_root: Path) -> CellResult:
        """A cell and the pull after it; a lost link is a `device_lost` result, not an exception
        (the same for a thread and a Ray actor)."""
        t0 = time.monotonic()
        try:
            result = self.run_cell(cell_id, matrix_rel, timeout_s, self._show)
        except TransportError as e:
            result = CellResult(cell_id, DEVICE_LOST, reason=f"{DEVICE_LOST}: {e}")
        except HarnessError as e:
            result = CellResult(cell_id, "failed", reason=str(e))
        if result.status != DEVICE_LOST:
            try:
                self.pull(local_root)
            except TransportError as e:  # the cell ended; its records wait on the device
                self.say(f"[{self.spec.name}] pull after {cell_id} failed ({e}); pulled again later")
        result.controller_s = time.monotonic() - t0
        return result

    def _show(self, event: dict[str, Any]) -> None:
        if event.get("event") == "cell_start":
            self.say(f"[{self.spec.name}] running {event.get('label')}")

    def pull(self, local_root: Path) -> PullResult:
        """Bring the controller's copy of this device's run folder up to date (between cells)."""
        return pull_run(self.transport, self.spec.remote(self.run_rel), local_root / self.run_rel.split("/", 1)[1])

    def reconnect(self, deadline: float) -> bool:
        """After a loss: try again (bounded) until the device answers and passes its checks."""
        delay = 0.5
        while time.monotonic() < deadline:
            self.transport.close()
            try:
                self.prepare()
                return True
            except (TransportError, HarnessError, OSError) as e:
                self.say(f"[{self.spec.name}] still unreachable: {str(e)[:120]}")
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 10.0)
        return False

    def close(self) -> None:
        self.transport.close()


def _parse(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
