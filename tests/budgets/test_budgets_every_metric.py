"""Budgets accept every summarised metric (issue 17: co2e_g and tokens_per_j included)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import metrics as registry
from harness.budgets import check_budgets, load_budgets
from harness.budgets.command import CheckOptions, check_run
from harness.errors import ConfigError, HarnessError
from harness.store import load_run

CI_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "budgets" / "ci-run"


def _budgets(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "budgets.yaml"
    f.write_text(text)
    return f


def test_every_summarised_metric_can_be_limited_on_its_side(tmp_path):
    summarised = [n for n, m in registry.METRICS.items() if m.summarised]
    assert set(registry.budgetable()) == set(summarised)
    for name in summarised:
        m = registry.get(name)
        side = {"lower": "max", "higher": "min"}.get(m.better or "", "max")
        [budget] = load_budgets(_budgets(tmp_path, f"budgets:\n  - {side}: {{{name}: 1}}\n"))
        [limit] = budget.limits
        assert limit.metric.name == name and limit.relation == ("<=" if side == "max" else ">=")


def test_a_metric_without_direction_takes_either_side_and_a_directed_one_only_its_own(tmp_path):
    [b] = load_budgets(_budgets(tmp_path, "budgets:\n  - min: {n_items: 10}\n    max: {n_items: 20}\n"))
    assert sorted(lim.relation for lim in b.limits) == ["<=", ">="]
    low, high = sorted(b.limits, key=lambda lim: lim.value)
    assert low.holds(10) and not low.holds(9) and high.holds(20) and not high.holds(21)
    with pytest.raises(ConfigError, match="'tokens_per_j' belongs under 'min:'"):
        load_budgets(_budgets(tmp_path, "budgets:\n  - max: {tokens_per_j: 1}\n"))
    with pytest.raises(ConfigError, match="cannot limit this here"):
        load_budgets(_budgets(tmp_path, "budgets:\n  - max: {token_agreement: 1}\n"))  # no summary


def test_co2e_and_tokens_per_joule_are_checked_on_a_real_run(tmp_path):
    run = load_run(CI_RUN)
    loose = load_budgets(_budgets(tmp_path, "budgets:\n  - name: c\n    match: {workload: chat-short}\n"
                                  "    max: {co2e_g: 0.01}\n    min: {tokens_per_j: 1.0, n_items: 0}\n"))
    verdicts = {v.metric: v for v in check_budgets(run, loose, allow_unmatched=True)}
    assert verdicts["co2e_g"].status == "pass" and "estimated by" in verdicts["co2e_g"].notes[-1]
    assert verdicts["tokens_per_j"].status == "pass"
    tight = load_budgets(_budgets(tmp_path, "budgets:\n  - match: {workload: chat-short}\n"
                                  "    max: {co2e_g: 0.0001}\n    min: {tokens_per_j: 100}\n"))
    assert all(v.status == "fail" and v.breaks for v in check_budgets(run, tight))


def test_a_baseline_compares_only_metrics_with_a_direction(tmp_path):
    with pytest.raises(HarnessError, match="--metrics: unknown n_items"):
        check_run(CheckOptions(run_dir=str(CI_RUN), baseline=str(CI_RUN), metrics="n_items"))
