"""Results table, best configuration, Pareto fronts, paired tests, conflicts (no rendering)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report import tables
from harness.report.tables import Constraints

from report_runs import HOST, write_run

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results"
JETSON = "2026-11-20T09-00-00Z-jetson"
PI = "2026-11-21T14-30-00Z-pi5"


@pytest.fixture(scope="module")
def table():
    return tables.load_results([FIXTURE])


def _best(table, **constraints):
    configs = tables.configurations(table)
    return {b["device_key"].profile: (b["best"]["level"] if b["best"] else None)
            for b in tables.best_per_device(configs, Constraints.from_dict(constraints))}


def test_fixture_reads_cells_failures_and_torn_line(table):
    assert len(table.cells) == 14  # 4 + 3 levels x (gen + closed-book)
    assert [(f["level"], f["failure_kind"]) for f in table.failures] == [("Q3_K_M", "oom")]
    assert any("torn write" in w and w.startswith(PI) for w in table.warnings)
    assert len(table.traces) == 7 and len(table.quality) == 7


def test_configuration_joins_speed_and_quality_workloads(table):
    rows = {(c["device"], c["level"]): c for c in tables.configurations(table)}
    q4 = rows[("jetson-orin-nano", "Q4_K_M")]
    assert q4["speed_workload"] == "gen" and q4["quality_workload"] == "closed-book"
    assert q4["hallucination_rate"] == pytest.approx(4 / 12)
    # the per-item Wilson interval recorded by the quality workload, not a t-interval over n=1
    assert q4["hallucination_rate_ci95_low"] == pytest.approx(0.1381, abs=1e-4)
    assert q4["energy_per_decode_token_j_ci95_low"] < q4["energy_per_decode_token_j"] \
        < q4["energy_per_decode_token_j_ci95_high"]
    assert q4["energy_method"] == "measured" and q4["energy_sensor"] == "ina3221_hwmon"
    assert rows[("rpi5-8gb", "Q2_K")]["energy_method"] == "estimated"
    assert rows[("rpi5-8gb", "Q2_K")]["emulated"] is True
    assert rows[("jetson-orin-nano", "F16")]["throttled"] is True
    assert rows[("jetson-orin-nano", "F16")]["source_quant_type"] == "Q4_K_M"
    assert rows[("jetson-orin-nano", "Q4_K_M")]["source_quant_type"] is None  # the source itself
    # highest precision first within a device
    assert [c["level"] for c in tables.configurations(table) if c["device"] == "jetson-orin-nano"] \
        == ["F16", "Q8_0", "Q4_K_M", "Q2_K"]


def test_best_configuration_follows_the_constraints(table):
    assert _best(table) == {"jetson-orin-nano": "Q2_K", "rpi5-8gb": "Q2_K"}
    assert _best(table, max_hallucination_rate=0.4) == {"jetson-orin-nano": "Q4_K_M", "rpi5-8gb": "Q4_K_M"}
    # F16 and Q8_0 tie on quality at 25%; Q8_0 spends less energy per token
    assert _best(table, max_hallucination_rate=0.3) == {"jetson-orin-nano": "Q8_0", "rpi5-8gb": "Q8_0"}
    assert _best(table, min_accuracy=0.9) == {"jetson-orin-nano": None, "rpi5-8gb": None}
    assert _best(table, objective="decode_tokens_per_s", max_peak_rss_bytes=500e6) == \
        {"jetson-orin-nano": "Q2_K", "rpi5-8gb": "Q2_K"}


def test_unknown_or_bad_constraints_are_refused():
    with pytest.raises(HarnessError, match="unknown report constraint"):
        Constraints.from_dict({"max_halucination_rate": 0.3})
    with pytest.raises(HarnessError, match="objective"):
        Constraints.from_dict({"objective": "speed"})
    with pytest.raises(HarnessError, match="non-negative"):
        Constraints.from_dict({"max_hallucination_rate": -1})


def test_pareto_mask():
    pts = [(1, 5), (2, 2), (3, 1), (3, 3), (2, 2.5), (4, 1)]
    assert tables.pareto_mask(pts, (True, True)) == [True, True, True, False, False, False]
    # maximise y: (1, 5) dominates everything with x >= 1 and y <= 5
    assert tables.pareto_mask(pts, (True, False)) == [True, False, False, False, False, False]


def test_pareto_points_mark_dominated_configurations(table):
    configs = tables.configurations(table)
    jetson = next(d for d in table.devices() if d.profile == "jetson-orin-nano")
    pts = tables.pareto_points(configs, jetson, "hallucination_rate", "energy_per_decode_token_j", True, True)
    front = {p["label"].split()[1]: p["on_front"] for p in pts}
    # F16 has the same hallucination rate as Q8_0 and costs more energy: dominated
    assert front == {"F16": False, "Q8_0": True, "Q4_K_M": True, "Q2_K": True}


def test_decimate_keeps_extremes_and_caps_points():
    t = [i / 1000 for i in range(10_000)]
    p = [1.0] * 10_000
    p[4321], p[8000] = 9.0, -2.0
    dt, dp = tables.decimate(t, p, max_points=200)
    assert len(dt) <= 200
    assert max(dp) == 9.0 and min(dp) == -2.0
    assert dt == sorted(dt)
    assert tables.decimate([0.0, 1.0], [1.0, 2.0], 200) == ([0.0, 1.0], [1.0, 2.0])


def test_trace_segments_carry_phases(table):
    run_id, cell_id = next(iter(table.traces))
    tr = table.traces[(run_id, cell_id)]
    labels = [s["label"] for s in tr.segments]
    assert labels == ["load", "baseline", "0", "1", "2"]
    assert set(tr.segments[2]["phases"]) == {"prefill", "decode"}
    assert sum(len(s["t_s"]) for s in tr.segments) <= tables.MAX_TRACE_POINTS
    assert tr.n_raw > tables.MAX_TRACE_POINTS


def test_paired_tests_against_the_source_level(table):
    """Q8_0 and F16 were requantized from Q4_K_M: the source itself is the reference."""
    tests = {(t["device_key"].profile, t["level"]): t for t in tables.paired_tests(table)}
    assert {t["reference"] for t in tests.values()} == {"Q4_K_M"}
    r = tests[("jetson-orin-nano", "Q2_K")]["result"]
    # Q4_K_M is wrong on items 0-3, Q2_K on items 0-7: 4 discordant pairs, all one way
    assert (r.n_pairs, r.a_only, r.b_only) == (12, 4, 0)
    assert r.mcnemar_p == pytest.approx(0.125)
    assert len(tests) == 5  # 3 other levels on the Jetson, 2 on the Pi
    chosen = tables.paired_tests(table, reference_level="F16")
    assert {(t["device_key"].profile, t["reference"]) for t in chosen} == \
        {("jetson-orin-nano", "F16"), ("rpi5-8gb", "Q4_K_M")}  # no F16 on the Pi


def test_quality_excerpt_holds_hallucinated_items(table):
    detail = next(d for d in table.quality.values() if d.n_hallucinated == 8)
    assert len(detail.excerpt) == tables.EXCERPT_ITEMS
    assert detail.excerpt[0] == {"id": "cb-000", "question": "What is the capital of France?",
                                 "output": " Lyon", "reference": "Paris"}


def test_same_device_different_hardware_is_refused(tmp_path):
    write_run(tmp_path / "a", "run-a", host=HOST)
    write_run(tmp_path / "b", "run-b", host=HOST | {"cpu_model": "Other CPU", "ram_bytes": 4_000_000_000})
    with pytest.raises(HarnessError, match=r"box-1.*cpu_model: 'Test CPU' vs 'Other CPU'.*ram_bytes"):
        tables.load_results([tmp_path / "a", tmp_path / "b"])
    # another hostname is another device: merged fine
    write_run(tmp_path / "c", "run-c", host=HOST | {"hostname": "box-2", "cpu_model": "Other CPU"})
    assert len(tables.load_results([tmp_path / "a", tmp_path / "c"]).devices()) == 2


def test_same_run_id_with_other_content_is_refused(tmp_path):
    write_run(tmp_path / "a", "run-x", tps=20.0)
    write_run(tmp_path / "b", "run-x", tps=25.0)
    with pytest.raises(HarnessError, match="run_id run-x appears twice with different content"):
        tables.load_results([tmp_path / "a" / "run-x", tmp_path / "b" / "run-x"])


def test_an_identical_copy_of_a_run_is_read_once(tmp_path):
    src = write_run(tmp_path / "a", "run-x")
    shutil.copytree(src, tmp_path / "b" / "run-x")
    t = tables.load_results([tmp_path / "a", tmp_path / "b"])
    assert len(t.cells) == 2
    assert any("given twice" in w for w in t.warnings)


def test_same_cell_in_two_runs_shows_the_later_with_a_warning(tmp_path):
    write_run(tmp_path / "r", "run-1", created="2026-11-22T10:00:00Z", tps=20.0)
    write_run(tmp_path / "r", "run-2", created="2026-11-23T10:00:00Z", tps=30.0)
    t = tables.load_results([tmp_path / "r"])
    gen = [c for c in t.cells if c["workload"] == "gen"]
    assert [c["run_id"] for c in gen] == ["run-2"]
    assert gen[0]["decode_tokens_per_s"] == pytest.approx(31.0)
    assert any("later run (run-2) is shown" in w for w in t.warnings)


def test_invalid_energy_is_not_shown(tmp_path):
    run = write_run(tmp_path / "r", "run-1")
    lines = (run / "records.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    for r in recs:
        if r["record_type"] == "repetition" and r["workload"] == "gen":
            r["energy_valid"], r["energy_invalid_reason"] = False, "sample gaps 40%"
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    t = tables.load_results([run])
    gen = next(c for c in t.cells if c["workload"] == "gen")
    assert gen["energy_invalid"] == "sample gaps 40%"
    assert gen["energy_per_decode_token_j"] is None
    assert gen["decode_tokens_per_s"] is not None


def test_no_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="no run directories"):
        tables.load_results([tmp_path])


def test_repeated_quality_workload_pairs_one_answer_per_item():
    rows = [{"id": "a", "label": "correct", "repetition": 0},
            {"id": "b", "label": "hallucinated", "repetition": 0, "output": "x"},
            {"id": "a", "label": "hallucinated", "repetition": 1},
            {"id": "b", "label": "hallucinated", "repetition": 1, "output": "y"}]
    detail = tables.quality_detail(None, rows)
    assert detail.pair_rows == [{"id": "a", "label": "correct"}, {"id": "b", "label": "hallucinated"}]
    assert detail.n_hallucinated == 1 and detail.excerpt[0]["output"] == "x"
    assert detail.duplicates_dropped == 0
    again = tables.quality_detail(None, rows[:2] + [{"id": "b", "label": "correct", "repetition": 0}])
    assert again.duplicates_dropped == 1
    assert again.pair_rows[-1] == {"id": "b", "label": "correct"}


def _cell(run_id: str, workload: str = "gen", **kw) -> dict:
    dkey = tables.DeviceKey("pi5", "pi")
    row = {"run_id": run_id, "cell_id": f"{run_id}-{workload}", "device_key": dkey,
           "device": "pi5", "host": "pi", "model": "m", "level": "Q4_K_M", "runtime": "llama_cpp",
           "power_mode": None, "workload": workload, "workload_kind": "generation",
           "n_threads": 4, "n_threads_batch": None, "n_batch": None, "n_ctx": None,
           "swept_settings": {}}
    return row | kw


def test_latest_per_cell_groups_equal_keys_and_names_each_superseded_run():
    """The frame grouping: None is a key like any other, 4 and 4.0 threads are one setting,
    another swept setting is another cell; rows keep their first place, the last run wins."""
    cells = [_cell("run-1"), _cell("run-1", "other"), _cell("run-2", n_threads=4.0),
             _cell("run-3"), _cell("run-3", swept_settings={"n_threads": 8})]
    latest, warnings = tables._latest_per_cell(cells)
    assert [(c["run_id"], c["workload"], c["swept_settings"]) for c in latest] == [
        ("run-3", "gen", {}), ("run-1", "other", {}), ("run-3", "gen", {"n_threads": 8})]
    assert [w.split(" is in runs ")[1] for w in warnings] == [
        "run-1 and run-2; the later run (run-2) is shown",
        "run-2 and run-3; the later run (run-3) is shown"]
    assert tables._latest_per_cell([]) == ([], [])


def test_configuration_rows_per_speed_workload_with_the_first_quality_by_name():
    cells = [_cell("r", "zz_quality", workload_kind="closed_book", hallucination_rate=0.3),
             _cell("r", "b_gen", decode_tokens_per_s=2.0),
             _cell("r", "a_quality", workload_kind="halueval", hallucination_rate=0.1),
             _cell("r", "a_gen", decode_tokens_per_s=1.0)]
    rows = tables.configurations(tables.ResultsTable(cells, [], [], []))
    assert [(r["speed_workload"], r["decode_tokens_per_s"], r["quality_workload"],
             r["hallucination_rate"]) for r in rows] == [
        ("a_gen", 1.0, "a_quality", 0.1), ("b_gen", 2.0, "a_quality", 0.1)]
    assert tables.configurations(tables.ResultsTable([], [], [], [])) == []
