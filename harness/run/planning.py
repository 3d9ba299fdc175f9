"""Planning a run: which profile it runs as, which cells, which extra artifacts, how long it takes.

Everything here happens before a run directory exists, so a bad choice (no matching profile, no
cells for it, an unreadable named sensor) stops the run with nothing written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import devices
from ..energy import probe_sensor
from ..errors import HarnessError
from ..launcher import CellOutcome
from ..matrix import AUTO_DEVICE, Cell, Matrix
from ..store import MANIFEST_FILE, load_run


@dataclass(frozen=True)
class DeviceChoice:
    profile: Any  # harness.devices.Profile the cells run as
    host_profile: Any  # the profile this machine matches (sensors, state), = profile unless emulated
    emulated: bool
    detected: str | None
    detection: dict[str, Any]


def choose_device(matrix: Matrix, manifest: dict[str, Any] | None, emulate: str | None = None,
                  device: str | None = None) -> DeviceChoice:
    """The profile to run under: the resumed run's, --emulate, --device, or the detected one."""
    detection = devices.detect()
    detected = detection.profile
    if manifest is not None:
        name, emulated = manifest["device"]["profile"], bool(manifest["device"]["emulated"])
    elif emulate:
        name, emulated = emulate, True
    elif device:
        name, emulated = device, False
    else:
        name, emulated = _matrix_device(matrix, detected), False
    if name is None:
        raise HarnessError("no hardware profile matches this machine; name one with --device, or "
                           "add a profile in devices/ (see `python -m harness devices --detect`)")
    profile = devices.get_profile(name)
    if not emulated and not devices.matches(profile):
        why = "; ".join(devices.mismatch_reasons(profile))
        raise HarnessError(f"this machine does not match profile '{name}' ({why or 'detection rules fail'}); "
                           f"use --emulate {name} to run with its limits here, clearly labelled")
    host = devices.get_profile(detected) if emulated and detected else profile
    return DeviceChoice(profile=profile, host_profile=host, emulated=emulated, detected=detected,
                        detection=detection.as_dict())


def _matrix_device(matrix: Matrix, detected: str | None) -> str | None:
    """The detected profile when the matrix says `auto` (or names none), else the first profile
    it names that this machine matches."""
    named = [d.profile for d in matrix.devices if d.profile != AUTO_DEVICE]
    if any(d.profile == AUTO_DEVICE for d in matrix.devices) or not named:
        return detected
    runnable = [n for n in named if devices.matches(devices.get_profile(n))]
    if runnable:
        return runnable[0]
    raise HarnessError(
        f"this machine matches profile '{detected}', but the matrix lists only "
        f"{', '.join(named)}; run it on that device, or try it here with --emulate {named[0]}")


def select_cells(matrix: Matrix, device: DeviceChoice) -> list[Cell]:
    """The cells this machine runs: those of 'auto' and of the chosen profile."""
    name = device.profile.name
    cells = [c for c in matrix.cells(device_for_auto=name) if c.key.device == name]
    if not cells:
        listed = ", ".join(d.profile for d in matrix.devices)
        raise HarnessError(f"the matrix has no cells for profile '{name}' (it lists: {listed})")
    return cells


def reference_cells(todo: list[Cell], cells: list[Cell]) -> list[Cell]:
    """Cells whose level is a reference of a fidelity workload still to run (their artifact is needed)."""
    refs = {(c.model.name, getattr(c.workload.config, "reference_level", None)) for c in todo}
    return [c for c in cells if (c.model.name, c.level.name) in refs]


def check_named_sensor(matrix: Matrix) -> None:
    """A sensor named in the matrix must be readable now: say why not and how to fix it."""
    name = matrix.energy.sensor
    if name in ("auto", "scripted", "estimate"):
        return
    probe = probe_sensor(name)
    if not probe.ok:
        fix = f" Fix: {probe.fix}" if probe.fix else ""
        raise HarnessError(f"{matrix.file}: energy.sensor '{name}' cannot be read here: "
                           f"{probe.detail}.{fix} (or use sensor: auto to fall back to a labelled "
                           "estimate)")


