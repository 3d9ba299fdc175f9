"""Regression checks against a baseline run: decisions, statistical behaviour, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from budgets_runs import BASE_MANIFEST, cell, key
from harness.budgets import compare_runs
from harness.budgets.baseline import decide_regression, worsening_ratio
from harness.budgets.cells import MetricStats
from harness.budgets.spec import METRICS
from harness.errors import HarnessError
from harness.stats import summarize
from harness.store import load_run


def _compare(make_run, base_cells, cur_cells, tolerance=0.05, metrics=None, base_manifest=None,
             cur_manifest=None, **kw):
    base = load_run(make_run("base", base_cells, base_manifest))
    cur = load_run(make_run("cur", cur_cells, cur_manifest))
    return compare_runs(base, cur, tolerance, metrics, **kw)


def _one(make_run, metric, base_values, cur_values, tolerance=0.05):
    (v,) = _compare(make_run, [cell(key(), {metric: base_values})],
                    [cell(key(), {metric: cur_values})], tolerance)
    return v


def test_same_figures_with_noise_pass(make_run):
    v = _one(make_run, "energy_gross_j", [10.0, 10.5, 9.6], [10.2, 9.8, 10.4])
    assert (v.status, v.breaks) == ("pass", False)
    assert v.value == pytest.approx(30.4 / 30.1)


def test_doubled_energy_fails(make_run):
    v = _one(make_run, "energy_gross_j", [10.0, 11.0, 9.5], [20.0, 22.5, 19.0])
    assert (v.status, v.breaks) == ("fail", True)
    assert v.ci95_low > 1.05
    assert "measured by rapl" in v.notes


def test_small_tight_regression_beyond_tolerance_fails(make_run):
    v = _one(make_run, "ttft_s", [1.00, 1.01, 0.99], [1.08, 1.09, 1.07])
    assert (v.status, v.breaks) == ("fail", True)


def test_regression_hidden_in_noise_is_inconclusive_not_a_failure(make_run):
    v = _one(make_run, "ttft_s", [1.0, 1.4, 0.7], [1.3, 0.8, 1.5])
    assert v.value > 1.05
    assert (v.status, v.breaks, v.label) == ("inconclusive", False, "pass (inconclusive)")
    assert any("not supported" in n for n in v.notes)


def test_lower_is_worse_metrics_are_inverted(make_run):
    slower = _one(make_run, "decode_tokens_per_s", [30.0, 31.0, 29.5], [15.0, 15.5, 14.8])
    faster = _one(make_run, "decode_tokens_per_s", [30.0, 31.0, 29.5], [45.0, 46.0, 44.0])
    assert (slower.status, slower.breaks) == ("fail", True)
    assert slower.value == pytest.approx(90.5 / 45.3)
    assert (faster.status, faster.breaks) == ("pass", False)
    assert "improved beyond the tolerance" in faster.notes
    assert slower.measured.endswith("(-49.9%, worse)") and faster.measured.endswith("(+49.2%, better)")
    lo_change, hi_change = (float(x.strip(" []%")) for x in slower.ci.split(","))
    assert lo_change < -49.9 < hi_change < 0  # the interval is of the change in tokens/s


def test_tolerance_is_respected(make_run):
    base, cur = [1.00, 1.01, 0.99], [1.08, 1.09, 1.07]
    assert _one(make_run, "ttft_s", base, cur, tolerance=0.10).status == "pass"


def test_mann_whitney_is_reported(make_run):
    v = _one(make_run, "ttft_s", [1.0, 1.1, 1.2, 1.05, 1.15], [2.0, 2.1, 2.2, 2.05, 2.15])
    assert "Mann-Whitney p=0.00794 (n=5 vs 5)" in v.notes


def test_failed_cell_is_a_regression_and_one_sided_cells_are_listed(make_run):
    shared, gone, new = key(workload="a"), key(workload="b"), key(workload="c")
    base = [cell(shared, {"ttft_s": [1.0, 1.0]}), cell(gone, {"ttft_s": [1.0, 1.0]})]
    cur = [cell(shared, {}, failed="killed after 600 s timeout"), cell(new, {"ttft_s": [1, 1]})]
    verdicts = {v.cell.split("/ ")[-1]: v for v in _compare(make_run, base, cur)}
    assert verdicts["a"].breaks and "killed after 600 s" in verdicts["a"].notes[0]
    assert (verdicts["b"].status, verdicts["b"].breaks) == ("no_data", False)
    assert "not in this run" in verdicts["b"].notes[0]
    assert (verdicts["c"].status, verdicts["c"].breaks) == ("no_data", False)


def test_only_chosen_metrics_are_compared(make_run):
    values = {"ttft_s": [1.0, 1.0, 1.0], "peak_rss_bytes": [1e8, 1e8, 1e8]}
    verdicts = _compare(make_run, [cell(key(), values)], [cell(key(), values)],
                        metrics=["peak_rss_bytes"])
    assert [v.metric for v in verdicts] == ["peak_rss_bytes"]


@pytest.mark.parametrize("section, field, value", [
    ("host", "cpu_model", "Other CPU"),
    ("host", "machine", "aarch64"),
    ("host", "cores_logical", 4),
    ("device", "profile", "rpi5"),
    ("device", "emulated", True),
    ("host", "ram_bytes", 8 * 2**30),
])
def test_refuses_different_hardware(make_run, section, field, value):
    other = {section: {**BASE_MANIFEST[section], field: value}}
    c = [cell(key(), {"ttft_s": [1.0, 1.0]})]
    with pytest.raises(HarnessError, match=f"different hardware.*{section}.{field}"):
        _compare(make_run, c, c, cur_manifest=other)


def test_same_hardware_with_other_hostname_and_slightly_different_ram_is_compared(make_run):
    other = {"host": {**BASE_MANIFEST["host"], "hostname": "ci-2",
                      "ram_bytes": BASE_MANIFEST["host"]["ram_bytes"] - 2**28}}
    c = [cell(key(), {"ttft_s": [1.0, 1.0]})]
    (v,) = _compare(make_run, c, c, cur_manifest=other)
    assert v.status == "pass"


def test_refuses_measured_against_estimated(make_run):
    c_meas = [cell(key(), {"energy_gross_j": [1.0, 1.0]})]
    c_est = [cell(key(), {"energy_gross_j": [1.0, 1.0]}, method="estimated", sensor="estimate")]
    est = {"energy": {"sensor": "estimate", "method": "estimated", "rate_hz": 20.0}}
    with pytest.raises(HarnessError, match="different energy measurement methods.*energy.method"):
        _compare(make_run, c_meas, c_est, cur_manifest=est)


def test_refuses_scripted_cells_against_measured_ones(make_run):
    # Same manifest, but the cell's sensor is the test-only scripted one.
    measured = [cell(key(), {"energy_gross_j": [1.0, 1.0]})]
    scripted = [cell(key(), {"energy_gross_j": [1.0, 1.0]}, sensor="scripted")]
    with pytest.raises(HarnessError, match="scripted sensor"):
        _compare(make_run, measured, scripted)


def _stats(values):
    s = summarize(values)
    n = len(values)
    return MetricStats(s["mean"], n, s["stdev"] / np.sqrt(n), n - 1, s["ci95_low"], s["ci95_high"])


def test_ratio_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    metric, covered, trials = METRICS["energy_gross_j"], 0, 1000
    for _ in range(trials):
        b = _stats(rng.normal(10.0, 1.0, 5))
        c = _stats(rng.normal(15.0, 1.5, 5))
        _, lo, hi = worsening_ratio(metric, b, c)
        covered += lo <= 1.5 <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_noise_alone_rarely_fails_a_build_but_a_2x_regression_always_does():
    """10% noise, 3 repetitions each (the CI default), 5% tolerance."""
    rng = np.random.default_rng(11)
    metric = METRICS["energy_gross_j"]

    def fail_rate(true_ratio: float) -> float:
        fails = 0
        for _ in range(500):
            b = _stats(rng.normal(10.0, 1.0, 3))
            c = _stats(rng.normal(10.0 * true_ratio, 1.0 * true_ratio, 3))
            w, lo, _ = worsening_ratio(metric, b, c)
            fails += decide_regression(w, lo, 0.05)[1]
        return fails / 500

    assert fail_rate(1.0) < 0.03
    assert fail_rate(2.0) > 0.95


def test_zero_variance_decides_exactly():
    metric = METRICS["peak_rss_bytes"]
    same = MetricStats(100.0, 3, 0.0, 2, 100.0, 100.0)
    more = MetricStats(110.0, 3, 0.0, 2, 110.0, 110.0)
    w, lo, hi = worsening_ratio(metric, same, more)
    assert (w, lo, hi) == (pytest.approx(1.1),) * 3
    assert decide_regression(w, lo, 0.05)[:2] == ("fail", True)


def test_non_positive_means_are_not_turned_into_ratios(make_run):
    # A net energy (gross minus idle baseline) can sit just below 0 when the load is tiny.
    v = _one(make_run, "energy_net_j", [-0.01, 0.005, -0.002], [0.5, 0.6, 0.55])
    assert (v.status, v.breaks) == ("inconclusive", False)
    assert "meaningless" in v.notes[0]
    assert _one(make_run, "hallucination_rate", [0.0, 0.0], [0.0, 0.0]).status == "pass"


def test_require_measured_fails_estimated_energy_rows_only(make_run):
    est = {"energy": {"sensor": "estimate", "method": "estimated", "rate_hz": 20.0}}
    values = {"energy_gross_j": [10.0, 10.1, 9.9], "ttft_s": [1.0, 1.01, 0.99]}
    c = [cell(key(), values, method="estimated", sensor="estimate", energy_model="tdp")]
    verdicts = {v.metric: v for v in _compare(make_run, c, c, base_manifest=est, cur_manifest=est,
                                              require_measured=True)}
    assert verdicts["energy_gross_j"].breaks and not verdicts["ttft_s"].breaks
    assert "estimated by tdp" in verdicts["energy_gross_j"].notes
