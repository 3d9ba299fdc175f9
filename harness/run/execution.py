"""Executing a run's cells in order: settings, fit checks, power modes, cool-down, stop signals.

Launchers (harness.launcher) are separate from what is measured (harness.cell); this module only
orders the work and keeps the run directory consistent: a cell that cannot start gets a failure
record, one that starts is run in its own process.
"""
from __future__ import annotations

import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import devices
from ..backends.base import RuntimeSettings
from ..cell import CellPayload
from ..devices.bandwidth import host_bandwidth
from ..devices.threads import ThreadChoice, choose_threads
from ..errors import HarnessError
from ..gguf import gguf_info, kv_shape
from ..launcher import CellOutcome, StopRequested, find_orphans, run_cell_process
from ..matrix import SPEED_KINDS, Cell, Matrix
from ..models import cache_dir
from ..records import CELL_FAILED, make_record
from ..store import RunWriter
from .artifacts import PreparedLevel
from .manifest import host_info
from .planning import DeviceChoice, Progress


class StopFlag:
    """First Ctrl-C/SIGTERM: stop after recording what is finished. Second: stop at once."""

    def __init__(self, say: Callable[[str], None]):
        self.requested = False
        self._say = say
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            print("\nsecond interrupt: stopping now (records written so far are intact)",
                  file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        self._say("\nstopping: the cell in progress is abandoned and recorded as interrupted; "
                  "press Ctrl-C again to stop at once")

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class RunResult:
    run_dir: Path
    outcomes: list[tuple[Cell, CellOutcome | None]]
    interrupted: bool

    @property
    def n_failed(self) -> int:
        return sum(1 for _, o in self.outcomes if o is not None and not o.ok)


@dataclass(frozen=True)
class RunContext:
    """What every cell of one run shares."""

    matrix: Matrix
    device: DeviceChoice
    writer: RunWriter
    run_id: str
    carbon: tuple[float, str]  # (g CO2 per kWh, where the figure comes from)
    prepared: dict[tuple[str, str], PreparedLevel]
    bandwidth: dict[str, Any] | None = None


def settings_for(cell: Cell, device: DeviceChoice) -> tuple[RuntimeSettings, ThreadChoice]:
    """The cell's runtime settings: profile defaults, then the matrix; threads decided here."""
    profile = device.profile
    base = dict(getattr(profile, "runtime_defaults", {}) or {})
    profile_threads = base.pop("n_threads", None)
    base.update({k: v for k, v in cell.runtime_overrides.items() if k != "providers"})
    extra = {"providers": cell.runtime_overrides["providers"]} if "providers" in cell.runtime_overrides else {}
    threads = choose_threads(cell.runtime_overrides.get("n_threads"), profile_threads,
                             getattr(profile, "cores", None), device.emulated)
    known = {k: base[k] for k in ("n_ctx", "n_batch", "use_mmap", "use_mlock", "seed") if k in base}
    if cell.workload.context_tokens is not None:  # llama_bench: sized to its test, as llama-bench
        known["n_ctx"] = cell.workload.context_tokens
    settings = RuntimeSettings(**known, n_threads=threads.n_threads,
                               n_threads_batch=threads.n_threads_batch,
                               need_logits=cell.workload.needs_logits,
                               reuse_prompt_prefix=cell.workload.reuses_prompt_prefix, extra=extra)
    return settings, threads


def probe_bandwidth(cells: list[Cell], device: DeviceChoice,
                    say: Callable[[str], None]) -> dict[str, Any] | None:
    """The host's memory read bandwidth for the roofline (cached per host; a few seconds once).

    Measured single-threaded and with the largest thread count of the run's speed cells, before
    any cell runs so nothing else competes for memory. None when no cell decodes in llama.cpp.
    """
    speed = [c for c in cells if c.workload.kind in SPEED_KINDS and c.runtime == "llama_cpp"]
    if not speed:
        return None
    threads = max(settings_for(c, device)[1].n_threads for c in speed)
    say(f"memory read bandwidth ({threads} thread(s); measured once per host, then cached) ...")
    bw = host_bandwidth(cache_dir(), threads, host=host_info())
    sheet = getattr(device.profile, "memory_bandwidth", None)
    bw["datasheet_bytes_per_s"] = getattr(sheet, "datasheet_bytes_per_s", None)
    bw["datasheet_source"] = getattr(sheet, "source", None)
    return bw


def cell_bandwidth(bandwidth: dict[str, Any] | None, n_threads: int) -> float | None:
    """The bandwidth a cell's decode can use: the single-thread figure for one thread, else the
    multi-thread one (measured with the run's largest thread count)."""
    if not bandwidth:
        return None
    key = "single_thread_bytes_per_s" if n_threads <= 1 else "multi_thread_bytes_per_s"
    return bandwidth.get(key)


def execute(ctx: RunContext, cells: list[Cell], finished: set[str], progress: Progress) -> RunResult:
    """Run every cell not yet finished, in order, until done or stopped."""
    refuse_orphans(ctx.writer.dir)
    outcomes: list[tuple[Cell, CellOutcome | None]] = []
    interrupted = False
    with StopFlag(progress.say) as stop:
        for cell in cells:
            if cell.key.cell_id in finished:
                progress.finish(cell, None)
                continue
            if stop.requested:
                interrupted = True
                break
            progress.start(cell)
            outcome = run_one(ctx, cell, stop, progress)
            if outcome is None:
                interrupted = True
                break
            outcomes.append((cell, outcome))
            progress.finish(cell, outcome)
    return RunResult(ctx.writer.dir, outcomes, interrupted)


def refuse_orphans(run_dir: Path) -> None:
    """A resumed run measures nothing while a cell process of its earlier attempt still runs."""
    orphans = find_orphans(run_dir)
    if orphans:
        listed = ", ".join(f"pid {o['pid']} (cell {o['cell_id']})" for o in orphans)
        raise HarnessError(
            f"{run_dir}: a cell process of this run from before is still running: {listed}; it "
            f"would perturb every measurement. Stop it (kill {' '.join(str(o['pid']) for o in orphans)}) "
            "and resume again")


def run_one(ctx: RunContext, cell: Cell, stop: StopFlag, progress: Progress) -> CellOutcome | None:
    """One cell: a failure record if it cannot start, else its own process. None: stopped."""
    device = ctx.device
    prepared = ctx.prepared[(cell.model.name, cell.level.name)]
    settings, threads = settings_for(cell, device)
    blocked = _fit_problem(prepared, settings, device)
    ref, ref_problem = _reference(ctx, cell)
    blocked = blocked or ref_problem
    if blocked is None and cell.key.power_mode:
        blocked = _power_mode_problem(device, cell.key.power_mode)
    cool_warning = _cool_down(cell, device, progress) if blocked is None else None
    if blocked is not None:
        return _failed(ctx, cell, settings, threads, *blocked)
    fields = dict(prepared.fields, cooldown_warning=cool_warning) if cool_warning else prepared.fields
    payload = CellPayload(cell=cell, run_id=ctx.run_id, attempt=secrets.token_hex(4),
                          artifact=prepared.path, reference_artifact=ref.path if ref else None,
                          reference_runtime=ref.runtime if ref else None,
                          model_fields=fields, profile=device.profile,
                          host_profile=device.host_profile, emulated=device.emulated, settings=settings,
                          threads=threads,
                          roofline={"memory_bandwidth_bytes_per_s": cell_bandwidth(ctx.bandwidth, threads.n_threads)},
                          carbon_g_per_kwh=ctx.carbon[0], carbon_source=ctx.carbon[1])
    limit = devices.memory_limit_bytes(device.profile) if device.emulated else None
    try:
        return run_cell_process(payload, ctx.writer, cell.workload.timeout_s, limit,
                                should_stop=lambda: stop.requested, log=progress.say)
    except StopRequested:
        return None


def _fit_problem(prepared: PreparedLevel, settings: RuntimeSettings,
                 device: DeviceChoice) -> tuple[str, str] | None:
    """An emulated device refuses a GGUF level whose weights and KV cache exceed its memory."""
    if not device.emulated or prepared.runtime != "llama_cpp":
        return None
    why = devices.check_fit(prepared.path.stat().st_size, settings.n_ctx, device.profile,
                            kv_bytes_per_token=_kv_bytes_per_token(prepared.path))
    return (f"does not fit on {device.profile.name}: {why}", "does_not_fit") if why else None


def _kv_bytes_per_token(path: Path) -> int | None:
    """KV-cache bytes per context token from the GGUF metadata (llama.cpp's default f16 cache)."""
    shape = kv_shape(gguf_info(path))
    return devices.kv_bytes_per_token(*shape) if shape else None


def _reference(ctx: RunContext, cell: Cell) -> tuple[PreparedLevel | None, tuple[str, str] | None]:
    """The prepared reference level of a fidelity cell (None for other cells), or why it is missing."""
    ref_level = getattr(cell.workload.config, "reference_level", None)
    if not ref_level:
        return None, None
    ref = ctx.prepared.get((cell.model.name, ref_level))
    if ref is None:
        return None, (f"reference level {ref_level} was not prepared", "error")
    return ref, None


def _power_mode_problem(device: DeviceChoice, mode: str) -> tuple[str, str] | None:
    try:
        devices.set_power_mode(device.profile, mode)
    except HarnessError as e:
        return f"cannot set power mode {mode}: {e}", "error"
    return None


def _cool_down(cell: Cell, device: DeviceChoice, progress: Progress) -> str | None:
    """Wait until the host is below the matrix's temperature; a warning if it never got there."""
    if not cell.cooldown:
        return None
    limit_c, limit_s = cell.cooldown["max_temp_c"], cell.cooldown["timeout_s"]
    waited = devices.wait_cool(device.host_profile, limit_c, limit_s)
    if waited >= limit_s:
        warning = f"still above {limit_c} C after waiting {waited:.0f} s for cool-down"
        progress.say("    " + warning)
        return warning
    if waited:
        progress.say(f"    waited {waited:.0f} s to cool below {limit_c} C")
    return None


def _failed(ctx: RunContext, cell: Cell, settings: RuntimeSettings, threads: ThreadChoice,
            reason: str, kind: str) -> CellOutcome:
    """The failure record of a cell that could not start (nothing was measured)."""
    rec = make_record(CELL_FAILED, ctx.run_id, cell.key, attempt=secrets.token_hex(4),
                      status="failed", reason=reason, failure_kind=kind, exit_code=None,
                      stderr_tail="", n_repetitions_done=0, emulated=ctx.device.emulated,
                      workload_kind=cell.workload.kind, elapsed_s=0.0,
                      **threads.record_fields(), n_batch=settings.n_batch, n_ctx=settings.n_ctx)
    ctx.writer.append(rec)
    return CellOutcome(False, None, rec)
