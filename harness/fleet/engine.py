"""`fleet run`: check every device, split the matrix's cells by profile, run them, merge.

The in-process engine drives each device from a thread of this process; `--engine ray` drives the
same DeviceSessions as Ray actors (harness.fleet.ray_engine). Both use `device_loop`: one cell
at a time per device (nothing else runs on a device while it measures), devices in parallel,
a cell lost with its device retried when the device is back, finished cells never rerun.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import devices
from ..errors import HarnessError
from ..matrix import Matrix, load_matrix
from .inventory import Inventory, load_inventory
from .plan import CellQueue, FleetFolder, Journal, cells_for_profile, controller_identity, unclaimed_profiles
from .session import DEVICE_LOST, CellResult, DeviceSession
from .transports import TransportError

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class FleetOptions:
    inventory: str | None = None
    matrix: str | None = None
    resume: str | None = None
    output_dir: str = "results"
    engine: str = "local"
    quiet: bool = False
    no_report: bool = False


class Console:
    """Live lines per device on stderr (one lock, so lines of two devices never interleave)."""

    def __init__(self, quiet: bool, stream: Any = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                print(text, file=self.stream, flush=True)


class Worker(Protocol):
    """What the engine needs of a device: a thread's DeviceSession, or a Ray actor's proxy."""

    name: str

    def prepare(self, matrix_bytes: bytes, resume: bool) -> tuple[dict[str, Any] | None, str | None]:
        """Connect, check, measure the clock, upload the matrix: (facts, None) or (None, why not)."""

    def run_cell(self, cell_id: str, timeout_s: float) -> CellResult: ...

    def recover(self, deadline: float) -> bool: ...

    def close(self) -> None: ...


@dataclass
class FleetContext:
    folder: FleetFolder
    inventory: Inventory
    matrix: Matrix
    queue: CellQueue
    journal: Journal
    say: Callable[[str], None]
    results: list[tuple[str, CellResult]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # device -> cells it ended

    timeouts: dict[str, float] = field(default_factory=dict)  # cell id -> its workload's timeout

    def timeout_for(self, cell_id: str) -> float:
        """How long the controller waits for a cell: its own timeout (the device enforces it)
        plus room to start, prepare the level and write; a silent link is caught by keepalives."""
        return self.timeouts.get(cell_id, 900.0) + 600.0


def device_loop(worker: Worker, profile: str, ctx: FleetContext) -> None:
    """Take this profile's cells one at a time until none are left; retry a lost cell."""
    attempts: dict[str, int] = {}
    spent: list[float] = []
    while True:
        cell = ctx.queue.take(profile)
        if cell is None:
            return
        cid = cell.key.cell_id
        attempts[cid] = attempts.get(cid, 0) + 1
        ctx.say(f"[{worker.name}] cell {cid} ({cell.key.label()}), attempt {attempts[cid]}; "
                f"{ctx.queue.left(profile)} more for {profile}; {_eta(spent, ctx.queue.left(profile) + 1)}")
        ctx.journal.write("cell_start", device=worker.name, cell_id=cid, attempt=attempts[cid])
        result = worker.run_cell(cid, ctx.timeout_for(cid))
        spent.append(result.controller_s)
        lost = result.status == DEVICE_LOST
        final = not lost or attempts[cid] > ctx.inventory.retries
        ctx.journal.write("cell_end", device=worker.name, cell_id=cid, attempt=attempts[cid],
                          status=result.status, reason=result.reason, final=final,
                          elapsed_s=result.elapsed_s, device_wall_s=result.device_wall_s,
                          device_process_s=result.device_process_s,
                          controller_s=result.controller_s)
        ctx.say(f"[{worker.name}] {result.status}" + (f": {result.reason}" if result.reason else "")
                + (f" ({result.elapsed_s:.1f} s)" if result.elapsed_s else ""))
        if final:
            ctx.results.append((worker.name, result))
        if not lost:
            continue
        if not final:
            ctx.queue.put_back(profile, cell)
        if not _wait_for_return(worker, ctx):
            _give_up(worker, profile, ctx)
            return


def _wait_for_return(worker: Worker, ctx: FleetContext) -> bool:
    ctx.say(f"[{worker.name}] lost; waiting up to {ctx.inventory.reconnect_timeout_s:.0f} s for it to return")
    ctx.journal.write("device_lost", device=worker.name)
    back = worker.recover(time.monotonic() + ctx.inventory.reconnect_timeout_s)
    ctx.journal.write("device_back" if back else "device_gone", device=worker.name)
    ctx.say(f"[{worker.name}] " + ("back" if back else "did not return"))
    return back


