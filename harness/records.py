"""Result records: typed, validated when made, one JSON object per line on disk.

Three record types: `repetition` (one measured repetition), `cell_summary` (a finished cell:
statistics and the cell's constants) and `cell_failed` (a cell that did not finish). The typed
records below are how they are made; each checks its fields against the tables in this module
(field types, metric values numbers or null, the dimensions a cell needs) so a wrong record fails
where it is built, not in a report weeks later. On disk they stay plain JSON lines (dicts), and
docs/records.md plus docs/records.schema.json are generated from these tables and harness.metrics
(`python -m harness.records --markdown` / `--schema`).

SCHEMA_VERSION history (bump on any change a reader must know about):
  1 (2026-11): first version: repetition, cell_summary, cell_failed; every record carried the
    dimensions, and every repetition also repeated the cell's constants (model fields,
    compression, runtime_info, energy notes, outputs, ...): about 5 KB a repetition.
  2 (2026-12): lean repetitions (<= 1 KB): a repetition carries cell_id, attempt, its number
    and what was measured in it (run_id too is the run's constant); the dimensions and per-cell constants are written once,
    on the cell_summary / cell_failed (CELL_FIELDS), and `load_run` puts them back on repetitions
    in memory. load_time_s, energy_load_j, rss_after_load_bytes and baseline_power_w (measured
    once per cell) moved to the summary (statistics with n=1); energy_invalid_reason and warnings are written only when set. Each repetition's output
    (text, stop reason, token ids) is in outputs/<cell_id>.jsonl; the summary keeps the first's.
    Records are validated when written. token_agreement is computed by the report, not recorded.
Readers accept versions 1 and 2 and refuse others rather than guess.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from . import metrics as registry

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = frozenset({1, 2})

REPETITION = "repetition"
CELL_SUMMARY = "cell_summary"
CELL_FAILED = "cell_failed"
RECORD_TYPES = frozenset({REPETITION, CELL_SUMMARY, CELL_FAILED})

# The dimensions that identify a cell; summaries and failures carry them as separate fields.
DIMENSIONS = ("model", "level", "runtime", "device", "power_mode", "workload")


class RecordError(ValueError):
    """A record that does not match its type: a bug in the code that built it."""


@dataclass(frozen=True)
class CellKey:
    """The identity of one cell of the matrix."""

    model: str
    level: str
    runtime: str
    device: str
    power_mode: str | None
    workload: str
    # Runtime settings the matrix sweeps (`runtime: {n_threads: [1, 2, 4]}`), as sorted
    # (name, value) pairs; empty when nothing is swept. Part of the identity, so each setting of
    # a sweep is its own cell; records carry it as the `swept_settings` mapping.
    settings: tuple[tuple[str, int], ...] = ()

    @property
    def cell_id(self) -> str:
        """A short stable hash of the dimensions: a file-name handle, never parsed back.

        Without swept settings the hash is the one schema 1 used, so older runs resume.
        """
        dims: list[Any] = [getattr(self, d) for d in DIMENSIONS]
        if self.settings:
            dims.append(dict(self.settings))
        blob = json.dumps(dims, separators=(",", ":"), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def fields(self) -> dict[str, Any]:
        return ({d: getattr(self, d) for d in DIMENSIONS}
                | {"swept_settings": dict(self.settings), "cell_id": self.cell_id})

    def label(self) -> str:
        """Human-readable, for progress lines and tables (not a key)."""
        mode = f" [{self.power_mode}]" if self.power_mode else ""
        sweep = "".join(f" {k}={v}" for k, v in self.settings)
        return f"{self.model} {self.level} ({self.runtime}) on {self.device}{mode} / {self.workload}{sweep}"

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "CellKey":
        swept = rec.get("swept_settings") or {}
        settings = tuple(sorted((str(k), v) for k, v in swept.items())) if isinstance(swept, dict) else ()
        return cls(**{d: rec.get(d) for d in DIMENSIONS}, settings=settings)


# --------------------------------------------------------------------------------------------
# Field tables: the single description of every non-metric field (metrics: harness.metrics).


@dataclass(frozen=True)
class Field:
    """A record field: its JSON types (JSON Schema names) and what it means."""

    name: str
    types: tuple[str, ...]
    doc: str
    required: bool = False


def _f(name: str, types: str, doc: str, required: bool = False) -> Field:
    return Field(name, tuple(types.split("|")), doc, required)


ENVELOPE = (
    _f("schema_version", "integer", "Record schema version (this harness writes 2).", True),
    _f("record_type", "string", "repetition | cell_summary | cell_failed.", True),
    _f("run_id", "string", "The run directory's name (on disk, cell records only since schema "
       "2: load_run puts it on repetitions).", True),
    _f("cell_id", "string", "Short hash of the dimensions and swept settings: joins a "
       "repetition to its cell.", True),
    _f("attempt", "string|null", "Id of this attempt at the cell (a resumed cell gets a new "
       "one); the final record's attempt selects the repetitions that count."),
)
KEY_FIELDS = (
    _f("model", "string", "Model name from the matrix.", True),
    _f("level", "string", "Compression level (quant type, or a named recipe).", True),
    _f("runtime", "string", "llama_cpp | onnx | openai_http (offloaded to a server).", True),
    _f("device", "string", "Device profile the cell ran as.", True),
    _f("power_mode", "string|null", "Power mode asked for; null: left as it was.", True),
    _f("workload", "string", "Workload name from the matrix.", True),
    _f("swept_settings", "object", "Runtime settings the matrix sweeps, as set for this cell."),
)
REPETITION_FIELDS = (
    _f("repetition", "integer", "0-based number of the measured repetition.", True),
    _f("phases", "object", "Phase name -> [start_s, end_s] since the trace start (energy "
       "accounting windows: prefill/decode, or run)."),
    _f("window_start_monotonic_s", "number", "Start of the measured window on the cell "
       "process's monotonic clock (aligns the window with the scripted test sensor)."),
    _f("sample_rate_hz", "number|null", "Power samples per second achieved in the window."),
    _f("sample_count", "integer", "Power samples in the window."),
    _f("sample_gaps", "integer", "Sampling gaps detected in the window."),
    _f("energy_valid", "boolean", "False when the trace could not support energy figures "
       "(they are then null)."),
    _f("energy_invalid_reason", "string|null", "Why energy is invalid (written only then)."),
    _f("energy_scripted_true_j", "number|null", "Scripted test sensor only: the analytic energy."),
    _f("warnings", "array", "Warnings of this repetition (written only when there are some)."),
    _f("battery_note", "string|null", "Soak: the battery figures' resolution, or why there are none."),
    _f("server_requests", "integer", "Offloaded cells: requests sent to the server in the window."),
    _f("server_energy_valid", "boolean", "Offloaded cells: whether the server's energy could be "
       "had for the window (false: server_energy_j is null)."),
    _f("server_energy_invalid_reason", "string", "Why the server's energy is missing."),
    _f("server_window_uncertainty_s", "number", "Clock-offset uncertainty at each edge of the "
       "window sent to the meter."),
    _f("server_sample_count", "integer|null", "Meter samples inside the window."),
    _f("server_energy_scripted_true_j", "number|null", "Meter with the scripted test sensor: "
       "the analytic energy of the mapped window."),
)
CELL_FIELDS = (
    _f("workload_kind", "string", "generation | llama_bench | a quality kind."),
    _f("emulated", "boolean", "True when the device profile was emulated on another host."),
    _f("emulation", "object|null", "The limits applied for an emulated profile."),
    _f("prompt_prefix_reuse", "boolean", "Whether the KV cache of a shared prompt prefix was "
       "reused between items (quality kinds); llama.cpp then loads the plain weight layout "
       "(runtime_info.weight_layout)."),
    _f("energy_method", "string|null", "measured | estimated | scripted."),
    _f("energy_sensor", "string|null", "The sensor (or estimator) the energy figures came from."),
    _f("energy_model", "string|null", "Estimator model, for estimated energy."),
    _f("energy_coverage", "string|null", "What the sensor covers (rails, package, board)."),
    _f("energy_notes", "array", "How the sensor or estimate works on this host."),
    _f("energy_fallback_reason", "string|null", "Why `auto` fell back to an estimate."),
    _f("energy_estimate", "object|null", "The estimate's parameters (TDP, idle, source)."),
    _f("energy_calibration", "object|null", "The sensor calibration applied (file, reference, "
       "gain, offset, their standard errors, date, host); null: none."),
    _f("energy_accuracy", "object|null", "The sensor's stated accuracy (gain and offset "
       "limits, refresh interval) with its source; null: the sensor states none."),
    _f("carbon_intensity_g_per_kwh", "number|null", "Grid carbon intensity used for co2e_g."),
    _f("carbon_source", "string|null", "Where the carbon intensity comes from."),
    _f("runtime_info", "object", "Runtime version and build (backend.info())."),
    _f("n_threads", "integer|null", "Threads used for decoding."),
    _f("n_threads_batch", "integer|null", "Threads used for prompt processing."),
    _f("n_batch", "integer|null", "Logical batch size."),
    _f("n_ctx", "integer|null", "Context length."),
    _f("threads_source", "string|null", "How n_threads was chosen (harness.devices.threads)."),
    _f("model_sha256", "string|null", "SHA-256 of the artifact run."),
    _f("model_size_bytes", "integer|null", "Artifact size."),
    _f("model_params", "integer|null", "Parameter count."),
    _f("quant_type", "string|null", "Quantisation type of the artifact."),
    _f("bits_per_weight", "number|null", "Artifact bits / parameters."),
    _f("model_architecture", "string|null", "Architecture from the GGUF header."),
    _f("model_context_length", "integer|null", "Trained context length."),
    _f("model_source", "string|null", "Where the model came from (package, path)."),
    _f("compression", "object|null", "How the level was built (recipe, tensor types, source)."),
    _f("source_quant_type", "string|null", "Quant type of the file the level was made from."),
    _f("memory_bandwidth_bytes_per_s", "number|null", "Measured memory read bandwidth (roofline)."),
    _f("decode_bytes_per_token", "number|null", "Bytes read per decoded token (roofline)."),
    _f("llama_bench_test", "string|null", "llama_bench test name (pp512, tg128, ...)."),
    _f("samples_file", "string|null", "Per-item audit rows, relative to the run directory."),
    _f("outputs_file", "string|null", "Per-repetition generation outputs, relative to the run."),
    _f("output_text", "string|null", "Generated text of the first measured repetition."),
    _f("stop_reason", "string|null", "length | stop | eos, of the first measured repetition."),
    _f("output_tokens", "array|null", "Generated token ids of the first measured repetition."),
    _f("cooldown_warning", "string|null", "The device did not cool down before the cell."),
    _f("offload", "object|null", "Offloaded cells (runtime openai_http): url, model, api, the "
       "server energy's provenance (method, sensor, coverage, meter, clock_offset) or estimate "
       "(J/token, source), the server's grid intensity and its source, how tokens were counted."),
)
# Measured once per cell (load, idle baseline); in summary["metrics"] with n=1 too.
CELL_MEASUREMENTS = ("load_time_s", "energy_load_j", "rss_after_load_bytes", "baseline_power_w",
                     "reference_rss_bytes")
SUMMARY_FIELDS = (
    _f("status", "string", "ok.", True),
    _f("n_repetitions", "integer", "Measured repetitions.", True),
    _f("warmup", "integer", "Warm-up runs before the repetitions (not recorded)."),
    _f("metrics", "object", "Metric name -> {mean, median, p90, stdev, ci95_low, ci95_high, n} "
       "over the repetitions (harness.stats.summarize), for each summarised metric recorded.", True),
    _f("unstable", "array", "Metrics whose stdev exceeds 10% of their mean.", True),
    _f("warnings", "array", "Warnings of the cell.", True),
    _f("throttled", "boolean|null", "Throttling seen between the states before and after."),
    _f("throttled_reason", "string|null", "What throttled."),
    _f("state_before", "object|null", "Device state (clocks, temperatures) before the cell."),
    _f("state_after", "object|null", "Device state after the cell."),
    _f("power_mode_actual", "string|null", "Power mode read back from the device."),
)
FAILED_FIELDS = (
    _f("status", "string", "failed.", True),
    _f("reason", "string", "What went wrong, in words a person can act on.", True),
    _f("failure_kind", "string", "error | crash | oom | timeout | does_not_fit | interrupted.", True),
    _f("exit_code", "integer|null", "Exit code of the cell process (negative: signal)."),
    _f("stderr_tail", "string", "Last 4000 characters of the traceback / stderr."),
    _f("n_repetitions_done", "integer", "Repetitions recorded before the failure."),
    _f("elapsed_s", "number", "Wall time of the attempt."),
)

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list, tuple), "null": (type(None),)}


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _PY_TYPES[t]):
            return True
    return False


def _metric_names() -> frozenset[str]:
    names = set(registry.METRICS)
    return frozenset(names | set(registry.interval_fields(names)))


def _is_metric_value(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def validate(rec: Mapping[str, Any], complete: bool = True) -> None:
    """Raise RecordError when `rec` does not match its record type's tables (unknown fields pass).

    `complete=False` (hand-made records of tests and fixtures) requires only the envelope and,
    for cell records, the dimensions; the types of every field present are checked either way.
    """
    rtype = rec.get("record_type")
    if rtype not in RECORD_TYPES:
        raise RecordError(f"unknown record type {rtype!r}")
    fields = fields_of(rtype)
    minimal = {f.name for f in ENVELOPE + KEY_FIELDS}
    for f in fields:
        if f.name not in rec:
            if f.required and (complete or f.name in minimal):
                raise RecordError(f"{rtype} record: required field '{f.name}' is missing")
            continue
        if not _type_ok(rec[f.name], f.types):
            raise RecordError(f"{rtype} record: '{f.name}' must be {' or '.join(f.types)}, "
                              f"got {type(rec[f.name]).__name__} {rec[f.name]!r:.60}")
    known = {f.name for f in fields}
    for name in _metric_names() & set(rec) - known:
        if not _is_metric_value(rec[name]):
            raise RecordError(f"{rtype} record: metric '{name}' must be a number or null, got "
                              f"{type(rec[name]).__name__} {rec[name]!r:.60}")
    if rtype == CELL_SUMMARY:
        for name, stats in (rec.get("metrics") or {}).items():
            if not isinstance(stats, dict) or not all(_is_metric_value(v) for v in stats.values()):
                raise RecordError(f"cell_summary record: metrics['{name}'] must map statistic "
                                  "names to numbers or null")


def fields_of(record_type: str) -> tuple[Field, ...]:
    """The field table of a record type (envelope first), as the docs and JSON Schema list it."""
    key = tuple(replace_required(f, record_type != REPETITION) for f in KEY_FIELDS)
    cell = CELL_FIELDS
    if record_type == REPETITION:
        # run_id is the run's constant (manifest, cell records); v1 repetitions (and hand-made
        # test runs) may still carry it, the key and the cell constants
        envelope = tuple(replace_required(f, f.required and f.name != "run_id") for f in ENVELOPE)
        return envelope + REPETITION_FIELDS + key + cell
    if record_type == CELL_SUMMARY:
        return ENVELOPE + key + SUMMARY_FIELDS + cell
    return ENVELOPE + key + FAILED_FIELDS + cell


def replace_required(f: Field, required: bool) -> Field:
    return Field(f.name, f.types, f.doc, required)


# --------------------------------------------------------------------------------------------
# Typed records


def _envelope(record_type: str, run_id: str | None, cell_id: str,
              attempt: str | None) -> dict[str, Any]:
    head = {"schema_version": SCHEMA_VERSION, "record_type": record_type}
    return head | ({"run_id": run_id} if run_id is not None else {}) | {"cell_id": cell_id,
                                                                         "attempt": attempt}


@dataclass(frozen=True)
class Repetition:
    """One measured repetition: what was measured in it, nothing its cell already says.

    `measured` holds metric values (harness.metrics names and `<m>_ci95_low/high`) and the
    per-repetition facts of REPETITION_FIELDS (phases, sampling, energy validity) and workload
    extras; None-valued `energy_invalid_reason` and empty `warnings` are left out.
    """

    record_type: ClassVar[str] = REPETITION
    cell_id: str
    attempt: str | None
    repetition: int
    measured: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        out = _envelope(REPETITION, None, self.cell_id, self.attempt)
        out["repetition"] = self.repetition
        for k, v in self.measured.items():
            if (k == "energy_invalid_reason" and v is None) or (k == "warnings" and not v):
                continue
            out[k] = v
        return out


@dataclass(frozen=True)
class CellSummary:
    """A finished cell: statistics per metric, flags, and the cell's constants (once)."""

    record_type: ClassVar[str] = CELL_SUMMARY
    run_id: str
    key: CellKey
    attempt: str | None
    n_repetitions: int
    warmup: int
    metrics: Mapping[str, Mapping[str, float | int | None]]
    unstable: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    cell: Mapping[str, Any] = field(default_factory=dict)  # CELL_FIELDS and CELL_MEASUREMENTS
    state: Mapping[str, Any] = field(default_factory=dict)  # throttled, state_before/after, ...

    def __post_init__(self) -> None:
        validate(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {**_envelope(CELL_SUMMARY, self.run_id, self.key.cell_id, self.attempt),
                **self.key.fields(), "status": "ok", "n_repetitions": self.n_repetitions,
                "warmup": self.warmup, "metrics": {k: dict(v) for k, v in self.metrics.items()},
                "unstable": list(self.unstable), "warnings": list(self.warnings),
                **self.cell, **self.state}


@dataclass(frozen=True)
class CellFailed:
    """A cell that did not finish, with a reason a person can act on."""

    record_type: ClassVar[str] = CELL_FAILED
    run_id: str
    key: CellKey
    attempt: str | None
    reason: str
    failure_kind: str
    exit_code: int | None
    stderr_tail: str
    n_repetitions_done: int
    elapsed_s: float
    cell: Mapping[str, Any] = field(default_factory=dict)  # the constants known when it failed

    def __post_init__(self) -> None:
        validate(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {**_envelope(CELL_FAILED, self.run_id, self.key.cell_id, self.attempt),
                **self.key.fields(), **self.cell, "status": "failed", "reason": self.reason,
                "failure_kind": self.failure_kind, "exit_code": self.exit_code,
                "stderr_tail": self.stderr_tail, "n_repetitions_done": self.n_repetitions_done,
                "elapsed_s": self.elapsed_s}


def make_record(record_type: str, run_id: str, key: CellKey, **fields: Any) -> dict[str, Any]:
    """A validated record of any type with the key's dimensions (tests, fixtures, hand-made runs).

    The harness itself writes through Repetition / CellSummary / CellFailed.
    """
    if record_type not in RECORD_TYPES:
        raise ValueError(f"unknown record type {record_type!r}")
    rec = {"schema_version": SCHEMA_VERSION, "record_type": record_type, "run_id": run_id,
           **key.fields(), **fields}
    validate(rec, complete=False)
    return rec


def split_cell_fields(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-cell constants, the rest): what goes on the summary vs on each repetition."""
    cell_names = {f.name for f in CELL_FIELDS} | set(CELL_MEASUREMENTS)
    cell = {k: v for k, v in values.items() if k in cell_names}
    return cell, {k: v for k, v in values.items() if k not in cell_names}


# Fields load_run puts back on v2 repetitions from their cell's final record (in memory).
EXPANDED_ON_REPETITIONS = ("run_id", *(f.name for f in KEY_FIELDS + CELL_FIELDS), *CELL_MEASUREMENTS)


def expand_repetition(rep: dict[str, Any], final: Mapping[str, Any]) -> dict[str, Any]:
    """A v2 repetition with its cell's dimensions and constants, as v1 repetitions had them.

    The values are the final record's own objects (shared, not copied): 100,000 repetitions cost
    their dicts, not 100,000 copies of a compression recipe.
    """
    if rep.get("schema_version") == 1:
        return rep
    out = {k: final[k] for k in EXPANDED_ON_REPETITIONS if k in final}
    out.update(warnings=[], energy_invalid_reason=None)  # left out on disk when empty / valid
    out.update(rep)
    return out


# --------------------------------------------------------------------------------------------
# Generated reference (docs/records.md) and JSON Schema (docs/records.schema.json)


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one line of records.jsonl, for other tools."""
    metric_props = {n: {"type": ["number", "null"], "description": f"{m.doc} [{m.unit}]"}
                    for n, m in registry.METRICS.items()}
    interval = {"type": ["number", "null"], "description": "95% interval bound over items."}
    stats = {"type": "object", "additionalProperties": {"type": ["number", "null"]},
             "description": "mean, median, p90, stdev, ci95_low, ci95_high, n"}
    variants = []
    for rtype in (REPETITION, CELL_SUMMARY, CELL_FAILED):
        fields = fields_of(rtype)
        props: dict[str, Any] = {}
        if rtype == REPETITION:
            props.update(metric_props)
        props.update({f.name: {"type": list(f.types) if len(f.types) > 1 else f.types[0],
                               "description": f.doc} for f in fields})
        props["record_type"] = {"const": rtype}
        if rtype == CELL_SUMMARY:
            props["metrics"] = {"type": "object", "additionalProperties": stats,
                                "description": dict((f.name, f.doc) for f in fields)["metrics"]}
        variant: dict[str, Any] = {"title": rtype, "type": "object", "properties": props,
                                   "required": [f.name for f in fields if f.required]}
        if rtype == REPETITION:
            variant["patternProperties"] = {"_ci95_(low|high)$": interval}
        variants.append(variant)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://github.com/edgebench/edgebench/docs/records.schema.json",
            "title": f"edgebench record (records.jsonl line), schema_version {SCHEMA_VERSION}",
            "description": "Generated by `python -m harness.records --schema`; see docs/records.md.",
            "oneOf": variants}


def markdown() -> str:
    """The records reference, generated from the field tables and the metric registry."""
    out = ["# Records reference", "",
           "<!-- Generated by `python -m harness.records --markdown > docs/records.md`; do not "
           "edit. tests/core/test_core_records.py fails when this file is stale. -->", "",
           f"Schema version {SCHEMA_VERSION}. A run directory holds `manifest.json`, "
           "`records.jsonl` (one JSON object per line), `traces/<cell_id>.csv` (power samples), "
           "`samples/<cell_id>.jsonl` (per-item quality rows) and `outputs/<cell_id>.jsonl` "
           "(per-repetition generation outputs). Values are SI units named in the field "
           "(`_s`, `_j`, `_w`, `_bytes`, `_per_s`); NaN and infinity are written as null. "
           "A JSON Schema of one line is in [records.schema.json](records.schema.json).", "",
           "Read runs with `harness.store.load_run`: it keeps the final attempt of each cell and "
           "puts each cell's dimensions and constants back on its repetitions (schema 2 writes "
           "them once, on the `cell_summary` / `cell_failed`; join on `cell_id` when reading the "
           "JSON lines yourself). Schema 1 runs load as they are.", ""]
    out += _history()
    out += _field_table("Every record", ENVELOPE)
    out += _field_table("Dimensions (cell_summary, cell_failed)", KEY_FIELDS)
    out += _field_table("repetition: per-repetition facts", REPETITION_FIELDS)
    out += ["Besides these, a repetition carries each metric below that its workload measures "
            "per repetition, and quality rates' per-item intervals as `<metric>_ci95_low` / "
            "`<metric>_ci95_high`.", ""]
    out += _field_table("cell_summary", SUMMARY_FIELDS)
    out += _field_table("Cell constants (cell_summary; cell_failed when known)", CELL_FIELDS)
    out += ["Measured once per cell, on the summary (and in its `metrics`, n=1): "
            + ", ".join(f"`{n}`" for n in CELL_MEASUREMENTS) + ".", ""]
    out += _field_table("cell_failed", FAILED_FIELDS)
    out += _metric_table()
    return "\n".join(out).rstrip() + "\n"


def _history() -> list[str]:
    doc = (__doc__ or "").split("SCHEMA_VERSION history")[1].split("Readers accept")[0]
    lines = [ln.strip() for ln in doc.splitlines()[1:]]
    items, cur = [], ""
    for ln in lines:
        if ln[:1].isdigit():
            if cur:
                items.append(cur)
            cur = "- " + ln
        elif ln:
            cur += " " + ln
    return ["## Schema versions", "", *(items + [cur] if cur else items), ""]


def _field_table(title: str, fields: Iterable[Field]) -> list[str]:
    rows = [f"| `{f.name}` | {' or '.join(f.types)} | {'yes' if f.required else ''} | {f.doc} |"
            for f in fields]
    return [f"## {title}", "", "| field | type | required | meaning |", "|---|---|---|---|",
            *rows, ""]


def _metric_table() -> list[str]:
    out = ["## Metrics (harness/metrics.py)", "",
           "Adding a metric is one entry in `harness/metrics.py`; this table, the summaries, "
           "budgets and the reports follow from it.", "",
           "| metric | unit | better | kind | summarised | budget | meaning |",
           "|---|---|---|---|---|---|---|"]
    for n, m in registry.METRICS.items():
        better = m.better or "-"
        out.append(f"| `{n}` | {m.unit} | {better} | {m.kind} | {'yes' if m.summarised else 'no'} "
                   f"| {' or '.join(f'{x}:' for x in registry.budget_sides(n)) or 'no'} | {m.doc} |")
    return out + [""]


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m harness.records",
                                 description="print the generated records reference or JSON Schema")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--markdown", action="store_true", help="docs/records.md")
    g.add_argument("--schema", action="store_true", help="docs/records.schema.json")
    args = ap.parse_args(argv)
    sys.stdout.write(markdown() if args.markdown else schema_text())
    return 0


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    raise SystemExit(_main())
