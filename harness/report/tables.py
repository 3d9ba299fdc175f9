"""Runs -> one results table, the best configuration per device, Pareto fronts.

Reading (`load_results`) is the only part that touches files, and it reads runs only through
`harness.store`. Everything after it is a pure function of the `ResultsTable`, so the page, the
Markdown and the CSV are reproducible from the same table and testable without a device.

A *cell* row is one finished cell (one workload). A *configuration* is what a user deploys:
model x level x runtime on a device in a power mode, run with given runtime settings (the
threads, batch threads, batch size and context actually used, and the settings the matrix swept).
Its rows join the speed/energy figures of each speed workload (generation, llama_bench) with the
quality figures of the quality workloads of the same configuration and settings, because the two
are measured by different workloads. One row per speed workload and setting, like llama-bench's
one row per test and thread count: a sweep or a second generation workload never collapses.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..energy.uncertainty import INTERVAL_SUFFIXES, interval_fields
from ..errors import HarnessError
from ..results import pandas_module, summary_metrics
from ..runfiles import CELL_FILE_MAX_BYTES, RunFileError, cell_file, read_text_in_run, resolve_in_run
from ..records import expand_repetition
from ..store import INTERRUPTED_KIND, Run, iter_run_dirs, load_run, read_outputs
from ..workloads import SPEED_KINDS  # the one registry: kinds whose figures are speed and energy
from .analysis import add_token_agreement
from .metrics import SPECS

QUALITY_FLOOR_ALPHA = 0.05  # significance level of the default quality floor and the verdicts
CRITERION_HELP = ("Change it with the report's options (python -m harness report): --objective; "
                  "bounds such as --min-accuracy or --max-hallucination-rate; --quality-floor none "
                  "to drop the quality floor; --reference-level LEVEL for the level the floor and "
                  "the paired tests compare with (default: the model file used as is, else the "
                  "highest-precision level neither pruned nor requantized). See docs/report.md.")
MAX_TRACE_POINTS = 600  # per cell, after min/max decimation: keeps 150 cells' SVG small
EXCERPT_ITEMS = 5  # hallucinated answers inlined per quality cell
HOST_CHECKED = ("cpu_model", "ram_bytes", "machine", "cores_logical")

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Constraints


@dataclass(frozen=True)
class Constraints:
    """What "best" means: minimise (or maximise) `objective` among configurations meeting all bounds."""

    max_hallucination_rate: float | None = None
    min_accuracy: float | None = None
    max_peak_rss_bytes: float | None = None
    min_decode_tokens_per_s: float | None = None
    max_ttft_s: float | None = None
    objective: str = "energy_per_decode_token_j"
    # "reference": a configuration whose accuracy is significantly below the reference level's
    # on a labelled quality workload (paired McNemar test, p < QUALITY_FLOOR_ALPHA) is not
    # "best"; "none": no quality floor. The default keeps the cheapest level from being crowned
    # when it answers far worse (issue 15: Q2_K at 10% accuracy was "best").
    quality_floor: str = "reference"

    OBJECTIVES = ("energy_per_decode_token_j", "tokens_per_j", "decode_tokens_per_s",
                  "peak_rss_bytes", "hallucination_rate", "ttft_s")
    QUALITY_FLOORS = ("reference", "none")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Constraints":
        d = dict(d or {})
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise HarnessError(f"unknown report constraint(s) {unknown}; allowed: {sorted(allowed)}")
        objective = d.pop("objective", None) or "energy_per_decode_token_j"
        if objective not in cls.OBJECTIVES:
            raise HarnessError(f"objective '{objective}' is not one of {list(cls.OBJECTIVES)}")
        floor = d.pop("quality_floor", None) or "reference"
        if floor not in cls.QUALITY_FLOORS:
            raise HarnessError(f"quality_floor '{floor}' is not one of {list(cls.QUALITY_FLOORS)}")
        for k, v in d.items():
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or not math.isfinite(v) or v < 0):
                raise HarnessError(f"constraint {k} must be a non-negative number, got {v!r}")
        return cls(objective=objective, quality_floor=floor, **d)

    def bounds(self) -> list[tuple[str, str, float]]:
        """(metric, 'max'|'min', value) for every bound that is set."""
        out = []
        for fname in ("max_hallucination_rate", "min_accuracy", "max_peak_rss_bytes",
                      "min_decode_tokens_per_s", "max_ttft_s"):
            v = getattr(self, fname)
            if v is not None:
                kind, metric = fname.split("_", 1)
                out.append((metric, kind, float(v)))
        return out

    def describe(self) -> str:
        spec = SPECS[self.objective]
        goal = ("lowest " if spec.lower_is_better else "highest ") + spec.label.lower()
        parts = []
        for metric, kind, v in self.bounds():
            s = SPECS[metric]
            parts.append(f"{s.label.lower()} {'≤' if kind == 'max' else '≥'} "
                         f"{v * s.scale:g} {s.unit}")
        if self.quality_floor == "reference":
            parts.append(f"accuracy not significantly below the reference level's "
                         f"(paired McNemar test, p < {QUALITY_FLOOR_ALPHA:g})")
        return goal + (" with " + " and ".join(parts) if parts else " (no constraints)")


# --------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class DeviceKey:
    """A physical device: its profile and the host that ran it (two Pis are two devices)."""

    profile: str
    hostname: str

    def label(self) -> str:
        return f"{self.profile} ({self.hostname})"


@dataclass
class PlotTrace:
    """Downsampled power samples of one cell, as consecutive segments with their phases."""

    segments: list[dict[str, Any]]  # {label, t_s: [...], power_w: [...], phases: {name: [a, b]}}
    n_raw: int


@dataclass
class QualityDetail:
    samples_path: Path | None
    pair_rows: list[dict[str, str]]  # {id, label} per item, for paired tests
    excerpt: list[dict[str, str]]  # hallucinated items: id, question, output, reference
    n_hallucinated: int
    duplicates_dropped: int = 0


@dataclass
class ResultsTable:
    cells: list[Row]  # one row per finished cell
    failures: list[Row]
    runs: list[dict[str, Any]]  # per run: run_id, path, manifest, warnings
    warnings: list[str]
    traces: dict[tuple[str, str], PlotTrace] = field(default_factory=dict)  # (run_id, cell_id)
    quality: dict[tuple[str, str], QualityDetail] = field(default_factory=dict)
    # configurations(self), computed once: the page, the Markdown and the CSV all need them
    configs: list[Row] | None = field(default=None, repr=False, compare=False)
    # one line per interrupted run: what it holds and what of it is shown (MERGE_RULE)
    run_notes: list[str] = field(default_factory=list)
    # cells whose figures had two or more candidates of equal standing (`report --strict` refuses)
    ambiguous: list[str] = field(default_factory=list)

    def devices(self) -> list[DeviceKey]:
        return sorted({r["device_key"] for r in self.cells + self.failures},
                      key=lambda d: (d.profile, d.hostname))


def load_results(paths: Sequence[str | Path], strict: bool = False) -> ResultsTable:
    """Read run dirs / parents / globs through harness.store, refuse conflicts, build the table.

    `strict`: refuse (HarnessError, exit 2) when a cell's figures had to be chosen between two
    or more runs of equal standing (MERGE_RULE), naming each such cell and its runs."""
    dirs = list(dict.fromkeys(Path(p).resolve() for p in iter_run_dirs(paths)))
    if not dirs:
        raise HarnessError("no run directories given")
    runs = [load_run(d, expand=False) for d in dirs]  # results_table joins constants per cell
    runs, dup_warnings = dedupe_runs(runs)
    check_conflicts(runs)
    names = _Listings()
    table = results_table(runs, read_trace=functools.partial(_read_trace, names=names),
                          read_samples=functools.partial(_read_samples, names=names))
    table.warnings[:0] = dup_warnings
    if strict and table.ambiguous:
        raise HarnessError(
            f"--strict: {len(table.ambiguous)} cell(s) finished in more than one run of equal "
            "standing, so which figures to show is a choice, not a fact: "
            + "; ".join(table.ambiguous)
            + ". Give only one of those runs (or leave out --strict to show the later one).")
    return table


def dedupe_runs(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """The same run given twice (a copy) is read once; the same run_id with other content is refused."""
    seen: dict[str, Run] = {}
    warnings = []
    for run in runs:
        rid = str(run.manifest.get("run_id") or run.path.name)
        if rid not in seen:
            seen[rid] = run
            continue
        first = seen[rid]
        if first.manifest != run.manifest or _canon(first.records) != _canon(run.records):
            raise HarnessError(
                f"run_id {rid} appears twice with different content: {first.path} and {run.path}. "
                "A run id names one run; remove the stale copy (or give only one of them).")
        warnings.append(f"run {rid} given twice ({first.path} and {run.path}); read once")
    return list(seen.values()), warnings


def _canon(records: list[Row]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def check_conflicts(runs: list[Run]) -> None:
    """Refuse runs that claim the same device (profile + hostname) on different hardware."""
    by_device: dict[DeviceKey, tuple[Run, dict[str, Any]]] = {}
    for run in runs:
        key = _device_key(run.manifest)
        host = run.manifest.get("host") or {}
        if key not in by_device:
            by_device[key] = (run, host)
            continue
        other_run, other_host = by_device[key]
        diffs = [f"{k}: {other_host.get(k)!r} vs {host.get(k)!r}" for k in HOST_CHECKED
                 if other_host.get(k) != host.get(k)]
        if diffs:
            raise HarnessError(
                f"runs {other_run.path} and {run.path} both say device {key.label()} but the "
                f"hardware differs ({'; '.join(diffs)}). Results from different machines cannot "
                "be merged under one device: report them separately or fix the device profile / "
                "hostname of one run.")


def _device_key(manifest: dict[str, Any]) -> DeviceKey:
    dev = manifest.get("device") or {}
    host = manifest.get("host") or {}
    return DeviceKey(str(dev.get("profile") or "unknown"), str(host.get("hostname") or "unknown"))


def results_table(runs: Iterable[Run], read_trace: Callable[[Run, str, str | None], list[tuple[str, float, float]] | None]
                  | None = None, read_samples: Callable[[Run, Row], tuple[Path | None, list[Row]] | None]
                  | None = None) -> ResultsTable:
    """Flatten runs into cell rows; traces and samples come through the given readers."""
    cells: list[Row] = []
    failures: list[Row] = []
    run_info: list[dict[str, Any]] = []
    warnings: list[str] = []
    traces: dict[tuple[str, str], PlotTrace] = {}
    quality: dict[tuple[str, str], QualityDetail] = {}
    runs = sorted(runs, key=lambda r: (str(r.manifest.get("created_utc") or ""), str(r.path)))
    for run in runs:
        rid = str(run.manifest.get("run_id") or run.path.name)
        dkey = _device_key(run.manifest)
        summaries, repetitions = run.summaries, run.repetitions
        reps_by_cell = _reps_by_cell(repetitions, summaries + run.failures)
        state = run.state
        run_info.append({"run_id": rid, "path": run.path, "manifest": run.manifest,
                         "device_key": dkey, "warnings": list(run.warnings), "state": state,
                         "n_finished": len(summaries),
                         "repetitions": [r for reps in reps_by_cell.values() for r in reps],
                         "summaries": summaries})
        # the store names files by absolute path; the run id is enough and stays stable
        warnings += [f"{rid}: " + w.replace(str(run.path), run.path.name) for w in run.warnings]
        for s in summaries:
            reps = reps_by_cell.get(s["cell_id"], [])
            cells.append(cell_row(rid, dkey, s, reps) | {"run_complete": state.complete})
            if read_trace is not None:
                raw = _confined(warnings, rid, read_trace, run, s["cell_id"], s.get("attempt"))
                if raw:
                    traces[(rid, s["cell_id"])] = build_trace(raw, reps)
            if read_samples is not None:
                got = _confined(warnings, rid, read_samples, run, cells[-1])
                if got is not None:
                    detail = quality_detail(*got)
                    quality[(rid, s["cell_id"])] = detail
                    if detail.duplicates_dropped:
                        warnings.append(
                            f"{rid}: samples/{s['cell_id']}.jsonl has {detail.duplicates_dropped} "
                            "repeated item(s) in one repetition (a resumed cell?); the last "
                            "answer per item is shown and paired")
        for f in run.failures:
            failures.append(_dims(rid, dkey, f) | {k: f.get(k) for k in
                            ("reason", "failure_kind", "exit_code", "stderr_tail")}
                            | {"run_complete": state.complete})
        if any(s.get("runtime") == "onnx" for s in summaries):  # else no cell has a figure
            add_token_agreement([c for c in cells if c["run_id"] == rid], _expanded(run),
                                lambda cell_id: _confined(warnings, rid, read_outputs, run.path,
                                                          cell_id) or [])
    cells, superseded, ambiguous = choose_per_cell(cells)
    warnings += superseded
    notes = run_notes(run_info, cells, failures)
    failures, failure_notes = failures_left(cells, failures)
    warnings += failure_notes
    return ResultsTable(cells, failures, run_info, warnings, traces, quality,
                        run_notes=notes, ambiguous=ambiguous)


def _reps_by_cell(repetitions: list[Row], finals: list[Row]) -> dict[str, list[Row]]:
    """A run's repetitions per cell, in repetition order; the first of each cell carries its
    cell's dimensions and constants (records.expand_repetition).

    The report reads runs lean (`load_run(expand=False)`): per-repetition facts (warnings,
    energy validity, sample rate, phases) come from every repetition, constants from the first,
    so 100,000 repetitions are not each copied with their cell's ~40 constants (~1 s, ~200 MB).
    Already expanded (or schema 1) repetitions give the same rows.
    """
    final = {f["cell_id"]: f for f in finals}
    by_cell: dict[str, list[Row]] = {}
    for r in repetitions:
        by_cell.setdefault(r["cell_id"], []).append(r)
    for cell_id, reps in by_cell.items():
        reps.sort(key=lambda r: r.get("repetition", 0))
        if cell_id in final:
            reps[0] = expand_repetition(reps[0], final[cell_id])
    return by_cell


def _expanded(run: Run) -> list[Row]:
    """A run's records with every repetition expanded (token agreement pairs them on dimensions)."""
    final = {r["cell_id"]: r for r in run.summaries + run.failures}
    return [expand_repetition(r, final[r["cell_id"]])
            if r.get("record_type") == "repetition" and r["cell_id"] in final else r
            for r in run.records]


