"""Planning a run: which profile it runs as, which cells, which extra artifacts, how long it takes.

Everything here happens before a run directory exists, so a bad choice (no matching profile, no
cells for it, an unreadable named sensor) stops the run with nothing written.
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .. import devices
from ..errors import HarnessError
from ..launcher import CellOutcome
from ..matrix import AUTO_DEVICE, Cell, Matrix
from ..models import cache_dir
from ..store import MANIFEST_FILE, load_run

if TYPE_CHECKING:
    from .preflight import Preflight


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
        _same_device_on_resume(name, emulated, emulate, device)
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


def _same_device_on_resume(name: str, emulated: bool, emulate: str | None, device: str | None) -> None:
    """A resumed run keeps its device: a different --device/--emulate is refused, not ignored."""
    asked = (emulate, True) if emulate else (device, False) if device else None
    if asked is not None and asked != (name, emulated):
        was = f"--emulate {name}" if emulated else f"on {name}"
        raise HarnessError(f"this run was measured {was}; resuming it "
                           f"{'--emulate' if asked[1] else '--device'} {asked[0]} would mix devices "
                           "in one run. Resume without --device/--emulate, or start a new run")


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
    cells = list({c.key.cell_id: c for c in matrix.cells(device_for_auto=name)
                  if c.key.device == name}.values())  # `auto` and the profile named: one cell each
    if not cells:
        listed = ", ".join(d.profile for d in matrix.devices)
        raise HarnessError(f"the matrix has no cells for profile '{name}' (it lists: {listed})")
    return cells


def reference_cells(todo: list[Cell], cells: list[Cell]) -> list[Cell]:
    """Cells whose level is a reference of a fidelity workload still to run (their artifact is needed)."""
    refs = {(c.model.name, getattr(c.workload.config, "reference_level", None)) for c in todo}
    return [c for c in cells if (c.model.name, c.level.name) in refs]


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
    """Cells done/total, the current cell, and an ETA: from this host's earlier runs until the
    first cell is done, then from the work done so far."""

    def __init__(self, cells: list[Cell], quiet: bool, stream: Any = sys.stderr,
                 calibrated_s: float | None = None):
        self.total_weight = sum(cell_weight(c) for c in cells) or 1.0
        self.n_total = len(cells)
        self.done_weight = 0.0
        self.n_done = 0
        self.quiet = quiet
        self.stream = stream
        self.t0 = time.monotonic()
        self.busy_s = 0.0
        self.calibrated_s = calibrated_s

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
            if self.calibrated_s is not None:
                return f"ETA {_fmt_s(self.calibrated_s)} (from earlier runs on this host)"
            return "ETA: after the first cell"
        rate = self.busy_s / self.done_weight
        left = rate * (self.total_weight - self.done_weight)
        return f"ETA {_fmt_s(left)}"


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cell_weight(cell: Cell) -> float:
    """A cell's work in token units (tokens generated or scored, prompt tokens a tenth); the
    calibration turns it into seconds per (workload kind, model, level) on this host."""
    cfg = cell.workload.config
    n = cell.workload.repetitions + cell.workload.warmup
    if cell.workload.kind == "generation":
        return n * (cfg.max_tokens + len(cfg.prompt) / 40)
    if cell.workload.kind == "llama_bench":  # a prompt token costs about a tenth of a decoded one
        return n * (cfg.n_tokens if cfg.mode == "tg" else cfg.n_tokens / 10)
    samples = getattr(cfg, "samples", 20) or 20
    per_item = getattr(cfg, "max_tokens", 16) or 16
    return n * samples * (per_item + 20)


# ------------------------------------------------------------------------------------------------
# Calibration: seconds per token unit on this host, learnt from its finished cells
#
# Kept in the cache folder (HARNESS_CACHE_DIR/speed-calibration/<host>.json), per profile the host ran
# as (emulation pins cores) and per (workload kind, model, level), with the workload kind alone
# as the fallback. Each run's figures count as much as all earlier ones together (older sums are
# halved), so a changed machine is followed within a few runs.

CALIBRATION_DIR = "speed-calibration"  # not the energy room's sensor calibrations
CALIBRATION_FORMAT = 2  # 1 (before 2026-11-30): "kind|model|level" string keys, now ignored

# (profile, emulated, workload kind, model, level); model and level None: the kind's fallback
RateKey = tuple[str, bool, str, str | None, str | None]
_ENTRY_FIELDS = ("profile", "emulated", "kind", "model", "level")


def _calibration_file() -> Path:
    host = re.sub(r"[^A-Za-z0-9._-]", "_", platform.node() or "host")
    return cache_dir() / CALIBRATION_DIR / f"{host}.json"


def _device_label(device: DeviceChoice) -> str:
    return device.profile.name + (" emulated" if device.emulated else "")


def _cell_keys(device: DeviceChoice, cell: Cell) -> tuple[RateKey, RateKey]:
    base = (device.profile.name, bool(device.emulated), cell.workload.kind)
    return (*base, cell.model.name, cell.level.name), (*base, None, None)


def _read_rates() -> dict[RateKey, list[float]]:
    """Every entry of this host's file that is well formed; {} when none or unreadable."""
    try:
        data = json.loads(_calibration_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT \
            or not isinstance(data.get("entries"), list):
        return {}
    rates: dict[RateKey, list[float]] = {}
    for e in data["entries"]:
        if not isinstance(e, dict):
            continue
        key = tuple(e.get(f) for f in _ENTRY_FIELDS)
        pair = [e.get("seconds"), e.get("units")]
        if isinstance(key[0], str) and isinstance(key[1], bool) and isinstance(key[2], str) \
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0
                        for x in pair):
            rates[key] = [float(pair[0]), float(pair[1])]
    return rates


