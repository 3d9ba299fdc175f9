"""A run from start to end: plan, prepare artifacts, write the manifest, execute, table, report.

`run_matrix(RunOptions) -> exit code` is what `python -m harness run` calls; every step is in
its own module of this package (planning, artifacts, manifest, execution).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .. import devices
from ..energy import carbon_intensity
from ..errors import HarnessError, write_error
from ..matrix import Matrix, load_matrix, parse_matrix
from ..schema import load_yaml
from ..store import RunLock, RunWriter
from .artifacts import prepare_artifacts
from .execution import RunContext, RunResult, execute, probe_bandwidth
from .manifest import build_manifest, energy_manifest, new_run_id
from .planning import (DeviceChoice, Progress, estimate_s, load_calibration, open_for_resume,
                       print_dry_run, record_calibration, reference_cells)
from .preflight import Request, preflight

DEFAULT_MATRIX = "benchmarks/matrix.yaml"


@dataclass(frozen=True)
class RunOptions:
    """What the `run` command was asked (see harness.cli.run for each option's meaning)."""

    matrix: str | None = None
    resume: str | None = None
    dry_run: bool = False
    device: str | None = None
    emulate: str | None = None
    output_dir: str | None = None
    quiet: bool = False
    no_report: bool = False
    argv: list[str] = field(default_factory=list)
    # A fleet device's part of a run (harness.fleet.device): only these cells, into this run id,
    # with the controller's facts in the manifest and its own progress reporter.
    cell_ids: frozenset[str] | None = None
    run_id: str | None = None
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    progress: Any = None  # Callable[[list[Cell], bool], Progress]; default Progress


def run_matrix(options: RunOptions) -> int:
    """Run (or resume, or list) a matrix; 0 all cells ok, 1 some failed, 130 interrupted.

    Every check runs before the run folder exists (harness.run.preflight, the same for the dry
    run): a bad input is refused with all its problems listed and nothing written.
    """
    manifest, finished, matrix = _load(options)
    run_dir = Path(options.resume) if options.resume else None
    out = Path(options.output_dir) if options.output_dir else None
    pre = preflight(matrix, Request(options.emulate, options.device, out, run_dir), manifest, finished)
    all_cells = pre.cells
    if options.cell_ids is not None:  # a fleet device's share (its reference levels stay prepared)
        pre.cells = [c for c in pre.cells if c.key.cell_id in options.cell_ids]
        pre.todo = [c for c in pre.todo if c.key.cell_id in options.cell_ids]
    if not pre.todo and run_dir is None:  # a fleet share without cells
        print("nothing to run: none of the selected cells is in this matrix for this device")
        return 0
    if not pre.todo:
        print(f"run {run_dir} is complete: all {len(pre.cells)} cells finished, nothing is left to "
              f"run. See its report ({run_dir}/report.html) or rebuild it with "
              f"`python -m harness report {run_dir}`")
        return 0
    if options.dry_run:
        print_dry_run(matrix, pre, run_dir)
        return 0
    device, cells, todo = pre.device, pre.cells, pre.todo
    carbon = carbon_intensity(matrix.energy)
    seconds, unknown = estimate_s(todo, load_calibration(device), device)
    progress = (options.progress or Progress)(cells, options.quiet, calibrated_s=None if unknown else seconds)
    for note in pre.notes:  # e.g. cells the matrix leaves for other devices: said, not dropped
        progress.say(f"note: {note}")
    prepared = prepare_artifacts(todo + reference_cells(todo, all_cells), progress.say)
    writer, run_id = _writer(options, matrix, device, manifest)
    with _NewRunFolder(writer.dir, new=manifest is None) as folder, RunLock(writer.dir):
        if manifest is not None:
            bandwidth = manifest.get("memory_bandwidth")
        else:
            bandwidth = probe_bandwidth(todo, device, progress.say)
            _copy_matrix(matrix, writer.dir)
            writer.write_manifest(build_manifest(run_id, matrix, device, energy_manifest(matrix, carbon),
                                                 options.argv) | {"memory_bandwidth": bandwidth}
                                 | options.manifest_extra)
            folder.started = True
        progress.say(f"run {run_id}: {len(cells)} cells on {device.profile.name}"
                     f"{' (emulated)' if device.emulated else ''} -> {writer.dir}"
                     + (f"; {len(finished)} already finished" if finished else ""))
        ctx = RunContext(matrix, device, writer, run_id, carbon, prepared, bandwidth)
        result = execute(ctx, cells, finished, progress)
    warning = record_calibration(device, result.outcomes)
    if warning:
        progress.say(f"warning: {warning}")
    return _finish(result, finished, options, progress)


class _NewRunFolder:
    """A new run folder is removed again when the run stops before its manifest is written (disk
    full, read-only, interrupted): without a manifest it cannot be resumed, and leaving it behind
    would only invite a `--resume` that fails. A resumed folder is never removed."""

    def __init__(self, path: Path, new: bool):
        self.path = path
        self.started = not new

    def __enter__(self) -> "_NewRunFolder":
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not self.started:
            shutil.rmtree(self.path, ignore_errors=True)


def _copy_matrix(matrix: Matrix, run_dir: Path) -> None:
    """The matrix file beside the records, as it was when the run started."""
    target = run_dir / "matrix.yaml"
    try:
        data = matrix.file.read_bytes()
    except OSError as e:
        raise HarnessError(f"{matrix.file}: cannot read ({e.strerror})") from None
    try:
        target.write_bytes(data)
    except OSError as e:
        with contextlib.suppress(OSError):
            target.unlink(missing_ok=True)
        raise write_error(target, e, "nothing of this run can be resumed") from None


def _load(options: RunOptions) -> tuple[dict[str, Any] | None, set[str], Matrix]:
    """The matrix to run, and for a resumed run its manifest and the cells already finished."""
    profiles = devices.load_profiles()
    if options.resume:
        manifest, finished = open_for_resume(Path(options.resume))
        if options.matrix:
            _same_matrix_on_resume(Path(options.matrix), manifest, Path(options.resume))
        return manifest, finished, parse_matrix(manifest["matrix"], Path(manifest["matrix_path"]),
                                                set(profiles))
    return None, set(), load_matrix(options.matrix or DEFAULT_MATRIX, set(profiles))


def _same_matrix_on_resume(given: Path, manifest: dict[str, Any], run_dir: Path) -> None:
    """`run --resume DIR matrix.yaml` resumes DIR with the matrix it was started with; a given
    matrix that differs is refused with the differences, never silently replaced."""
    diffs = matrix_differences(manifest.get("matrix"), load_yaml(given))
    if not diffs:
        return
    shown = "\n".join(f"  {d}" for d in diffs[:MAX_DIFF_LINES])
    more = f"\n  ... and {len(diffs) - MAX_DIFF_LINES} more" if len(diffs) > MAX_DIFF_LINES else ""
    raise HarnessError(
        f"{given} differs from the matrix {run_dir} was started with ({run_dir}/matrix.yaml):\n"
        f"{shown}{more}\nA resumed run keeps its matrix, so its cells stay comparable. Resume "
        f"without naming a matrix (`python -m harness run --resume {run_dir}`), or start a new "
        f"run with {given}")


MAX_DIFF_LINES = 12


def matrix_differences(stored: Any, given: Any, path: str = "") -> list[str]:
    """`key.path: run has X, given Y` for every value that differs between two parsed matrices."""
    if isinstance(stored, dict) and isinstance(given, dict):
        out: list[str] = []
        for k in list(stored) + [k for k in given if k not in stored]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in given:
                out.append(f"{sub}: only in the run's matrix ({_short(stored[k])})")
            elif k not in stored:
                out.append(f"{sub}: only in the given matrix ({_short(given[k])})")
            else:
                out += matrix_differences(stored[k], given[k], sub)
        return out
    if isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        return [d for i, (a, b) in enumerate(zip(stored, given))
                for d in matrix_differences(a, b, f"{path}[{i}]")]
    if stored != given:
        return [f"{path or 'matrix'}: run has {_short(stored)}, given {_short(given)}"]
    return []


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3].rsplit(" ", 1)[0] + " ..."


