"""Absolute budget decisions on stored repetition data."""
from __future__ import annotations

import pytest

from budgets_runs import cell, key
from harness.budgets import check_budgets, load_budgets
from harness.budgets.cells import cells_of
from harness.store import load_run


def _check(make_run, budgets_file, cells, yaml_text, **kw):
    run = load_run(make_run("r1", cells))
    return check_budgets(run, load_budgets(budgets_file(yaml_text)), **kw)


ONE = "budgets:\n  - name: b\n    max: {energy_per_decode_token_j: 0.05}\n"


@pytest.mark.parametrize("values, status, breaks", [
    ([0.040, 0.041, 0.042], "pass", False),          # whole CI below 0.05
    ([0.060, 0.061, 0.062], "fail", True),           # whole CI above
    ([0.040, 0.050, 0.058], "inconclusive", False),  # CI straddles, mean 0.0493 within
    ([0.044, 0.052, 0.060], "inconclusive", True),   # CI straddles, mean 0.052 beyond
])
def test_decision_follows_the_interval_then_the_mean(make_run, budgets_file, values, status, breaks):
    (v,) = _check(make_run, budgets_file, [cell(key(), {"energy_per_decode_token_j": values})], ONE)
    assert (v.status, v.breaks) == (status, breaks)
    assert v.value == pytest.approx(sum(values) / 3)
    assert v.ci95_low < v.value < v.ci95_high
    assert "measured by rapl" in v.notes


def test_min_limit_direction(make_run, budgets_file):
    text = "budgets:\n  - {name: b, min: {decode_tokens_per_s: 20}}\n"
    slow = cell(key(workload="a"), {"decode_tokens_per_s": [10, 11, 12]})
    fast = cell(key(workload="b"), {"decode_tokens_per_s": [30, 31, 32]})
    a, b = _check(make_run, budgets_file, [slow, fast], text)
    assert (a.status, b.status) == ("fail", "pass")
    assert a.expected == ">= 20 tokens/s"


def test_single_repetition_decides_on_the_value_with_a_note(make_run, budgets_file):
    (v,) = _check(make_run, budgets_file, [cell(key(), {"energy_per_decode_token_j": [0.06]})], ONE)
    assert v.breaks and v.status == "fail"
    assert any("no confidence interval" in n for n in v.notes)


def test_each_matching_cell_gets_its_own_row_and_others_are_ignored(make_run, budgets_file):
    cells = [cell(key(level="Q4_K_M"), {"ttft_s": [0.1, 0.1, 0.1]}),
             cell(key(level="Q4_0"), {"ttft_s": [0.9, 0.9, 0.9]}),
             cell(key(level="Q8_0"), {"ttft_s": [5.0, 5.0, 5.0]})]
    verdicts = _check(make_run, budgets_file, cells,
                      "budgets:\n  - {name: q4, match: {level: 'Q4_*'}, max: {ttft_s: 0.5}}\n")
    assert sorted((v.cell.split()[1], v.status) for v in verdicts) == [("Q4_0", "fail"),
                                                                        ("Q4_K_M", "pass")]


def test_budget_matching_no_cell_is_reported_and_breaks_unless_allowed(make_run, budgets_file):
    cells = [cell(key(), {"ttft_s": [0.1, 0.1]})]
    text = "budgets:\n  - {name: typo, match: {model: gema*}, max: {ttft_s: 1}}\n"
    (v,) = _check(make_run, budgets_file, cells, text)
    assert (v.status, v.breaks, v.label) == ("no_data", True, "FAIL (no data)")
    assert "matches none of the 1 cell(s)" in v.notes[0] and "budgets[0]" in v.notes[0]
    (v,) = check_budgets(load_run(make_run("r2", cells)), load_budgets(budgets_file(text)),
                         allow_unmatched=True)
    assert (v.status, v.breaks, v.label) == ("no_data", False, "skipped (no data)")


def test_metric_absent_from_every_matched_cell_is_no_data(make_run, budgets_file):
    text = "budgets:\n  - {name: q, max: {hallucination_rate: 0.3, ttft_s: 1}}\n"
    verdicts = _check(make_run, budgets_file, [cell(key(), {"ttft_s": [0.2, 0.2]})], text)
    by_metric = {v.metric: v for v in verdicts}
    assert by_metric["ttft_s"].status == "pass"
    assert by_metric["hallucination_rate"].status == "no_data"
    assert by_metric["hallucination_rate"].breaks


def test_failed_cell_breaks_its_budgets(make_run, budgets_file):
    cells = [cell(key(), {}, failed="out of memory after load (peak 900 MiB)")]
    (v,) = _check(make_run, budgets_file, cells,
                  "budgets:\n  - {name: m, max: {peak_rss_bytes: 500MiB}}\n")
    assert v.breaks and v.status == "fail"
    assert "cell failed (oom): out of memory" in v.notes[0]