def _confined(warnings: list[str], rid: str, read: Callable[..., Any], *args: Any) -> Any:
    """A per-cell file read; a file the run folder may not name is a warning, the rest renders."""
    try:
        return read(*args)
    except RunFileError as e:
        warnings.append(f"{rid}: {e}; not shown")
        return None


def _dims(run_id: str, dkey: DeviceKey, rec: Row) -> Row:
    return {"run_id": run_id, "device_key": dkey, "device": dkey.profile, "host": dkey.hostname,
            "cell_id": rec["cell_id"], "model": rec.get("model"), "level": rec.get("level"),
            "runtime": rec.get("runtime"), "power_mode": rec.get("power_mode"),
            "workload": rec.get("workload"), "workload_kind": rec.get("workload_kind"),
            **{k: rec.get(k) for k in SETTING_FIELDS},
            "swept_settings": dict(rec.get("swept_settings") or {})}


def cell_row(run_id: str, dkey: DeviceKey, summary: Row, reps: list[Row]) -> Row:
    """One flat row: dimensions, provenance, and per metric mean / 95% CI / n.

    Rates with per-item Wilson intervals (`<m>_ci95_low/high` recorded by the quality workload)
    use those; other metrics use the t-interval over repetitions from the cell summary.
    """
    row = _dims(run_id, dkey, summary)
    first = reps[0] if reps else {}
    for k in ("energy_method", "energy_sensor", "energy_coverage", "emulated", "throttled",
              "quant_type", "source_quant_type", "bits_per_weight", "model_size_bytes"):
        row[k] = summary.get(k, first.get(k))
    row["workload_kind"] = row["workload_kind"] or first.get("workload_kind")
    for k in SETTING_FIELDS + CARRIED_FIELDS:  # absent in runs before these fields: None
        row[k] = summary.get(k, first.get(k))
    row["swept_settings"] = dict(summary.get("swept_settings") or first.get("swept_settings") or {})
    row["throttled_reason"] = summary.get("throttled_reason")
    row["warmup"] = summary.get("warmup")
    if row["source_quant_type"] == row["quant_type"]:  # the source level itself, used as is
        row["source_quant_type"] = None
    row["energy_model"] = summary.get("energy_model") or first.get("energy_model")
    row["n_repetitions"] = summary.get("n_repetitions", len(reps))
    row["unstable"] = list(summary.get("unstable") or [])
    row["warnings"] = list(dict.fromkeys([str(w) for w in summary.get("warnings") or []]
                                         + [str(w) for r in reps for w in r.get("warnings") or []]))
    row["throttled"] = bool(row["throttled"]) or any(r.get("throttled") for r in reps)
    row["emulated"] = bool(row["emulated"]) or any(r.get("emulated") for r in reps)
    invalid = sorted({str(r.get("energy_invalid_reason") or "no reason given")
                      for r in reps if r.get("energy_valid") is False})
    row["energy_invalid"] = "; ".join(invalid) or None
    row["sample_rate_hz"] = _mean([r.get("sample_rate_hz") for r in reps])
    row["samples_file"] = first.get("samples_file")
    row["output_text"] = first.get("output_text")
    comp = summary.get("compression") or first.get("compression")
    # "source" (the model file as given), "quantize", "prune+quantize", ...: the paired tests'
    # default reference is the unmodified source (`reference_order`)
    row["compression_kind"] = comp.get("kind") if isinstance(comp, dict) else None
    row.update(summary_metrics(summary.get("metrics") or {}))  # the same columns as results.load
    # J/token and tokens/J intervals with the sensor (or calibration) and sampling parts
    row.update(interval_fields(row, bool(summary.get("energy_calibration") or first.get("energy_calibration"))))
    if row["energy_invalid"]:  # never show an energy figure the sampler flagged as invalid
        for name in list(row):
            if name.startswith(("energy_", "tokens_per_j", "power_", "co2e_g")) and \
                    name not in ("energy_method", "energy_sensor", "energy_coverage",
                                 "energy_model", "energy_invalid"):
                row[name] = None
    return row