def _writer(options: RunOptions, matrix: Matrix, device: DeviceChoice,
            manifest: dict[str, Any] | None) -> tuple[RunWriter, str]:
    """The resumed run's directory, or a new one under the output folder."""
    if manifest is not None:
        return RunWriter(Path(options.resume)), manifest["run_id"]
    out = Path(options.output_dir) if options.output_dir else matrix.output_dir
    run_id = options.run_id or new_run_id(device.profile.name + ("-emulated" if device.emulated else ""))
    return RunWriter.create(out, run_id), run_id


def _finish(result: RunResult, finished: set[str], options: RunOptions, progress: Progress) -> int:
    """The results table, the report, and the exit code."""
    print_table(result, finished, stream=sys.stdout)
    if result.interrupted:
        print(f"interrupted: finished cells are recorded; continue with\n"
              f"  python -m harness run --resume {result.run_dir}", file=sys.stderr)
        return 130
    if not options.no_report:
        write_report(result.run_dir, progress)
    if result.n_failed:
        print(f"{result.n_failed} cell(s) failed; see the table above and {result.run_dir}/records.jsonl",
              file=sys.stderr)
        return 1
    return 0


def print_table(result: RunResult, finished: set[str], stream: TextIO) -> None:
    """One row per cell (per speed workload and swept setting), as the report shows them.

    The report room is imported here, not at the top: a device may run without the [report]
    extra, and `--dry-run` or a failed preparation never reach this point.
    """
    from ..report.terminal import results_table_text

    records = [o.summary if o.ok else o.failure for _, o in result.outcomes if o is not None]
    stream.write(results_table_text(records))
    for cell, o in result.outcomes:  # the table's column is narrow: every reason here in full
        if o is not None and not o.ok and o.failure:
            print(f"FAILED {cell.key.label()}: {o.failure.get('reason')}", file=stream)
    if finished:
        print(f"({len(finished)} cell(s) finished in an earlier attempt are not shown)", file=stream)


def write_report(run_dir: Path, progress: Progress) -> None:
    """The run's HTML report; a device without the [report] extra still ends its run well,
    saying what to install (hence the import here, and its ImportError named)."""
    try:
        from ..report import write_report as _write
    except ImportError as e:
        progress.say(f"report skipped: {e} (pip install edgebench[report])")
        return
    try:
        files = _write([run_dir], run_dir / "report.html")
    except HarnessError as e:
        progress.say(f"report skipped: {e}")
        return
    progress.say("report: " + ", ".join(str(f) for f in files))
