"""Energy, speed, memory and quality budgets, and regression checks against a baseline run.

Pure functions of stored runs: `load_budgets(file)` validates budgets.yaml, `check_budgets(run,
budgets)` and `compare_runs(baseline, run, tolerance)` return Verdicts, and the writers in
`output` render them for a terminal, a PR comment or a CI system. Rules: docs/budgets.md.
"""
from __future__ import annotations

from .baseline import assert_comparable, compare_runs
from .checks import check_budgets
from .output import format_table, summary_line, to_junit, to_markdown
from .spec import METRICS, Budget, Limit, load_budgets, parse_tolerance
from .verdict import Verdict

__all__ = ["METRICS", "Budget", "Limit", "Verdict", "assert_comparable", "check_budgets",
           "compare_runs", "format_table", "load_budgets", "parse_tolerance", "summary_line",
           "to_junit", "to_markdown"]
