"""Typed records: validation when written, lean repetitions, v1 runs still read, generated docs."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import metrics as registry
from harness import records
from harness.launcher import summarize_cell
from harness.records import (CELL_SUMMARY, REPETITION, CellFailed, CellKey, CellSummary,
                             RecordError, Repetition, make_record, split_cell_fields)
from harness.store import RunWriter, dumps, load_run, read_jsonl

REPO = Path(__file__).resolve().parents[2]
V1_RUNS = [REPO / "tests/fixtures/budgets/ci-run-v1",
           *sorted(p for p in (REPO / "tests/fixtures/results").iterdir() if (p / "manifest.json").exists())]
KEY = CellKey("gemma3-270m", "Q4_K_M", "llama_cpp", "linux-generic", None, "chat")


def _v1_repetition() -> dict:
    """A real schema-1 repetition record (CI run of the default model, 2026-11-23)."""
    rows, _ = read_jsonl(V1_RUNS[0] / "records.jsonl")
    return next(r for r in rows if r["record_type"] == REPETITION)


def test_a_repetition_of_the_default_model_is_at_most_1_kib():
    v1 = _v1_repetition()
    assert len(dumps(v1).encode()) > 3500  # what schema 1 wrote (this older run: no compression)
    values = {k: v for k, v in v1.items() if k not in (
        "schema_version", "record_type", "run_id", "cell_id", "attempt", "repetition",
        *records.DIMENSIONS, "swept_settings",
        "output_text", "stop_reason", "output_tokens")}  # outputs/<cell>.jsonl (cell.py _outputs)
    per_cell, measured = split_cell_fields(values)
    rec = Repetition(v1["cell_id"], v1["attempt"], v1["repetition"], measured).to_dict()
    assert len(dumps(rec).encode()) <= 1024
    assert {"compression", "runtime_info", "energy_notes", "model_sha256", "load_time_s",
            "energy_method", "carbon_source"} <= set(per_cell)
    assert {"ttft_s", "decode_tokens_per_s", "energy_gross_j", "peak_rss_bytes", "phases",
            "energy_valid"} <= set(rec)
    assert "energy_invalid_reason" not in rec and "warnings" not in rec  # null / empty: left out


@pytest.mark.parametrize("bad, message", [
    ({"ttft_s": "fast"}, "metric 'ttft_s' must be a number or null"),
    ({"decode_tokens_per_s": True}, "metric 'decode_tokens_per_s' must be a number or null"),
    ({"accuracy_ci95_low": "0.1"}, "metric 'accuracy_ci95_low'"),
    ({"phases": [1, 2]}, "'phases' must be object"),
    ({"energy_valid": 1}, "'energy_valid' must be boolean"),
    ({"sample_count": 2.5}, "'sample_count' must be integer"),
])
def test_a_wrong_repetition_fails_where_it_is_built(bad, message):
    with pytest.raises(RecordError, match=message):
        Repetition("abc", "a1", 0, {"ttft_s": 0.1, **bad})


def test_records_need_their_dimensions_and_known_types():
    with pytest.raises(RecordError, match="required field 'model' is missing"):
        records.validate({"schema_version": 2, "record_type": "cell_failed", "run_id": "r",
                          "cell_id": "c"}, complete=False)
    with pytest.raises(RecordError, match="'model' must be string, got NoneType"):
        make_record(CELL_SUMMARY, "run", CellKey(None, "Q4", "llama_cpp", "d", None, "w"))
    with pytest.raises(RecordError, match="'power_mode' must be string or null"):
        make_record(CELL_SUMMARY, "run", CellKey("m", "Q4", "llama_cpp", "d", 3, "w"))
    with pytest.raises(RecordError, match=r"metrics\['ttft_s'\]"):
        CellSummary("run", KEY, "a1", 1, 0, {"ttft_s": {"mean": "x"}})
    with pytest.raises(RecordError, match="'exit_code' must be integer or null"):
        CellFailed("run", KEY, "a1", "boom", "crash", "1", "", 0, 1.0)
    with pytest.raises(RecordError, match="'n_repetitions' must be integer"):
        CellSummary("run", KEY, "a1", 2.0, 0, {})
    with pytest.raises(ValueError, match="unknown record type"):
        make_record("summary", "run", KEY)


def test_v1_runs_load_report_and_check(tmp_path):
    from harness.budgets import check_budgets, load_budgets
    from harness.report.tables import load_results

    for path in V1_RUNS:
        run = load_run(path)
        assert {r["schema_version"] for r in run.records} == {1}
        assert run.repetitions and run.summaries
        assert all(r["model"] and r["cell_id"] for r in run.repetitions)  # as written
    table = load_results(V1_RUNS[1:])
    gen = [c for c in table.cells if c["workload_kind"] == "generation"]
    assert gen and all(c["decode_tokens_per_s"] > 0 and c["energy_method"] for c in gen)
    path = tmp_path / "b.yaml"
    path.write_text("budgets:\n  - {name: all, max: {ttft_s: 60, load_time_s: 60, co2e_g: 1},"
                    " min: {decode_tokens_per_s: 0.001, tokens_per_j: 0.0001}}\n")
    verdicts = check_budgets(load_run(V1_RUNS[0]), load_budgets(path))
    assert {v.metric for v in verdicts} == {"ttft_s", "load_time_s", "co2e_g", "decode_tokens_per_s",
                                            "tokens_per_j"}
    assert all(v.status == "pass" for v in verdicts), verdicts


def _payload(kind: str = "generation", warmup: int = 1) -> SimpleNamespace:
    workload = SimpleNamespace(kind=kind, warmup=warmup)
    settings = SimpleNamespace(n_threads=2, n_threads_batch=None, n_batch=64, n_ctx=256)
    return SimpleNamespace(run_id="run-1", attempt="a1", emulated=False, threads=None,
                           settings=settings, cell=SimpleNamespace(key=KEY, workload=workload))


def _lean_reps(values: list[dict]) -> list[dict]:
    return [Repetition(KEY.cell_id, "a1", i, v).to_dict() for i, v in enumerate(values)]


def test_summaries_cover_exactly_the_registry_metrics():
    reps = _lean_reps([{"ttft_s": 0.10, "decode_tokens_per_s": 20.0, "sample_count": 60,
                        "accuracy": 0.5, "accuracy_ci95_low": 0.3, "accuracy_ci95_high": 0.7,
                        "window_start_monotonic_s": 1638.0, "n_threads": 2, "my_count": 3},
                       {"ttft_s": 0.20, "decode_tokens_per_s": 20.2, "sample_count": 61,
                        "accuracy": 0.5, "accuracy_ci95_low": 0.3, "accuracy_ci95_high": 0.7,
                        "window_start_monotonic_s": 1640.0, "n_threads": 2, "my_count": 4}])
    constants = {"load_time_s": 1.5, "baseline_power_w": 7.9, "energy_method": "estimated",
                 "compression": {"level": "Q4_K_M"}}
    s = summarize_cell(_payload(), reps, {"throttled": False}, constants)
    records.validate(s)
    assert set(s["metrics"]) == {"ttft_s", "decode_tokens_per_s", "accuracy", "accuracy_ci95_low",
                                 "accuracy_ci95_high", "load_time_s", "baseline_power_w"}
    assert s["metrics"]["load_time_s"]["n"] == 1  # measured once per cell
    assert s["metrics"]["ttft_s"]["n"] == 2
    assert s["unstable"] == ["ttft_s"]  # timing 0.1 vs 0.2: flagged; accuracy is not checked
    assert s["compression"] == {"level": "Q4_K_M"} and s["energy_method"] == "estimated"
    assert s["n_threads"] == 2 and s["workload_kind"] == "generation"


def test_unstable_follows_the_registry_flag():
    reps = _lean_reps([{"accuracy": 0.2}, {"accuracy": 0.8}, {"tokens_out": 4}, {"tokens_out": 64}])
    s = summarize_cell(_payload(kind="closed_book"), reps, {})
    assert not registry.get("accuracy").unstable_check and not registry.get("tokens_out").unstable_check
    assert s["unstable"] == []


def test_v2_run_keeps_constants_once_and_load_run_puts_them_back(tmp_path):
    w = RunWriter.create(tmp_path, "run-1")
    w.write_manifest({"schema_version": 2, "run_id": "run-1"})
    reps = _lean_reps([{"ttft_s": 0.1, "energy_gross_j": 2.0}, {"ttft_s": 0.11, "energy_gross_j": 2.1}])
    for r in reps:
        w.append(r)
    constants = {"energy_method": "measured", "energy_sensor": "rapl", "load_time_s": 1.0,
                 "output_tokens": [1, 2, 3], "compression": {"kind": "source"}}
    w.append(summarize_cell(_payload(), reps, {}, constants))
    w.append_outputs(KEY.cell_id, [{"attempt": "a1", "repetition": 0, "output_tokens": [1, 2, 3]}])
    stored = [json.loads(x) for x in (w.dir / "records.jsonl").read_text().splitlines()]
    assert sum("compression" in r for r in stored) == 1 and "model" not in stored[0]

    run = load_run(w.dir)
    assert [r["schema_version"] for r in run.records] == [2, 2, 2]
    rep = run.repetitions[0]
    assert (rep["model"], rep["level"], rep["energy_sensor"], rep["output_tokens"]) == \
        ("gemma3-270m", "Q4_K_M", "rapl", [1, 2, 3])
    assert rep["load_time_s"] == 1.0 and rep["run_id"] == "run-1" and rep["warnings"] == []
    assert run.summaries[0]["metrics"]["load_time_s"] == {**run.summaries[0]["metrics"]["load_time_s"],
                                                          "mean": 1.0, "n": 1}  # measured once
    lean = load_run(w.dir, expand=False).repetitions[0]
    assert not {"model", "run_id", "load_time_s", "warnings"} & set(lean)
    assert lean["cell_id"] == KEY.cell_id

    from harness.budgets.cells import cells_of
    from harness.store import read_outputs

    cell = cells_of(run)[0]
    assert (cell.stats("load_time_s").mean, cell.stats("load_time_s").n) == (1.0, 1)  # the summary's
    assert cell.stats("ttft_s").n == 2
    assert cell.energy_provenance() == ("measured", "measured by rapl")
    assert read_outputs(w.dir, KEY.cell_id, "a1")[0]["output_tokens"] == [1, 2, 3]


def test_other_schema_versions_are_refused(tmp_path):
    from harness.errors import HarnessError

    w = RunWriter.create(tmp_path, "run-1")
    w.write_manifest({"schema_version": 2})
    w.append({**make_record(CELL_SUMMARY, "run-1", KEY, attempt="a"), "schema_version": 3})
    with pytest.raises(HarnessError, match="schema_version 3 is not one this harness reads"):
        load_run(w.dir)


def test_committed_records_reference_is_generated_and_current():
    md = (REPO / "docs/records.md").read_text()
    assert md == records.markdown(), "docs/records.md is stale: python -m harness.records --markdown > docs/records.md"
    schema = (REPO / "docs/records.schema.json").read_text()
    assert schema == records.schema_text(), \
        "docs/records.schema.json is stale: python -m harness.records --schema > docs/records.schema.json"
    for name in registry.METRICS:
        assert f"`{name}`" in md


def _check(rec: dict, schema: dict) -> None:
    """The subset of JSON Schema the generated file uses: oneOf by const, required, types."""
    variant = next(v for v in schema["oneOf"] if v["properties"]["record_type"]["const"] == rec["record_type"])
    missing = [f for f in variant["required"] if f not in rec]
    assert not missing, (rec["record_type"], missing)
    names = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "object": dict, "array": list, "null": type(None)}
    for k, v in rec.items():
        prop = variant["properties"].get(k)
        if prop is None or "type" not in prop:
            continue
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert any(isinstance(v, names[t]) and not (t in ("integer", "number") and isinstance(v, bool))
                   for t in types), (k, v, types)


def test_the_json_schema_describes_written_records(tmp_path):
    schema = records.json_schema()
    reps = _lean_reps([{"ttft_s": 0.1, "phases": {"run": [0.0, 1.0]}, "energy_valid": True}])
    summary = summarize_cell(_payload(), reps, {}, {"energy_method": "measured"})
    failed = CellFailed("run-1", KEY, "a1", "boom", "crash", -9, "tb", 0, 2.0).to_dict()
    for rec in [*reps, summary, failed]:
        _check(json.loads(dumps(rec)), schema)