def _mean(values: Iterable[Any]) -> float | None:
    xs = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(xs) / len(xs) if xs else None


MERGE_RULE = (
    "When the same cell (same device, model, level, runtime, power mode, workload and settings) "
    "finished in several runs, its figures come from a complete run (one that ran to its end, or "
    "was resumed to its end), never from an interrupted one while a complete run has the cell; "
    "among runs of equal standing the later (by created_utc) is shown and the page names the "
    "others. A cell only an interrupted run finished is shown with the flag 'interrupted run'. "
    "A cell interrupted or failed in one run but finished in another is not listed as failed; "
    "the failure is noted. `report --strict` refuses any cell chosen between runs of equal "
    "standing.")
INTERRUPTED_RUN_NOTE = ("from an interrupted run: no complete run given has this cell; its own "
                        "repetitions all finished")


def choose_per_cell(cells: list[Row]) -> tuple[list[Row], list[str], list[str]]:
    """The figures shown for each cell (MERGE_RULE), the warnings naming the runs passed over,
    and the cells whose choice was between runs of equal standing (what --strict refuses).

    Grouped on a pandas frame of the cell rows (one group per configuration and workload, in
    order of first appearance); runs are in creation order, so among equals the last is the latest.
    A row without `run_complete` counts as from a complete run.
    """
    if not cells:
        return [], [], []
    pd = pandas_module()
    groups: dict[int, list[int]] = {}
    for i, code in enumerate(_group_codes(pd, cells, with_workload=True)):
        groups.setdefault(int(code), []).append(i)
    chosen, notes, ambiguous = [], [], []
    for members in groups.values():
        complete = [i for i in members if cells[i].get("run_complete", True)]
        tier = complete or members
        pick = tier[-1]
        chosen.append(pick)
        notes += _passed_over(cells, members, tier, pick)
        if len(tier) > 1:
            ambiguous.append(f"{_cell_text(cells[pick])} in runs "
                             f"{', '.join(cells[i]['run_id'] for i in tier)}")
    notes.sort()
    return [cells[i] | ({"interrupted_run": True} if not cells[i].get("run_complete", True) else {})
            for i in chosen], [text for _, text in notes], ambiguous


def _passed_over(cells: list[Row], members: list[int], tier: list[int],
                 pick: int) -> list[tuple[int, str]]:
    """(position, warning) for each row of a cell not shown: among equals each later run
    supersedes the one before it; an interrupted run's row gives way to the complete run's."""
    out = []
    for a, b in zip(tier, tier[1:]):
        c = cells[b]
        out.append((b, f"{_cell_text(c)} is in runs {cells[a]['run_id']} and {c['run_id']}; "
                       f"the later run ({c['run_id']}) is shown"))
    for i in members:
        if i not in tier:
            out.append((i, f"{_cell_text(cells[i])} is in runs {cells[i]['run_id']} (interrupted) "
                           f"and {cells[pick]['run_id']} (complete); the complete run's figures "
                           "are shown"))
    return out