def open_for_resume(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The manifest and the cells that finished (a summary record exists) in a run to resume."""
    if not (run_dir / MANIFEST_FILE).exists():
        raise HarnessError(f"{run_dir}: not a run directory (no {MANIFEST_FILE}); nothing to resume")
    run = load_run(run_dir)
    for w in run.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return run.manifest, run.finished_cell_ids()


# ------------------------------------------------------------------------------------------------
# Progress and the estimate of work


class Progress:
    """Cells done/total, the current cell, and an ETA from the work done so far."""

    def __init__(self, cells: list[Cell], quiet: bool, stream: Any = sys.stderr):
        self.total_weight = sum(cell_weight(c) for c in cells) or 1.0
        self.n_total = len(cells)
        self.done_weight = 0.0
        self.n_done = 0
        self.quiet = quiet
        self.stream = stream
        self.t0 = time.monotonic()
        self.busy_s = 0.0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def start(self, cell: Cell) -> None:
        self.say(f"[{self.n_done + 1}/{self.n_total}] {cell.key.label()}  {self.eta()}")

    def finish(self, cell: Cell, outcome: CellOutcome | None) -> None:
        """Count a cell as done; outcome None: finished in an earlier attempt (resume)."""
        self.n_done += 1
        self.done_weight += cell_weight(cell)
        if outcome is not None:
            self.busy_s += outcome.elapsed_s
            status = "ok" if outcome.ok else f"FAILED: {outcome.failure['reason']}"
            self.say(f"    {status} ({outcome.elapsed_s:.1f} s)")

    def eta(self) -> str:
        if self.done_weight <= 0 or self.busy_s <= 0:
            return "ETA: after the first cell"
        rate = self.busy_s / self.done_weight
        left = rate * (self.total_weight - self.done_weight)
        return f"ETA {_fmt_s(left)}"


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cell_weight(cell: Cell) -> float:
    """A rough cost in 'token units' used for the ETA and the dry run's estimate of work."""
    cfg = cell.workload.config
    n = cell.workload.repetitions + cell.workload.warmup
    if cell.workload.kind == "generation":
        return n * (cfg.max_tokens + len(cfg.prompt) / 40)
    if cell.workload.kind == "llama_bench":  # a prompt token costs about a tenth of a decoded one
        return n * (cfg.n_tokens if cfg.mode == "tg" else cfg.n_tokens / 10)
    samples = getattr(cfg, "samples", 20)
    per_item = getattr(cfg, "max_tokens", 16) or 16
    return n * samples * (per_item + 20)


def print_dry_run(matrix: Matrix, cells: list[Cell], device: DeviceChoice) -> None:
    """The cells and the estimated work, without writing anything."""
    print(f"matrix {matrix.file}: {len(cells)} cells on {device.profile.name}"
          f"{' (emulated)' if device.emulated else ''}")
    gens = tokens = items = 0
    for i, c in enumerate(cells, 1):
        wl = c.workload
        n = wl.repetitions + wl.warmup
        if wl.kind == "generation":
            gens += n
            tokens += n * wl.config.max_tokens
            what = f"{wl.repetitions} rep + {wl.warmup} warm-up x {wl.config.max_tokens} tokens"
        elif wl.kind == "llama_bench":
            what = f"{wl.repetitions} rep + {wl.warmup} warm-up of llama-bench {wl.config.test}"
        else:
            k = getattr(wl.config, "samples", 0)
            items += n * k
            what = f"{wl.repetitions} rep x {k} items"
        print(f"  {i:3d}. {c.key.label():70s} {what}")
    levels = sorted({(c.model.name, c.level.name) for c in cells})
    print(f"estimated work: {gens} generations ({tokens} generated tokens), {items} quality items, "
          f"{len(levels)} model artifacts to prepare (quantized/pruned levels are cached after the "
          f"first build); relative cost units {sum(cell_weight(c) for c in cells):.0f}")
    print("nothing was written (dry run)")
