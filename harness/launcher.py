"""Runs each cell in its own child process with a timeout; records what arrives.

A crash, an out-of-memory kill or a hang in one cell becomes that cell's `cell_failed` record with
a reason a person can act on, and the run goes on to the next cell.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import queue
import signal
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

from .cell import CellPayload, cell_main, settings_fields
from . import metrics as registry
from . import sysfs
from .records import CELL_MEASUREMENTS, CellFailed, CellSummary
from .stats import is_unstable, summarize
from .processes import pid_alive
from .store import RunWriter

@dataclass
class CellOutcome:
    ok: bool
    summary: dict[str, Any] | None
    failure: dict[str, Any] | None
    repetitions: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0


class StopRequested(Exception):
    """The user asked the run to stop (Ctrl-C / SIGTERM)."""


def run_cell_process(payload: CellPayload, writer: RunWriter, timeout_s: float,
                     memory_limit_bytes: int | None = None,
                     should_stop: Callable[[], bool] = lambda: False,
                     log: Callable[[str], None] = lambda s: None) -> CellOutcome:
    """Run one cell in a spawned child, stream its records to the run directory."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=cell_main, args=(payload, child_conn), daemon=True)
    t0 = time.monotonic()
    proc.start()
    child_conn.close()
    inbox = _Inbox(parent_conn)
    running = _RunningMark(writer.dir, payload.cell.key.cell_id, proc.pid)
    reps: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    constants: dict[str, Any] = {}  # the cell's constants, from the child's "cell" messages
    failure: tuple[str, str, str] | None = None  # (reason, kind, detail)
    done = False
    watcher = _RssWatcher(proc.pid) if memory_limit_bytes else None
    cell_id = payload.cell.key.cell_id
    while True:
        if should_stop():
            failure = ("interrupted by the user; rerun with --resume", "interrupted", "")
            break
        if time.monotonic() - t0 > timeout_s:
            failure = (f"timed out after {timeout_s:.0f} s (timeout_s in the matrix)", "timeout", "")
            break
        if watcher is not None:
            rss = watcher.rss()
            if rss is not None and rss > memory_limit_bytes:
                failure = (f"does not fit: the cell process reached {rss / 2**20:.0f} MiB, above the "
                           f"emulated profile's limit of {memory_limit_bytes / 2**20:.0f} MiB",
                           "does_not_fit", "")
                break
        msg = inbox.get(0.1)
        if msg is _Inbox.CLOSED:
            break  # the child is gone (or closed its end); its exit code says why
        if msg is not None:
            kind = msg[0]
            if kind == "record":
                rec = msg[1]
                writer.append(rec)
                reps.append(rec)
            elif kind == "trace":
                writer.append_trace(cell_id, msg[1], attempt=payload.attempt)
            elif kind == "cell":
                constants.update(msg[1])
            elif kind == "samples":
                writer.append_samples(cell_id, msg[1])
            elif kind == "outputs":
                writer.append_outputs(cell_id, msg[1])
            elif kind == "state":
                state = msg[1]
            elif kind == "log":
                log(msg[1])
            elif kind == "error":
                failure = (msg[1], msg[2], msg[3])
            elif kind == "done":
                done = True
                break
        elif not proc.is_alive() and inbox.idle_since_s() > 2.0:
            break  # dead, and nothing more arrived
    _reap(proc)
    inbox.close()
    running.clear()
    elapsed = time.monotonic() - t0
    if done and failure is None:
        summary = summarize_cell(payload, reps, state, constants)
        writer.append(summary)
        return CellOutcome(True, summary, None, reps, elapsed)
    if failure is None:
        failure = _exit_reason(proc.exitcode)
    known = {"workload_kind": payload.cell.workload.kind, "emulated": payload.emulated,
             **settings_fields(payload), **constants}
    rec = CellFailed(payload.run_id, payload.cell.key, payload.attempt, reason=failure[0],
                     failure_kind=failure[1], exit_code=proc.exitcode,
                     stderr_tail=failure[2][-4000:], n_repetitions_done=len(reps),
                     elapsed_s=elapsed, cell=known).to_dict()
    writer.append(rec)
    if failure[1] == "interrupted":
        raise StopRequested()
    return CellOutcome(False, None, rec, reps, elapsed)


class _Inbox:
    """The child's messages, received by a thread so the parent's clock never waits in a pipe.

    `Connection.recv()` blocks until a whole message has arrived: a child stopped (SIGSTOP, a
    debugger, swapped out) midway through an 84 KB samples message held the parent in recv() long
    past the cell's timeout. Here only the reader thread waits; the parent polls the queue with a
    short timeout, so the timeout, the RSS limit and Ctrl-C are checked at least every 0.1 s and the
    child is killed, which ends the reader's recv() with EOFError.
    """

    CLOSED = object()

    def __init__(self, conn: Any):
        self._conn = conn
        self._queue: queue.Queue[Any] = queue.Queue()
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="cell-inbox", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while True:
                self._queue.put(self._conn.recv())
        except (EOFError, OSError):
            pass
        except Exception:  # noqa: BLE001 - a message that cannot be unpickled ends the stream too
            pass
        finally:
            self._queue.put(self.CLOSED)

    def get(self, timeout_s: float) -> Any:
        """The next message, CLOSED once the stream ended, None when nothing came in timeout_s."""
        try:
            msg = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        self._last = time.monotonic()
        return msg

    def idle_since_s(self) -> float:
        return time.monotonic() - self._last

    def close(self) -> None:
        """After the child is reaped its end is closed, so the reader ends promptly."""
        self._thread.join(5)
        if not self._thread.is_alive():
            self._conn.close()