def _cell_text(c: Row) -> str:
    return (f"{c['model']} {c['level']} / {c['workload']}{cell_settings_text(c)} on "
            f"{c['device_key'].label()}")


def _latest_per_cell(cells: list[Row]) -> tuple[list[Row], list[str]]:
    """choose_per_cell without the ambiguity list (the rows and the warnings)."""
    chosen, notes, _ = choose_per_cell(cells)
    return chosen, notes


def failures_left(cells: list[Row], failures: list[Row]) -> tuple[list[Row], list[str]]:
    """The failures to list: a cell that finished in some run is not a failed cell (its failure
    or interruption elsewhere becomes a note); of a cell that never finished, one failure is
    listed: a real failure before an interruption, a complete run before an interrupted one,
    then the later run."""
    shown = {(c["device_key"], c["cell_id"]): c["run_id"] for c in cells}
    notes, best = [], {}
    for pos, f in enumerate(failures):
        key = (f["device_key"], f["cell_id"])
        if key in shown:
            if f.get("failure_kind") != INTERRUPTED_KIND:
                notes.append(f"{_cell_text(f)} failed in run {f['run_id']} "
                             f"({f.get('failure_kind')}: {str(f.get('reason') or '')[:120]}) but "
                             f"finished in run {shown[key]}, whose figures are shown")
            continue
        rank = (f.get("failure_kind") != INTERRUPTED_KIND, f.get("run_complete", True), pos)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, f)
    return [f for _, f in best.values()], notes


def run_notes(run_info: list[dict[str, Any]], cells: list[Row], failures: list[Row]) -> list[str]:
    """One line per interrupted run: why it reads as interrupted, what it holds, what is shown."""
    shown = {(c["run_id"], c["cell_id"]) for c in cells}
    finished_in = {(c["device_key"], c["cell_id"]): c["run_id"] for c in cells}
    labels = {c["cell_id"]: f"{c['model']} {c['level']} / {c['workload']}"
              for c in failures + cells if c.get("model") is not None}
    out = []
    for r in run_info:
        state = r["state"]
        if state.complete:
            continue
        ids = [s["cell_id"] for s in r["summaries"]]
        n_shown = sum((r["run_id"], i) in shown for i in ids)
        cut = [labels.get(cid, f"cell {cid}") + _finished_where(finished_in.get((r["device_key"], cid)))
               for cid in state.cells_cut]
        others = " (the others come from complete runs)" if n_shown < len(ids) else ""
        out.append(f"Run {r['run_id']} is interrupted ({'; '.join(state.evidence)}): it holds "
                   f"{len(ids)} finished cell(s), {n_shown} of them shown{others}"
                   + (f"; not finished here: {', '.join(cut)}" if cut else "")
                   + ". Resume it with `run --resume` or leave it out of the report.")
    return out


def _finished_where(run_id: str | None) -> str:
    return f" (finished in run {run_id})" if run_id else " (finished in no run given)"


def _group_codes(pd: Any, rows: list[Row], with_workload: bool) -> Any:
    """One integer per row naming its configuration (and workload): equal keys, equal codes,
    numbered in order of first appearance (`_config_key` as frame columns)."""
    return _codes(pd, rows, _KEY_COLUMNS + (("workload",) if with_workload else ()), swept=True)


def _codes(pd: Any, rows: list[Row], keys: Sequence[str], swept: bool = False) -> Any:
    """Group numbers of `rows` by the values of `keys` (and the swept settings), in order of
    first appearance; None is a value like any other."""
    columns = {k: [r.get(k) for r in rows] for k in keys}
    if swept:
        columns["swept"] = [repr(_swept_key(r)) if r.get("swept_settings") else "" for r in rows]
    frame = pd.DataFrame(columns, dtype=object)
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


# --------------------------------------------------------------------------------------------
# Traces and samples (readers used by load_results; pure builders used by results_table)


class _Listings(dict):
    """File names per run folder, listed once per report instead of a stat per cell."""

    def __missing__(self, folder: Path) -> frozenset[str]:
        try:
            names = frozenset(os.listdir(folder))
        except OSError:
            names = frozenset()
        self[folder] = names
        return names


def _read_trace(run: Run, cell_id: str, attempt: str | None = None,
                names: _Listings | None = None) -> list[tuple[str, float, float]] | None:
    """A cell's power samples (label, t_s, power_w) of one attempt, read inside the run folder.

    Traces written since the `attempt` column keep a resumed cell's attempts apart: only the
    rows of `attempt` (the one load_run kept) are returned. Older traces have no column and
    are read whole.
    """
    rel = cell_file("traces", cell_id, ".csv", f"{run.path.name}: cell {cell_id}")
    if rel.rpartition("/")[2] not in (names if names is not None else _Listings())[run.path / "traces"]:
        return None
    text = read_text_in_run(run.path, rel, CELL_FILE_MAX_BYTES, f"{run.path.name}: cell {cell_id}")
    if text is None:
        return None
    rows = []
    for rec in csv.DictReader(io.StringIO(text, newline="")):
        if attempt is not None and rec.get("attempt") not in (None, "", attempt):
            continue  # another attempt of this cell (a resumed run)
        try:
            rows.append((rec["repetition"], float(rec["t_s"]), float(rec["power_w"])))
        except (KeyError, TypeError, ValueError):
            continue  # a torn last line or a gap (empty power) is not plotted
    return rows


