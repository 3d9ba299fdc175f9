"""benchmarks/budgets-ci.yaml against a real CI run: it passes, and the same run 2x worse fails."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.budgets import check_budgets, load_budgets
from harness.records import REPETITION
from harness.stats import summarize
from harness.store import RunWriter, load_run

ROOT = Path(__file__).resolve().parents[2]
CI_BUDGETS = ROOT / "benchmarks" / "budgets-ci.yaml"
MEDIAN_RUN = ROOT / "tests" / "fixtures" / "budgets" / "ci-run"  # real CI run, 2026-11-30, this VM, quiet

TWICE = ("ttft_s", "e2e_latency_s", "peak_rss_bytes", "energy_gross_j", "energy_net_j",
         "energy_per_decode_token_j", "energy_decode_j", "energy_prefill_j")
HALF = ("decode_tokens_per_s", "prefill_tokens_per_s", "accuracy", "accuracy_ci95_low",
        "accuracy_ci95_high")
TWICE_CAPPED = ("hallucination_rate", "hallucination_rate_ci95_low", "hallucination_rate_ci95_high")


def _worse(rep: dict[str, Any]) -> dict[str, Any]:
    out = dict(rep)
    for k in TWICE:
        if rep.get(k) is not None:
            out[k] = rep[k] * 2
    for k in HALF:
        if rep.get(k) is not None:
            out[k] = rep[k] / 2
    for k in TWICE_CAPPED:
        if rep.get(k) is not None:
            out[k] = min(1.0, rep[k] * 2)
    return out


def _twice_as_bad(tmp: Path) -> Path:
    """The median run rewritten through the store with every budgeted figure 2x worse."""
    run = load_run(MEDIAN_RUN)
    writer = RunWriter.create(tmp, "twice-as-bad")
    writer.write_manifest({**run.manifest, "run_id": "twice-as-bad"})
    for summary in run.summaries:
        reps = [_worse(r) for r in run.repetitions if r["cell_id"] == summary["cell_id"]]
        for r in reps:
            writer.append(r)
        metrics = {k: summarize([r.get(k) for r in reps]) for k in summary["metrics"]}
        writer.append({**summary, "metrics": metrics})
    return writer.dir


def test_ci_budgets_pass_on_the_measured_median_run():
    run = load_run(MEDIAN_RUN)
    assert len(run.repetitions) == 4 and {r["record_type"] for r in run.repetitions} == {REPETITION}
    verdicts = check_budgets(run, load_budgets(CI_BUDGETS))
    assert len(verdicts) == 8
    assert not [v for v in verdicts if v.breaks], [v.test_name for v in verdicts if v.breaks]
    assert all(v.status != "no_data" for v in verdicts)


def test_ci_budgets_catch_the_same_run_twice_as_bad(tmp_path):
    verdicts = check_budgets(load_run(_twice_as_bad(tmp_path)), load_budgets(CI_BUDGETS))
    assert len(verdicts) == 8
    assert [v.test_name for v in verdicts if not v.breaks] == []
