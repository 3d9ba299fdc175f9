"""docs/budgets.md's CI section says what benchmarks/budgets-ci.yaml and the committed
calibration run say (issue 17: it once described five loaded runs and "4x loose" limits)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.budgets import load_budgets
from harness.budgets.cells import cells_of
from harness.store import load_run

ROOT = Path(__file__).resolve().parents[2]
CI_RUN = ROOT / "tests" / "fixtures" / "budgets" / "ci-run"


def _section() -> str:
    text = (ROOT / "docs" / "budgets.md").read_text()
    return text.split("## The project's own CI budgets", 1)[1].split("\n## ", 1)[0]


def _figure(section: str, pattern: str) -> float:
    m = re.search(pattern, section)
    assert m, f"docs/budgets.md CI section no longer states {pattern!r}"
    return float(m.group(1))


def test_the_figures_the_doc_states_are_the_committed_runs():
    section = " ".join(_section().split())
    cells = {c.final["workload"]: c for c in cells_of(load_run(CI_RUN))}
    chat, book = cells["chat-short"], cells["closed-book-10"]
    num = r"([0-9]+(?:\.[0-9]+)?)"
    stated = [  # (metric, cell, display scale, what the doc says before/after the figure)
        ("decode_tokens_per_s", chat, 1.0, rf"decode {num} tokens/s \["),
        ("ttft_s", chat, 1.0, rf"time to first token {num} s"),
        ("energy_per_decode_token_j", chat, 1.0, rf"{num} J/token"),
        ("energy_gross_j", chat, 1.0, rf"{num} J per query"),
        ("peak_rss_bytes", chat, 2 ** -20, rf"{num} MiB peak RSS"),
        ("hallucination_rate", book, 1.0, rf"hallucination rate {num}"),
        ("accuracy", book, 1.0, rf"accuracy {num}"),
    ]
    for metric, cell, scale, pattern in stated:
        figure = _figure(section, pattern)
        measured = cell.stats(metric).mean * scale
        assert figure == pytest.approx(measured, rel=0.01, abs=0.006), metric


def test_the_doc_states_the_files_rule_and_nothing_it_does_not_hold():
    section = " ".join(_section().split())
    assert "fails that run made 2x worse" in section and "1.9x headroom" in section
    assert not re.search(r"\b(five|5) (loaded )?runs\b|(?<![0-9.])4x", section)
    # the rule the doc states holds for every limit of the file, on the committed run
    cells = {c.final["workload"]: c for c in cells_of(load_run(CI_RUN))}
    for budget in load_budgets(ROOT / "benchmarks" / "budgets-ci.yaml"):
        for cell in (c for c in cells.values() if budget.matches(c.final)):
            for limit in budget.limits:
                s = cell.stats(limit.metric.name)
                if s is None:
                    continue
                worse = s.mean * 2 if limit.relation == "<=" else s.mean / 2
                assert not limit.holds(worse), (budget.name, limit.metric.name)
                assert limit.holds(s.mean), (budget.name, limit.metric.name)