def _give_up(worker: Worker, profile: str, ctx: FleetContext) -> None:
    """A device that did not return: its profile's cells stay for its peers, if it has any; the
    last device of a profile fails what is left with `device_lost`."""
    if ctx.queue.retire(profile, worker.name):
        return  # another device of this profile takes the rest
    while (cell := ctx.queue.take(profile)) is not None:
        result = CellResult(cell.key.cell_id, DEVICE_LOST, reason=f"{DEVICE_LOST}: {worker.name} did not return")
        ctx.journal.write("cell_end", device=worker.name, cell_id=cell.key.cell_id, attempt=0,
                          status=DEVICE_LOST, reason=result.reason, final=True)
        ctx.results.append((worker.name, result))


def _eta(spent: list[float], left: int) -> str:
    if not spent:
        return "ETA: after the first cell"
    s = int(sum(spent) / len(spent) * left)
    return f"ETA {s // 60}m{s % 60:02d}s"


class ThreadWorker:
    """A DeviceSession driven from a thread of this process (the in-process engine)."""

    def __init__(self, session: DeviceSession, local_root: Path):
        self.session = session
        self.name = session.spec.name
        self.matrix_rel = ""
        self.local_root = local_root

    def prepare(self, matrix_bytes: bytes, resume: bool) -> tuple[dict[str, Any] | None, str | None]:
        return prepare_session(self.session, matrix_bytes, resume, self.local_root, self)

    def run_cell(self, cell_id: str, timeout_s: float) -> CellResult:
        return self.session.run_and_pull(cell_id, self.matrix_rel, timeout_s, self.local_root)

    def recover(self, deadline: float) -> bool:
        return self.session.reconnect(deadline)

    def close(self) -> None:
        self.session.close()