def build_trace(rows: list[tuple[str, float, float]], reps: list[Row]) -> PlotTrace:
    """Group samples into windows (load, baseline, 0, 1, ...) with their phases, then decimate."""
    order: list[str] = []
    by_label: dict[str, tuple[list[float], list[float]]] = {}
    for label, t, p in rows:
        if label not in by_label:
            order.append(label)
            by_label[label] = ([], [])
        by_label[label][0].append(t)
        by_label[label][1].append(p)
    phases = {str(r.get("repetition")): r.get("phases") or {} for r in reps}
    budget = max(20, MAX_TRACE_POINTS // max(1, len(order)))
    segments = []
    for label in order:
        t, p = decimate(*by_label[label], max_points=budget)
        if label in ("load", "baseline"):
            ph = {label: [t[0], t[-1]]} if t else {}
        else:
            ph = {k: v for k, v in phases.get(label, {}).items()
                  if isinstance(v, (list, tuple)) and len(v) == 2}
        segments.append({"label": label, "t_s": t, "power_w": p, "phases": ph})
    return PlotTrace(segments, n_raw=len(rows))


def decimate(t: list[float], p: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """Min/max per bucket: fewer points, but spikes (the peaks a budget cares about) survive."""
    n = len(t)
    if n <= max_points:
        return list(t), list(p)
    buckets = max_points // 2
    out_t, out_p = [], []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        idx = range(lo, hi)
        i_min = min(idx, key=lambda i: p[i])
        i_max = max(idx, key=lambda i: p[i])
        for i in sorted({i_min, i_max}):
            out_t.append(t[i])
            out_p.append(p[i])
    return out_t, out_p


def _read_samples(run: Run, row: Row,
                  names: _Listings | None = None) -> tuple[Path | None, list[Row]] | None:
    """A quality cell's per-item rows: the file its record names, confined to the run folder."""
    where = f"{run.path.name}: cell {row.get('cell_id')} (samples_file)"
    rel = row.get("samples_file") or cell_file("samples", row.get("cell_id"), ".jsonl", where)
    folder, _, name = str(rel).rpartition("/")
    if folder == "samples" and name not in (names if names is not None
                                            else _Listings())[run.path / "samples"]:
        return None
    path = resolve_in_run(run.path, rel, where)
    text = read_text_in_run(run.path, rel, CELL_FILE_MAX_BYTES, where)
    if text is None:
        return None
    rows: list[Row] = []
    for line in text.split("\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line of the audit file
        if isinstance(obj, dict):
            rows.append(obj)
    return path, rows


ID_KEYS = ("id", "item_id", "question_id")
QUESTION_KEYS = ("question", "prompt")
OUTPUT_KEYS = ("output", "answer", "text")
REFERENCE_KEYS = ("references", "reference", "matched_reference", "right_answer", "answers")


def _first(d: Row, keys: Sequence[str]) -> Any:
    return next((d[k] for k in keys if d.get(k) is not None), None)


def first_repetition(samples: list[Row]) -> tuple[list[Row], int]:
    """The rows of the first repetition, one per item id (the last written wins).

    A quality workload repeated n times writes every item n times (`repetition` field); the
    audit excerpt and the paired tests use one answer per item. Returns the rows and how many
    duplicate rows of that repetition (from a superseded attempt) were dropped.
    """
    reps = [s.get("repetition") for s in samples if isinstance(s.get("repetition"), int)]
    if reps:
        first = min(reps)
        samples = [s for s in samples if s.get("repetition", first) == first]
    by_id: dict[Any, Row] = {}
    for i, s in enumerate(samples):
        sid = _first(s, ID_KEYS)
        by_id.pop(sid if sid is not None else ("row", i), None)
        by_id[sid if sid is not None else ("row", i)] = s
    return list(by_id.values()), len(samples) - len(by_id)


def quality_detail(path: Path | None, samples: list[Row]) -> QualityDetail:
    samples, dropped = first_repetition(samples)
    pair_rows = []
    excerpt = []
    n_halluc = 0
    for i, s in enumerate(samples):
        sid = _first(s, ID_KEYS)
        label = str(s.get("label", ""))
        pair_rows.append({"id": str(sid if sid is not None else i), "label": label})
        if label == "hallucinated":
            n_halluc += 1
            if len(excerpt) < EXCERPT_ITEMS:
                ref = _first(s, REFERENCE_KEYS)
                excerpt.append({"id": str(sid if sid is not None else i),
                                "question": str(_first(s, QUESTION_KEYS) or ""),
                                "output": str(_first(s, OUTPUT_KEYS) or ""),
                                "reference": " | ".join(map(str, ref)) if isinstance(ref, list)
                                else str(ref or "")})
    return QualityDetail(path, pair_rows, excerpt, n_halluc, dropped)


# --------------------------------------------------------------------------------------------
# Configurations, best choice, Pareto


SETTING_FIELDS = ("n_threads", "n_threads_batch", "n_batch", "n_ctx")  # what the runtime used
CARRIED_FIELDS = ("threads_source", "memory_bandwidth_bytes_per_s", "decode_bytes_per_token",
                  "llama_bench_test", "offload")


def settings_key(c: Row) -> tuple:
    """The settings part of a configuration's identity: what ran, and what the matrix swept.

    Both count: a matrix asking for 4 threads on a 2-core host runs 2 (capped, with a warning),
    and that cell must not merge with the one that asked for 2.
    """
    return tuple(c.get(k) for k in SETTING_FIELDS) + (_swept_key(c),)


def _swept_key(c: Row) -> tuple:
    swept = c.get("swept_settings") or {}
    return tuple(sorted((str(k), json.dumps(v, sort_keys=True)) for k, v in swept.items()))


def _config_key(c: Row) -> tuple:
    return (c["device_key"], c["model"], c["level"], c["runtime"], c["power_mode"]) + settings_key(c)


_KEY_COLUMNS = ("device_key", "model", "level", "runtime", "power_mode") + SETTING_FIELDS


def threads_text(c: Row) -> str:
    """'4', '4/8' (decode/batch threads when they differ), '2 (asked 4)' when capped; '' if unknown."""
    n, nb = c.get("n_threads"), c.get("n_threads_batch")
    if n is None:
        return ""
    text = f"{n}/{nb}" if nb is not None and nb != n else f"{n}"
    asked = (c.get("swept_settings") or {}).get("n_threads")
    if asked is not None and asked != n:
        text += f" (asked {asked})"
    return text


def threads_phrase(c: Row) -> str:
    """'1 thread', '4 threads', '4 threads (8 for batches)', '2 threads (asked 4)'; '' if unknown."""
    n, nb = c.get("n_threads"), c.get("n_threads_batch")
    if n is None:
        return ""
    text = f"{n} thread{'' if n == 1 else 's'}"
    if nb is not None and nb != n:
        text += f" ({nb} for batches)"
    asked = (c.get("swept_settings") or {}).get("n_threads")
    return text + (f" (asked {asked})" if asked is not None and asked != n else "")


def cell_settings_text(c: Row) -> str:
    """' · 4 threads · batch 256' for labels; batch size and context only where the matrix swept them."""
    parts = []
    if threads_phrase(c):
        parts.append(threads_phrase(c))
    swept = c.get("swept_settings") or {}
    for k, name in (("n_batch", "batch"), ("n_ctx", "ctx")):
        if k in swept and c.get(k) is not None:
            parts.append(f"{name} {c[k]}")
    return "".join(f" · {p}" for p in parts)


def workload_text(c: Row) -> str:
    """The speed workload of a row, with its llama-bench test when the name does not say it."""
    name = c.get("speed_workload", c.get("workload"))
    test = c.get("llama_bench_test")
    if name is None:
        return ""
    return f"{name} ({test})" if test and test != name else str(name)


SPEED_FIELDS = ("energy_per_decode_token_j", "energy_per_prefill_token_j", "tokens_per_j",
                "energy_net_j", "power_avg_w", "co2e_g", "energy_load_j", "decode_tokens_per_s",
                "prefill_tokens_per_s", "ttft_s", "e2e_latency_s", "peak_rss_bytes", "load_time_s",
                "decode_roofline_fraction")
QUALITY_FIELDS = ("hallucination_rate", "accuracy", "abstention_rate",
                  "hallucination_rate_attempted", "mc1", "mc2", "kl_divergence_mean",
                  "top1_agreement", "perplexity_ratio", "token_agreement")
_ROW_FIELDS = ("device_key", "device", "host", "model", "level", "runtime", "power_mode",
               "quant_type", "source_quant_type", "bits_per_weight", "model_size_bytes",
               "swept_settings") + SETTING_FIELDS + CARRIED_FIELDS


def configurations(table: ResultsTable) -> list[Row]:
    """One row per configuration, settings and speed workload: speed/energy from that speed cell,
    quality from the quality cells of the same configuration and settings (the first workload
    name, alphabetically, that has the metric). A configuration with no speed cell still gets
    one row, for its quality. Computed once per table (the rows are shared: do not mutate)."""
    if table.configs is None:
        table.configs = _configurations(table)
    return table.configs


def _configurations(table: ResultsTable) -> list[Row]:
    """Grouped as a pandas frame of the cell rows: members of a configuration by workload name,
    quality sources joined per configuration, rows sorted on frame columns."""
    cells = table.cells
    if not cells:
        return []
    pd = pandas_module()
    frame = pd.DataFrame({"config": _group_codes(pd, cells, with_workload=False),
                          "workload": [str(c["workload"]) for c in cells],
                          "speed": [c.get("workload_kind") in SPEED_KINDS for c in cells]})
    frame = frame.sort_values(["config", "workload"], kind="stable")
    sources = _quality_sources(pd, frame, cells).to_dict("index")
    out = []
    positions = frame.index.to_numpy()
    for config, members in frame.groupby("config").indices.items():  # in order of appearance
        rows = [cells[i] for i in positions[members].tolist()]
        speeds = [c for c in rows if c.get("workload_kind") in SPEED_KINDS]
        quality = {f: cells[int(i)] if i == i else None for f, i in sources[config].items()}
        out += [_config_row(rows, speed, quality) for speed in speeds or [None]]
    out = _sorted_configs(pd, out)
    _mark_variants(out)
    return out


def _quality_sources(pd: Any, frame: Any, cells: list[Row]) -> Any:
    """Per configuration (index) and quality metric (column): the position of the quality cell
    that gives the metric (the first workload, by name, that has it), NaN where none does."""
    quality = frame[~frame["speed"]]
    found = {}
    for f in QUALITY_FIELDS:
        has = quality[pd.Series([cells[i].get(f) is not None for i in quality.index],
                                index=quality.index, dtype=bool)]
        first = has.drop_duplicates("config")
        found[f] = pd.Series(first.index, index=first["config"].to_numpy(), dtype="float64")
    return pd.DataFrame(found, index=pd.Index(frame["config"].unique()), columns=QUALITY_FIELDS)


def _sorted_configs(pd: Any, rows: list[Row]) -> list[Row]:
    """`rows` sorted (stably: ties keep their order) by device, host, model, level (higher
    precision first), runtime, power mode, speed workload and test, then the settings (unknown
    first) and the swept settings."""
    columns: dict[str, list[Any]] = {
        "device": [r["device"] for r in rows], "host": [r["host"] for r in rows],
        "model": [str(r["model"]) for r in rows],
        "precision": [_level_order(r)[0] for r in rows], "level": [str(r["level"]) for r in rows],
        **{k: [str(r.get(k)) for r in rows]
           for k in ("runtime", "power_mode", "speed_workload", "llama_bench_test")}}
    for k in SETTING_FIELDS:
        values = [r.get(k) for r in rows]
        columns[k + "_known"] = [v is not None for v in values]
        columns[k] = [v if isinstance(v, (int, float)) else 0 for v in values]
    columns["swept"] = [str(sorted((r.get("swept_settings") or {}).items())) for r in rows]
    order = pd.DataFrame(columns).sort_values(list(columns), kind="stable").index
    return [rows[i] for i in order]


def _config_row(cells: list[Row], speed: Row | None, quality_source: dict[str, Row | None]) -> Row:
    src = speed or cells[0]
    row: Row = {k: src.get(k) for k in _ROW_FIELDS}
    row["run_ids"] = sorted({c["run_id"] for c in cells})
    row["emulated"] = any(c.get("emulated") for c in cells)
    row["throttled"] = any(c.get("throttled") for c in cells)
    row["throttled_reason"] = next((c["throttled_reason"] for c in cells
                                    if c.get("throttled_reason")), None)
    row["speed_workload"] = speed["workload"] if speed else None
    row["speed_kind"] = speed.get("workload_kind") if speed else None
    if speed is None:
        row["llama_bench_test"] = None
    quality = [c for c in cells if c.get("workload_kind") not in SPEED_KINDS]
    row["warnings"] = list(dict.fromkeys(w for c in ([speed] if speed else []) + quality
                                         for w in c.get("warnings") or []))
    for k in ("energy_method", "energy_sensor", "energy_model", "energy_coverage",
              "energy_invalid"):
        row[k] = src.get(k)
    for f in SPEED_FIELDS:
        _copy_metric(row, speed, f)
    row["quality_workload"] = None
    for f in QUALITY_FIELDS:
        q = quality_source[f]
        _copy_metric(row, q, f)
        if q is not None and f == "hallucination_rate":
            row["quality_workload"] = q["workload"]
    return row


def _mark_variants(configs: list[Row]) -> None:
    """row['variant']: what tells the device's rows of one model and level apart (workload,
    threads, batch, context), for labels; '' where nothing varies, so old runs read as before."""
    by_device: dict[DeviceKey, list[Row]] = {}
    for c in configs:
        by_device.setdefault(c["device_key"], []).append(c)
    for rows in by_device.values():
        vary = {k for k in ("speed_workload", "n_threads", "n_batch", "n_ctx")
                if len({str(r.get(k)) for r in rows}) > 1 or (k == "speed_workload" and any(
                    r.get("llama_bench_test") for r in rows))}
        for r in rows:
            parts = []
            if "speed_workload" in vary and r.get("speed_workload"):
                parts.append(workload_text(r))
            if ("n_threads" in vary or "n_threads" in (r.get("swept_settings") or {})) \
                    and threads_phrase(r):
                parts.append(threads_phrase(r))
            for k, name in (("n_batch", "batch"), ("n_ctx", "ctx")):
                if k in vary and r.get(k) is not None:
                    parts.append(f"{name} {r[k]}")
            r["variant"] = " · ".join(parts)


def _copy_metric(row: Row, src: Row | None, f: str) -> None:
    for suffix in ("", "_ci95_low", "_ci95_high", "_n", "_stdev", *INTERVAL_SUFFIXES):
        row[f + suffix] = src.get(f + suffix) if src else None


def _level_order(r: Row) -> tuple:
    """Higher precision first: F16 before Q8_0 before Q4_K_M; unknown bits last, by name."""
    bpw = r.get("bits_per_weight")
    return (-(bpw if isinstance(bpw, (int, float)) else -1), str(r["level"]))


_SERIES_COLUMNS = ("device_key", "model", "level", "runtime", "power_mode", "speed_workload",
                   "n_batch", "n_ctx")  # a threads sweep: everything but the threads


def threads_sweeps(configs: list[Row]) -> list[Row]:
    """Per device, each configuration run at two or more thread counts: its points (decode tok/s,
    J/token by thread count), the fastest point and the one with the least energy per token.

    Energy per token is often lowest below the fastest thread count (the last threads add power
    faster than speed); this is what shows it.
    """
    points = [c for c in configs
              if c.get("n_threads") is not None and c.get("decode_tokens_per_s") is not None]
    if not points:
        return []
    pd = pandas_module()
    frame = pd.DataFrame({"series": _codes(pd, points, _SERIES_COLUMNS),
                          "n_threads": pd.Series([p["n_threads"] for p in points], dtype=object)})
    n_counts = frame.groupby("series")["n_threads"].nunique()
    out = []
    for series, members in frame.groupby("series").indices.items():  # in order of appearance
        if n_counts[series] < 2:
            continue
        pts = sorted((points[i] for i in members.tolist()),
                     key=lambda p: (p["n_threads"], str(p.get("swept_settings"))))
        with_energy = [p for p in pts if p.get("energy_per_decode_token_j") is not None]
        first = pts[0]
        label = config_label(first, with_variant=False) + " · " + workload_text(first)
        if first.get("n_batch") is not None and "n_batch" in (first.get("swept_settings") or {}):
            label += f" · batch {first['n_batch']}"
        if first.get("n_ctx") is not None and "n_ctx" in (first.get("swept_settings") or {}):
            label += f" · ctx {first['n_ctx']}"
        out.append({"device_key": first["device_key"], "label": label, "points": pts,
                    "emulated": any(p.get("emulated") for p in pts),
                    "fastest": max(pts, key=lambda p: p["decode_tokens_per_s"]),
                    "least_energy": min(with_energy, key=lambda p: p["energy_per_decode_token_j"])
                    if with_energy else None})
    out.sort(key=lambda s: (s["device_key"].profile, s["device_key"].hostname, s["label"]))
    return out


def llama_bench_rows(configs: list[Row]) -> list[Row]:
    """Rows of llama_bench cells, in llama-bench's own terms: test (pp512 / tg128) and t/s."""
    out = []
    for c in configs:
        if c.get("speed_kind") != "llama_bench":
            continue
        test = str(c.get("llama_bench_test") or c.get("speed_workload") or "")
        metric = "prefill_tokens_per_s" if test.startswith("pp") else "decode_tokens_per_s"
        energy = "energy_per_prefill_token_j" if test.startswith("pp") else "energy_per_decode_token_j"
        out.append({"config": c, "test": test, "metric": metric, "energy_metric": energy,
                    "t_per_s": c.get(metric), "t_per_s_stdev": c.get(f"{metric}_stdev")})
    return out


def best_per_device(configs: list[Row], constraints: Constraints,
                    held_back: dict[tuple, list[str]] | None = None) -> list[Row]:
    """Per device: the configuration optimising the objective among those meeting every bound.

    A configuration missing a constrained metric (e.g. no quality workload) does not qualify:
    an unknown hallucination rate is not below the threshold. `held_back` (from
    `quality_floor_failures`, keyed by `floor_key`) excludes configurations below the quality
    floor, with its reasons; `n_held_back` counts them.
    """
    spec = SPECS[constraints.objective]
    held_back = held_back if constraints.quality_floor == "reference" else None
    out = []
    for dkey in sorted({c["device_key"] for c in configs}, key=lambda d: (d.profile, d.hostname)):
        mine = [c for c in configs if c["device_key"] == dkey]
        ok, excluded = [], []
        n_held = 0
        for c in mine:
            why = _violations(c, constraints)
            floor = (held_back or {}).get(floor_key(c), [])
            n_held += bool(floor)
            why += floor
            (excluded if why else ok).append((c, why))
        ranked = sorted((c for c, _ in ok), key=lambda c: c[constraints.objective]
                        if spec.lower_is_better else -c[constraints.objective])
        out.append({"device_key": dkey, "best": ranked[0] if ranked else None,
                    "n_candidates": len(mine), "n_qualifying": len(ranked),
                    "n_held_back": n_held, "excluded": [(c, why) for c, why in excluded]})
    return out


def best_configurations(table: ResultsTable, configs: list[Row], constraints: Constraints,
                        reference_level: str | None = None) -> list[Row]:
    """`best_per_device` with the quality floor of `constraints` applied from the paired tests."""
    held = (quality_floor_failures(table, reference_level)
            if constraints.quality_floor == "reference" else None)
    return best_per_device(configs, constraints, held)


def floor_key(c: Row) -> tuple:
    """What a configuration row and its quality cells share: device, model, runtime, power
    mode, level and settings."""
    return (c["device_key"], c["model"], c["runtime"], c["power_mode"], c["level"]) + settings_key(c)


def _violations(c: Row, constraints: Constraints) -> list[str]:
    why = []
    if c.get(constraints.objective) is None:
        why.append(f"no {SPECS[constraints.objective].label.lower()}")
    for metric, kind, bound in constraints.bounds():
        v = c.get(metric)
        if v is None:
            why.append(f"no {SPECS[metric].label.lower()}")
        elif (kind == "max" and v > bound) or (kind == "min" and v < bound):
            why.append(f"{SPECS[metric].label.lower()} {v * SPECS[metric].scale:.3g} "
                       f"{SPECS[metric].unit}")
    return why


def pareto_mask(points: Sequence[tuple[float, float]], minimize: tuple[bool, bool]) -> list[bool]:
    """True for points no other point dominates (at least as good on both, better on one)."""
    sign = [1.0 if m else -1.0 for m in minimize]
    pts = [(x * sign[0], y * sign[1]) for x, y in points]
    mask = []
    for i, (x, y) in enumerate(pts):
        dominated = any(ox <= x and oy <= y and (ox < x or oy < y)
                        for j, (ox, oy) in enumerate(pts) if j != i)
        mask.append(not dominated)
    return mask


PARETO_VIEWS = (
    # (x metric, y metric, minimise x, minimise y)
    # accuracy, not hallucination over all items: a level that answers less cannot look better
    ("accuracy", "energy_per_decode_token_j", False, True),
    ("peak_rss_bytes", "decode_tokens_per_s", True, False),
)


def pareto_points(configs: list[Row], dkey: DeviceKey, x: str, y: str,
                  min_x: bool, min_y: bool) -> list[Row]:
    """The device's configurations that have both metrics, each with `on_front`."""
    pts = [c for c in configs if c["device_key"] == dkey and c.get(x) is not None
           and c.get(y) is not None]
    mask = pareto_mask([(c[x], c[y]) for c in pts], (min_x, min_y))
    return [{"label": config_label(c), "x": c[x], "y": c[y], "on_front": m,
             "x_low": c.get(f"{x}_ci95_low"), "x_high": c.get(f"{x}_ci95_high"),
             "y_low": c.get(f"{y}_ci95_low"), "y_high": c.get(f"{y}_ci95_high"),
             "emulated": c.get("emulated"), "throttled": c.get("throttled")}
            for c, m in zip(pts, mask)]


def config_label(c: Row, with_runtime: bool | None = None, with_variant: bool = True) -> str:
    """model + level (+ runtime when not llama.cpp, + power mode when set, + what tells the
    device's rows apart: workload, threads, batch, context; see `_mark_variants`)."""
    parts = [str(c["model"]), str(c["level"])]
    if with_runtime or (with_runtime is None and c.get("runtime") not in (None, "llama_cpp")):
        parts.append(f"({c['runtime']})")
    if c.get("power_mode"):
        parts.append(f"[{c['power_mode']}]")
    label = " ".join(parts)
    return label + f" · {c['variant']}" if with_variant and c.get("variant") else label


# --------------------------------------------------------------------------------------------
# Paired quality comparisons


LABELLED_KINDS = ("closed_book", "halueval")
ABSTAINED = "abstained"
# Paired quality metrics: (metric, the per-item label it counts, compared on items both levels
# attempted only). Hallucination is compared among answered items, so a level that answers less
# is not "better" on it; abstention has its own test. unscorable: only where a label has it.
PAIRED_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("accuracy", "correct", False),
    ("hallucination_rate_attempted", "hallucinated", True),
    ("abstention_rate", ABSTAINED, False),
    ("unscorable_rate", "unscorable", False),
)
VERDICT_NAMES = {"accuracy": "accuracy",
                 "hallucination_rate_attempted": "hallucination rate among answered items",
                 "abstention_rate": "abstention rate", "unscorable_rate": "unscorable rate"}


def reference_order(c: Row) -> tuple:
    """Default reference first: the model file used as is, then levels not pruned, then not
    requantized from a lower-bit source, then higher bits per weight. (A pruned level can have
    more bits per weight than its source, since its dropped layers were the low-bit ones: in
    the default matrix q4-drop1 has 7.40 against the Q4_K_M source's 7.36.)"""
    kind = str(c.get("compression_kind") or "")
    return (kind != "source", "prune" in kind, bool(c.get("source_quant_type")), _level_order(c))


def paired_tests(table: ResultsTable, reference_level: str | None = None) -> list[Row]:
    """Each level against the reference level on the same items (same device, model, workload).

    The reference is `reference_level` when given and present, else the first by
    `reference_order`: the unmodified source file, else the highest-precision level that was
    neither pruned nor requantized from a lower-bit source (a Q8_0 made from a Q4_K_M file is no
    better reference than the Q4_K_M it came from). The test is the quality room's
    `compare_labels` (McNemar's exact test on per-item correctness, paired by item id, with a
    bootstrap interval of the accuracy difference).
    """
    groups: dict[tuple, list[Row]] = {}
    for c in table.cells:
        # McNemar needs per-item labels: closed_book and halueval have them. Fidelity is itself a
        # paired comparison with its reference level (KL with a bootstrap interval), so it is not
        # tested again here; its unlabelled rows would otherwise read as "no difference".
        if c.get("workload_kind") not in LABELLED_KINDS:
            continue
        if (c["run_id"], c["cell_id"]) in table.quality:
            k = (c["device_key"], c["model"], c["runtime"], c["power_mode"], c["workload"],
                 settings_key(c))  # a threads sweep compares levels at the same settings
            groups.setdefault(k, []).append(c)
    out = []
    for (dkey, model, runtime, pmode, workload, _), cells in sorted(
            groups.items(), key=lambda kv: (kv[0][0].profile, kv[0][0].hostname, str(kv[0][1:]))):
        if len(cells) < 2:
            continue
        cells.sort(key=reference_order)
        ref = next((c for c in cells if c["level"] == reference_level), cells[0])
        ref_rows = table.quality[(ref["run_id"], ref["cell_id"])].pair_rows
        for c in cells:
            if c is ref:
                continue
            row: Row = {"device_key": dkey, "model": model, "runtime": runtime,
                        "power_mode": pmode, "workload": workload, "reference": ref["level"],
                        "level": c["level"], "error": None,
                        "settings": cell_settings_text(c).removeprefix(" · "),
                        "emulated": bool(ref.get("emulated") or c.get("emulated"))}
            row["key"] = floor_key(c)
            try:
                row["metrics"] = paired_metrics(
                    ref_rows, table.quality[(c["run_id"], c["cell_id"])].pair_rows)
                row["result"] = row["metrics"]["accuracy"]
            except HarnessError as e:  # e.g. duplicate item ids: shown, not hidden
                row["result"], row["metrics"], row["error"] = None, {}, str(e)
            row["verdicts"] = [verdict_text(c["level"], ref["level"], m, r)
                               for m, r in row["metrics"].items()]
            out.append(row)
    return out


def paired_metrics(ref_rows: list[Row], rows: list[Row]) -> dict[str, Any]:
    """Per PAIRED_METRICS entry: compare_labels of the reference's rows against the level's.

    Hallucination among attempted answers pairs only the items both levels answered (neither
    abstained); unscorable is tested only when some answer of either level has that label.
    """
    from ..workloads.quality.compare import compare_labels
    out: dict[str, Any] = {}
    for metric, label, attempted_only in PAIRED_METRICS:
        if metric == "unscorable_rate" and not any(r.get("label") == label for r in (*ref_rows, *rows)):
            continue
        a, b = ref_rows, rows
        if attempted_only:
            a = [r for r in a if r.get("label") != ABSTAINED]
            b = [r for r in b if r.get("label") != ABSTAINED]
        out[metric] = compare_labels(a, b, outcome=label)
    return out


def fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def verdict_text(level: str, reference: str, metric: str, r: Any) -> str:
    """'Q2_K: accuracy lower than Q4_K_M, p = 0.004' (significant at QUALITY_FLOOR_ALPHA),
    else 'not significantly different'; r is a PairedLabels (reference = A, level = B)."""
    name = VERDICT_NAMES.get(metric, metric)
    where = " (items both answered: 0)" if r.n_pairs == 0 else (
        f" ({r.n_pairs} items both answered)" if metric == "hallucination_rate_attempted" else "")
    if r.n_pairs and r.mcnemar_p < QUALITY_FLOOR_ALPHA and r.rate_b != r.rate_a:
        word = "higher" if r.rate_b > r.rate_a else "lower"
        return f"{level}: {name} {word} than {reference}, {fmt_p(r.mcnemar_p)}{where}"
    return f"{level}: {name} not significantly different from {reference}, {fmt_p(r.mcnemar_p)}{where}"


def quality_floor_failures(table: ResultsTable, reference_level: str | None = None) -> dict[tuple, list[str]]:
    """floor_key -> reasons, for configurations whose accuracy is significantly below the
    reference level's on some labelled quality workload (the default quality floor of "best")."""
    out: dict[tuple, list[str]] = {}
    for t in paired_tests(table, reference_level):
        r = t.get("result")
        if r is None or not r.n_pairs:
            continue
        if r.mcnemar_p < QUALITY_FLOOR_ALPHA and r.rate_b < r.rate_a:
            out.setdefault(t["key"], []).append(
                f"accuracy below {t['reference']} on {t['workload']} ({fmt_p(r.mcnemar_p)})")
    return out


def relpath(target: Path, start_dir: Path) -> str:
    """A relative link (POSIX separators) so the report and its runs can move together."""
    return Path(os.path.relpath(target, start_dir)).as_posix()