RUNNING_DIR = ".running"  # <run>/.running/<cell_id>.pid while a cell's process may be alive


class _RunningMark:
    """A pid file per running cell, so a resumed run can find an orphan of this run still alive.

    Written when the child starts, removed once it is reaped; one left behind means the parent
    died (SIGKILL, power loss). `find_orphans` checks whether that process still lives.
    """

    def __init__(self, run_dir: Path, cell_id: str, pid: int):
        self.path = run_dir / RUNNING_DIR / f"{cell_id}.pid"
        try:
            self.path.parent.mkdir(exist_ok=True)
            self.path.write_text(json.dumps({"pid": pid, "start_ticks": _start_ticks(pid),
                                             "cell_id": cell_id}) + "\n")
        except OSError:
            self.path = None  # a full disk is reported by the next record write, not here

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), so a
    reused pid is not mistaken for the orphan; None where /proc is not there."""
    try:
        return int(sysfs.read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def find_orphans(run_dir: Path) -> list[dict[str, Any]]:
    """Cell processes of this run still alive after their parent died (stale marks are removed).

    Linux children also die with their parent (PR_SET_PDEATHSIG in harness.cell); this catches
    the rest (another OS, a child stopped before it could set it) before a resumed run measures.
    """
    found = []
    for mark in sorted((run_dir / RUNNING_DIR).glob("*.pid")):
        try:
            info = json.loads(mark.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            mark.unlink(missing_ok=True)
            continue
        if pid_alive(pid) and (info.get("start_ticks") is None
                            or _start_ticks(pid) == info.get("start_ticks")):
            found.append({"pid": pid, "cell_id": str(info.get("cell_id")), "mark": str(mark)})
        else:
            mark.unlink(missing_ok=True)
    return found


def _reap(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(3)
    if proc.is_alive():
        proc.kill()
    proc.join(5)


def _exit_reason(code: int | None) -> tuple[str, str, str]:
    if code is not None and code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return (f"the cell process was killed ({name}); on Linux this is usually the "
                    "out-of-memory killer: check `dmesg`, or use a smaller model/level", "oom", "")
        return (f"the cell process died from signal {name} (a crash in the runtime)", "crash", "")
    return (f"the cell process exited with code {code} without finishing", "crash", "")


class _RssWatcher:
    def __init__(self, pid: int):
        import psutil

        try:
            self._proc = psutil.Process(pid)
        except psutil.Error:
            self._proc = None

    def rss(self) -> int | None:
        import psutil

        if self._proc is None:
            return None
        try:
            return int(self._proc.memory_info().rss)
        except psutil.Error:
            return None


def summarize_cell(payload: CellPayload, reps: list[dict[str, Any]], state: dict[str, Any],
                   constants: dict[str, Any] | None = None) -> dict[str, Any]:
    """Statistics of the registry's summarised metrics over the repetitions; flags unstable ones.

    Only harness.metrics' summarised metrics (plus quality rates' per-item interval fields, which
    the report reads as their means) are summarised: identities and settings never are. Figures
    measured once per cell (load, idle baseline) get statistics over that one value.
    """
    constants = dict(constants or {})
    per_rep = [n for n in _SUMMARISED + _INTERVALS if any(_is_number(r.get(n)) for r in reps)]
    metrics = {n: summarize([r.get(n) for r in reps]) for n in per_rep}
    for n in CELL_MEASUREMENTS:
        if n in registry.METRICS and registry.get(n).summarised and _is_number(constants.get(n)):
            metrics.setdefault(n, summarize([constants[n]]))
    metrics = dict(sorted(metrics.items()))
    unstable = [n for n, s in metrics.items() if n in registry.METRICS
                and registry.get(n).unstable_check and is_unstable(s)]
    warnings = sorted({w for r in reps for w in r.get("warnings", [])})
    if unstable:
        warnings.append("unstable (stdev > 10% of mean): " + ", ".join(unstable))
    if not all(r.get("energy_valid", True) for r in reps):
        warnings.append("energy invalid in some repetitions: " + "; ".join(
            sorted({str(r.get("energy_invalid_reason")) for r in reps if not r.get("energy_valid", True)})))
    cell = {"workload_kind": payload.cell.workload.kind, "emulated": payload.emulated,
            **settings_fields(payload), **constants}
    keys = ("throttled", "throttled_reason", "state_before", "state_after", "power_mode_actual")
    return CellSummary(payload.run_id, payload.cell.key, payload.attempt, n_repetitions=len(reps),
                       warmup=payload.cell.workload.warmup, metrics=metrics,
                       unstable=tuple(unstable), warnings=tuple(warnings), cell=cell,
                       state={k: state.get(k) for k in keys}).to_dict()


_SUMMARISED = registry.summarised()
_INTERVALS = registry.interval_fields(registry.of_kind("quality"))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