def test_estimated_energy_is_checked_and_labelled(make_run, budgets_file):
    c = cell(key(), {"energy_per_decode_token_j": [0.01, 0.011, 0.012]}, method="estimated",
             sensor="estimate", energy_model="tdp-x-utilisation")
    (v,) = _check(make_run, budgets_file, [c], ONE)
    assert v.status == "pass" and not v.breaks
    assert "estimated by tdp-x-utilisation" in v.notes


def test_require_measured_fails_estimates_but_not_measurements(make_run, budgets_file):
    est = cell(key(workload="a"), {"energy_per_decode_token_j": [0.01, 0.01, 0.01]},
               method="estimated", sensor="estimate", energy_model="tdp")
    fake = cell(key(workload="b"), {"energy_per_decode_token_j": [0.01, 0.01, 0.01]},
                sensor="scripted")
    real = cell(key(workload="c"), {"energy_per_decode_token_j": [0.01, 0.01, 0.01]})
    a, b, c = _check(make_run, budgets_file, [est, fake, real], ONE, require_measured=True)
    assert (a.breaks, b.breaks, c.breaks) == (True, True, False)
    assert any("--require-measured" in n for n in a.notes)
    assert "scripted sensor" in b.notes[0]


def test_require_measured_leaves_non_energy_budgets_alone(make_run, budgets_file):
    c = cell(key(), {"ttft_s": [0.1, 0.1]}, method="estimated", sensor="estimate")
    (v,) = _check(make_run, budgets_file, [c], "budgets:\n  - {max: {ttft_s: 1}}\n",
                  require_measured=True)
    assert not v.breaks


def test_invalid_energy_repetitions_are_left_out(make_run, budgets_file):
    c = cell(key(), {"energy_per_decode_token_j": [0.01, 0.011, 0.9]},
             rep_extra=[{}, {}, {"energy_valid": False, "energy_invalid_reason": "sample gap 2 s"}])
    (v,) = _check(make_run, budgets_file, [c], ONE)
    assert v.value == pytest.approx(0.0105)
    assert any("sample gap 2 s" in n for n in v.notes)


def test_quality_uses_the_item_interval_when_repetitions_agree(make_run, budgets_file):
    # Three identical repetitions (greedy decoding): the spread is over the items.
    items = {"hallucination_rate_ci95_low": 0.18, "hallucination_rate_ci95_high": 0.45}
    c = cell(key(workload="halueval"), {"hallucination_rate": [0.3, 0.3, 0.3]},
             rep_extra=[items] * 3)
    text = "budgets:\n  - {max: {hallucination_rate: 0.4}}\n"
    (v,) = _check(make_run, budgets_file, [c], text)
    assert (v.ci95_low, v.ci95_high) == (pytest.approx(0.18), pytest.approx(0.45))
    assert v.status == "inconclusive" and not v.breaks
    stats = cells_of(load_run(make_run("q2", [c])))[0].stats("hallucination_rate")
    assert stats.se == pytest.approx((0.45 - 0.18) / (2 * 1.959964))  # the item spread, not 0


def test_emulated_and_throttled_cells_say_so(make_run, budgets_file):
    c = cell(key(), {"ttft_s": [0.1, 0.1]}, extra={"emulated": True, "throttled": True})
    (v,) = _check(make_run, budgets_file, [c], "budgets:\n  - {max: {ttft_s: 1}}\n")
    assert "emulated device profile" in v.notes and "device throttled during the cell" in v.notes


def test_energy_invalid_in_every_repetition_fails_with_the_reason(make_run, budgets_file):
    bad = {"energy_valid": False, "energy_invalid_reason": "sensor stopped updating"}
    c = cell(key(), {"energy_per_decode_token_j": [0.01, 0.011]}, rep_extra=[bad, bad])
    (v,) = _check(make_run, budgets_file, [c], ONE)
    assert (v.status, v.breaks) == ("fail", True)
    assert v.notes == ("energy invalid in every repetition: sensor stopped updating",)


def test_summary_only_runs_are_checked_from_the_summary(tmp_path, budgets_file):
    from harness.records import CELL_SUMMARY, make_record
    from harness.stats import summarize
    from harness.store import RunWriter

    w = RunWriter.create(tmp_path, "summary-only")
    w.write_manifest({"schema_version": 1, "run_id": "summary-only"})
    w.append(make_record(CELL_SUMMARY, "summary-only", key(), status="ok", attempt="a",
                         metrics={"ttft_s": summarize([0.9, 1.0, 1.1])}))
    (v,) = check_budgets(load_run(w.dir), load_budgets(budgets_file(
        "budgets:\n  - {max: {ttft_s: 0.5}}\n")))
    assert (v.status, v.value) == ("fail", pytest.approx(1.0))