def load_calibration(device: DeviceChoice) -> dict[RateKey, list[float]]:
    """{key: [seconds, token units]} of this host as this profile."""
    want = (device.profile.name, bool(device.emulated))
    return {k: v for k, v in _read_rates().items() if k[:2] == want}


def estimate_s(cells: Iterable[Cell], rates: dict[RateKey, list[float]],
               device: DeviceChoice) -> tuple[float, int]:
    """(seconds for the calibrated cells, number of cells without a calibration)."""
    total, unknown = 0.0, 0
    for c in cells:
        rate = next((rates[k] for k in _cell_keys(device, c) if k in rates), None)
        if rate is None:
            unknown += 1
        else:
            total += cell_weight(c) * rate[0] / rate[1]
    return total, unknown


def record_calibration(device: DeviceChoice, done: Iterable[tuple[Cell, CellOutcome | None]]) -> str | None:
    """Add this run's finished cells to the host's calibration; a warning if it cannot be saved
    (the calibration only informs estimates: it never fails a run)."""
    sums: dict[RateKey, list[float]] = {}
    for cell, outcome in done:
        if outcome is None or not outcome.ok or outcome.elapsed_s <= 0:
            continue
        for k in _cell_keys(device, cell):
            s = sums.setdefault(k, [0.0, 0.0])
            s[0] += outcome.elapsed_s
            s[1] += cell_weight(cell)
    if not sums:
        return None
    rates = _read_rates()
    for k, (sec, units) in sums.items():
        prev = rates.get(k, [0.0, 0.0])
        rates[k] = [prev[0] / 2 + sec, prev[1] / 2 + units]
    entries = [{**dict(zip(_ENTRY_FIELDS, k)), "seconds": v[0], "units": v[1]}
               for k, v in sorted(rates.items(), key=lambda kv: [str(x) for x in kv[0]])]
    path = _calibration_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".calibration-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"format": CALIBRATION_FORMAT, "entries": entries}, f, indent=1)
        os.replace(tmp, path)
    except OSError as e:
        return f"the speed calibration of this host was not saved ({path}: {e.strerror or e})"
    return None


def estimate_text(cells: list[Cell], device: DeviceChoice, n_builds: int) -> str:
    """The time the cells should take here, in minutes, or why it is unknown."""
    seconds, unknown = estimate_s(cells, load_calibration(device), device)
    builds = f"; not counting {n_builds} level build(s)" if n_builds else ""
    if unknown == len(cells):
        return ("estimated time: unknown (no earlier run on this host as "
                f"{_device_label(device)} to calibrate it; the ETA appears after the first cell{builds})")
    part = f" for {len(cells) - unknown} of {len(cells)} cells ({unknown} have no calibration yet)" \
        if unknown else ""
    return (f"estimated time: about {max(1, round(seconds / 60))} min{part} (calibrated by earlier "
            f"runs on this host as {_device_label(device)}{builds})")


# ------------------------------------------------------------------------------------------------
# The dry run


def print_dry_run(matrix: Matrix, pre: "Preflight", run_dir: Path | None = None) -> None:
    """What the run would do after every check passed: the cells left, the levels, the disk
    space and the estimated time; nothing is run or written."""
    device, cells = pre.device, pre.todo
    done = len(pre.cells) - len(cells)
    where = f"run {run_dir}: {done} of {len(pre.cells)} cells finished, " if run_dir else ""
    print(f"matrix {matrix.file}: {where}{len(cells)} cells {'left ' if run_dir else ''}"
          f"on {device.profile.name}{' (emulated)' if device.emulated else ''}")
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
    for note in pre.notes:
        print(f"note: {note}")
    builds = [lv for lv in pre.levels if lv.action == "build"]
    print("levels: " + (", ".join(f"{lv.model} {lv.level} {_LEVEL_ACTIONS[lv.action]}"
                                  + (f" (~{lv.estimated_bytes / 2**20:.0f} MiB)" if lv.estimated_bytes else "")
                                  for lv in pre.levels) or "none needed"))
    for line in pre.disk:
        print(f"disk: {line}")
    print(f"estimated work: {gens} generations ({tokens} generated tokens), {items} quality items")
    print(estimate_text(cells, device, len(builds)))
    print("checks passed: model files, levels, energy sensor, workload data, context sizes, "
          "devices, disk space")
    print("nothing was run; no run folder was written (dry run)")


_LEVEL_ACTIONS = {"source": "= the source file", "file": "given file", "cached": "cached",
                  "build": "to build", "remote": "served by its url (offloaded)"}
