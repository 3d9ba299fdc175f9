"""`python -m harness run matrix.yaml`: validate, expand, run every cell, record, report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..matrix import AUTO_DEVICE, Cell, Matrix, load_matrix, parse_matrix
from ..runner import (DeviceChoice, Progress, RunResult, build_manifest, cell_weight, execute,
                      new_run_id, open_for_resume, prepare_artifacts, probe_bandwidth)
from ..store import RunLock, RunWriter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("matrix", nargs="?", help="the matrix file (default benchmarks/matrix.yaml)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run: finished cells "
                   "are skipped, the rest (and failed ones) run again")
    p.add_argument("--dry-run", action="store_true", help="validate, print the cells and the "
                   "estimated work, write nothing")
    p.add_argument("--device", metavar="PROFILE", help="use this hardware profile instead of the "
                   "detected one (refused if this machine does not match it; see --emulate)")
    p.add_argument("--emulate", metavar="PROFILE", help="run here with PROFILE's threads and memory "
                   "limit enforced; every record is marked emulated")
    p.add_argument("--output-dir", help="where run directories go (overrides the matrix)")
    p.add_argument("--quiet", action="store_true", help="no progress lines (CI logs)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")


def run(args: argparse.Namespace) -> int:
    from .. import devices

    profiles = devices.load_profiles()
    manifest: dict[str, Any] | None = None
    finished: set[str] = set()
    if args.resume:
        run_dir = Path(args.resume)
        manifest, finished = open_for_resume(run_dir)
        matrix = parse_matrix(manifest["matrix"], Path(manifest["matrix_path"]), set(profiles))
    else:
        matrix = load_matrix(args.matrix or "benchmarks/matrix.yaml", set(profiles))
    device = choose_device(args, matrix, manifest)
    cells = select_cells(matrix, device)
    if args.dry_run:
        print_dry_run(matrix, cells, device)
        return 0
    from ..energy import carbon_intensity

    check_named_sensor(matrix)
    carbon = carbon_intensity(matrix.energy)
    progress = Progress(cells, args.quiet)
    todo = [c for c in cells if c.key.cell_id not in finished]
    artifacts = prepare_artifacts(todo + _reference_cells(todo, cells, matrix), progress.say)
    if args.resume:
        writer = RunWriter(Path(args.resume))
        run_id = manifest["run_id"]
    else:
        out = Path(args.output_dir) if args.output_dir else matrix.output_dir
        run_id = new_run_id(device.profile.name + ("-emulated" if device.emulated else ""))
        writer = RunWriter.create(out, run_id)
    with RunLock(writer.dir):
        if args.resume:
            bandwidth = manifest.get("memory_bandwidth")
        else:
            bandwidth = probe_bandwidth(todo, device, progress.say)
            (writer.dir / "matrix.yaml").write_bytes(matrix.file.read_bytes())
            writer.write_manifest(build_manifest(run_id, matrix, device, energy_manifest(matrix, carbon),
                                                 sys.argv) | {"memory_bandwidth": bandwidth})
        progress.say(f"run {run_id}: {len(cells)} cells on {device.profile.name}"
                     f"{' (emulated)' if device.emulated else ''} -> {writer.dir}"
                     + (f"; {len(finished)} already finished" if finished else ""))
        result = execute(matrix, cells, device, writer, run_id, carbon, finished, progress, artifacts,
                         bandwidth)
    print_table(result, finished, stream=sys.stdout)
    if result.interrupted:
        print(f"interrupted: finished cells are recorded; continue with\n"
              f"  python -m harness run --resume {result.run_dir}", file=sys.stderr)
        return 130
    if not args.no_report:
        write_report(result.run_dir, progress)
    if result.n_failed:
        print(f"{result.n_failed} cell(s) failed; see the table above and {result.run_dir}/records.jsonl",
              file=sys.stderr)
        return 1
    return 0


def check_named_sensor(matrix: Matrix) -> None:
    """A sensor named in the matrix must be readable now: say why not and how to fix it."""
    from ..energy import probe_sensor

    name = matrix.energy.sensor
    if name in ("auto", "scripted", "estimate"):
        return
    probe = probe_sensor(name)
    if not probe.ok:
        fix = f" Fix: {probe.fix}" if probe.fix else ""
        raise HarnessError(f"{matrix.file}: energy.sensor '{name}' cannot be read here: "
                           f"{probe.detail}.{fix} (or use sensor: auto to fall back to a labelled "
                           "estimate)")


def _reference_cells(todo: list[Cell], cells: list[Cell], matrix: Matrix) -> list[Cell]:
    """Cells whose level is a reference of a fidelity workload still to run (their artifact is needed)."""
    refs = {(c.model.name, getattr(c.workload.config, "reference_level", None)) for c in todo}
    return [c for c in cells if (c.model.name, c.level.name) in refs]


def energy_manifest(matrix: Matrix, carbon: tuple[float, str]) -> dict[str, Any]:
    e = matrix.energy
    return {"sensor_requested": e.sensor, "rate_hz": e.rate_hz, "baseline_s": e.baseline_s,
            "carbon_intensity_g_per_kwh": carbon[0], "carbon_source": carbon[1]}


def choose_device(args: argparse.Namespace, matrix: Matrix, manifest: dict[str, Any] | None) -> DeviceChoice:
    """The profile to run under: --emulate, --device, the resumed run's, or the detected one."""
    from .. import devices

    detection = devices.detect()
    det = detection.as_dict() if hasattr(detection, "as_dict") else {}
    detected = getattr(detection, "profile", None)
    if manifest is not None:
        dev = manifest["device"]
        name, emulated = dev["profile"], bool(dev["emulated"])
    elif args.emulate:
        name, emulated = args.emulate, True
    elif args.device:
        name, emulated = args.device, False
    else:
        named = [d.profile for d in matrix.devices if d.profile != AUTO_DEVICE]
        runnable = [n for n in named if devices.matches(devices.get_profile(n))]
        if any(d.profile == AUTO_DEVICE for d in matrix.devices) or not named:
            name = detected
        elif runnable:
            name = runnable[0]
        else:
            raise HarnessError(
                f"this machine matches profile '{detected}', but the matrix lists only "
                f"{', '.join(named)}; run it on that device, or try it here with --emulate {named[0]}")
        emulated = False
    if name is None:
        raise HarnessError("no hardware profile matches this machine; name one with --device, or "
                           "add a profile in devices/ (see `python -m harness devices --detect`)")
    profile = devices.get_profile(name)
    if not emulated and not devices.matches(profile):
        why = "; ".join(devices.mismatch_reasons(profile)) if hasattr(devices, "mismatch_reasons") else ""
        raise HarnessError(f"this machine does not match profile '{name}' ({why or 'detection rules fail'}); "
                           f"use --emulate {name} to run with its limits here, clearly labelled")
    host = devices.get_profile(detected) if emulated and detected else profile
    return DeviceChoice(profile=profile, host_profile=host, emulated=emulated, detected=detected,
                        detection=det)


def select_cells(matrix: Matrix, device: DeviceChoice) -> list[Cell]:
    """The cells this machine runs: those of 'auto' and of the chosen profile."""
    name = device.profile.name
    cells = [c for c in matrix.cells(device_for_auto=name) if c.key.device == name]
    if not cells:
        listed = ", ".join(d.profile for d in matrix.devices)
        raise HarnessError(f"the matrix has no cells for profile '{name}' (it lists: {listed})")
    return cells


def print_dry_run(matrix: Matrix, cells: list[Cell], device: DeviceChoice) -> None:
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


def print_table(result: RunResult, finished: set[str], stream: Any) -> None:
    """One row per cell (per speed workload and swept setting), as the report shows them."""
    from ..report.terminal import results_table_text

    records = [o.summary if o.ok else o.failure for _, o in result.outcomes if o is not None]
    stream.write(results_table_text(records))
    if finished:
        print(f"({len(finished)} cell(s) finished in an earlier attempt are not shown)", file=stream)


def write_report(run_dir: Path, progress: Progress) -> None:
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