def prepare_session(session: DeviceSession, matrix_bytes: bytes, resume: bool, local_root: Path,
                    holder: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Everything before a device's first cell; a problem is one line, never an exception."""
    try:
        facts = session.prepare()
        holder.matrix_rel = session.upload_matrix(matrix_bytes)
        if resume:  # the device's folder is the truth: what it finished counts as finished
            session.pull(local_root)
        facts["battery"] = getattr(session.transport, "battery", None) or session.info.get("battery")
        return facts, None
    except (HarnessError, TransportError, OSError) as e:
        session.close()
        return None, str(e)


# ------------------------------------------------------------------------------------------------
# The command


def run_fleet(options: FleetOptions) -> int:
    """Run a matrix across an inventory; 0 all cells ok, 1 some failed, 2 nothing could start."""
    if options.engine not in ENGINES:
        raise HarnessError(f"--engine {options.engine}: choose one of {', '.join(ENGINES)}")
    folder, inventory, matrix = _open(options)
    say = Console(options.quiet)
    journal = Journal(folder)
    controller = controller_identity(options.engine)
    if options.engine == "ray":
        from .ray_engine import ray_workers
        workers = ray_workers(inventory, folder, matrix)
    else:
        workers = [ThreadWorker(DeviceSession(spec, folder.fleet_id, controller, say), folder.runs)
                   for spec in inventory.devices]
    ready = _prepare(workers, inventory, matrix, folder, journal, say, options.resume is not None)
    ctx = FleetContext(folder, inventory, matrix, CellQueue(), journal, say)
    _plan(ready, ctx)
    journal.write("run_start", engine=options.engine, devices=sorted(ready))
    try:
        _run_all(ready, ctx)
    finally:
        for w, _ in ready.values():
            w.close()
    return _finish(ctx, options)


def _open(options: FleetOptions) -> tuple[FleetFolder, Inventory, Matrix]:
    profiles = set(devices.load_profiles())
    if options.resume:
        folder = FleetFolder.open(Path(options.resume))
        inv_file, matrix_file = folder.dir / "fleet.yaml", folder.dir / "matrix.yaml"
    else:
        if not options.inventory or not options.matrix:
            raise HarnessError("fleet run needs an inventory and a matrix: "
                               "python -m harness fleet run fleet.yaml matrix.yaml")
        inv_file, matrix_file = Path(options.inventory), Path(options.matrix)
    inventory = load_inventory(inv_file, profiles)
    matrix = load_matrix(matrix_file, profiles)
    if not options.resume:
        folder = FleetFolder.create(Path(options.output_dir), inv_file, matrix_file, options.engine)
    return folder, inventory, matrix


def _prepare(workers: list[Any], inventory: Inventory, matrix: Matrix, folder: FleetFolder,
             journal: Journal, say: Callable[[str], None], resume: bool) -> dict[str, tuple[Any, str]]:
    """Every device checked in parallel; one line each; exit 2 when none can start."""
    matrix_bytes = (folder.dir / "matrix.yaml").read_bytes()
    specs = {d.name: d for d in inventory.devices}
    with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
        answers = list(pool.map(lambda w: w.prepare(matrix_bytes, resume), workers))
    ready: dict[str, tuple[Any, str]] = {}
    for w, (facts, problem) in zip(workers, answers):
        if problem is not None:
            problem = problem.removeprefix(f"{w.name}: ")
            say(f"[{w.name}] cannot start: {problem}")
            journal.write("device_refused", device=w.name, reason=problem)
            continue
        off = facts["clock_offset"]
        say(f"[{w.name}] ready: profile {facts['profile']}{' (emulated)' if specs[w.name].emulate else ''}, "
            f"{facts['transport']['transport']}, edgebench {facts['device_identity']['harness_version']}, "
            f"clock offset {off['offset_s'] * 1000:+.1f} ms (+-{off['uncertainty_s'] * 1000:.1f} ms)")
        warning = _battery_warning(w.name, facts, matrix)
        if warning:
            say(warning)
        journal.write("device_ready", device=w.name, facts=facts, warning=warning)
        ready[w.name] = (w, facts["profile"])
    if not ready:
        raise HarnessError(f"no device of {inventory.file} can start (one line each above); "
                           "nothing was run")
    return ready


def _battery_warning(name: str, facts: dict[str, Any], matrix: Matrix) -> str | None:
    """A battery-powered device that charges while its battery sensor measures reads the charger."""
    battery = facts.get("battery") or {}
    sensors = [matrix.energy.sensor]
    if matrix.energy.sensor == "auto":  # any of the profile's sensors may be the one that measures
        sensors = list(devices.get_profile(facts["profile"]).sensors)
    if "android_battery" in sensors and (battery.get("charging") or battery.get("on_external_power")):
        return (f"[{name}] warning: reports charging ({battery.get('status') or 'external power'}) "
                "while its battery sensor measures: readings include the charger; unplug it "
                "(adb over Wi-Fi) before measuring")
    return None


def _plan(ready: dict[str, tuple[Any, str]], ctx: FleetContext) -> None:
    """Queue each served profile's cells once, less those already finished (resume)."""
    finished: set[str] = set()
    for name in ready:
        finished |= ctx.folder.finished(name)
    n_todo = 0
    for name, (_, profile) in ready.items():
        cells = cells_for_profile(ctx.matrix, profile)
        ctx.timeouts.update({c.key.cell_id: c.workload.timeout_s for c in cells})
        todo = [c for c in cells if c.key.cell_id not in finished]
        if profile not in ctx.queue.total:
            n_todo += len(todo)
            ctx.say(f"profile {profile}: {len(todo)} cell(s) to run"
                    + (f", {len(cells) - len(todo)} already finished" if len(todo) < len(cells) else ""))
        ctx.queue.add(profile, todo, name)
    for profile in unclaimed_profiles(ctx.matrix, {p for _, p in ready.values()}):
        ctx.say(f"warning: no ready device has profile {profile}: its cells are not run")
    if not n_todo and not finished:
        raise HarnessError(f"{ctx.matrix.file}: no cell of the matrix is for a ready device's profile "
                           f"({', '.join(sorted({p for _, p in ready.values()}))})")


def _run_all(ready: dict[str, tuple[Any, str]], ctx: FleetContext) -> None:
    threads = [threading.Thread(target=device_loop, args=(w, profile, ctx), name=f"fleet-{name}",
                                daemon=True) for name, (w, profile) in ready.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _finish(ctx: FleetContext, options: FleetOptions) -> int:
    """The merged report over every device's pulled run, a table of cells, and the exit code."""
    runs = sorted(d for d in ctx.folder.runs.glob("*") if (d / "manifest.json").exists())         if ctx.folder.runs.exists() else []
    failed = [(dev, r) for dev, r in ctx.results if r.status != "ok"]
    for dev, r in ctx.results:
        print(f"{dev:16s} {r.cell_id:40s} {r.status}" + (f"  {r.reason}" if r.reason else ""))
    ctx.journal.write("run_end", n_cells=len(ctx.results), n_failed=len(failed))
    if runs and not options.no_report:
        _report(runs, ctx.folder.dir / "report.html", ctx.say)
    ctx.say(f"fleet {ctx.folder.fleet_id}: {len(ctx.results)} cell(s) ended, {len(failed)} failed; "
            f"runs in {ctx.folder.runs}")
    return 1 if failed else 0


def _report(runs: list[Path], out: Path, say: Callable[[str], None]) -> None:
    """One report over all devices' runs (the existing merge); skipped with a line without [report]."""
    try:
        from ..report import write_report
    except ImportError as e:
        say(f"report skipped: {e} (pip install edgebench[report])")
        return
    try:
        files = write_report(runs, out, title="edgebench fleet report")
    except HarnessError as e:
        say(f"report skipped: {e}")
        return
    say("report: " + ", ".join(str(f) for f in files))
