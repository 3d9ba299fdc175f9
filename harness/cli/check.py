"""`python -m harness check RUN_DIR --budgets budgets.yaml [--baseline RUN_DIR --tolerance 5%]`.

Exit codes: 0 every check holds, 1 a budget or regression check is broken, 2 bad input
(unreadable run, invalid budgets file, runs that cannot be compared).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import HarnessError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run directory to check (results/<run-id>), or a "
                        "folder holding exactly one run")
    parser.add_argument("--budgets", metavar="YAML", help="budgets file (see docs/budgets.md)")
    parser.add_argument("--baseline", metavar="RUN_DIR", help="compare against this earlier run")
    parser.add_argument("--tolerance", default="5%",
                        help="regression tolerance for --baseline, e.g. 5%% or 0.05 (default 5%%)")
    parser.add_argument("--metrics", metavar="NAMES",
                        help="comma-separated metrics for --baseline (default: every budgetable "
                             "metric both runs record)")
    parser.add_argument("--require-measured", action="store_true",
                        help="fail energy checks whose figure is estimated rather than measured")
    parser.add_argument("--allow-unmatched", action="store_true",
                        help="report budgets that match no cell (or no recorded metric) as "
                             "skipped instead of failing")
    parser.add_argument("--junit", metavar="XML", help="also write JUnit XML here")
    parser.add_argument("--markdown", metavar="MD", help="also write a Markdown summary here")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")


def run(args: argparse.Namespace) -> int:
    from ..budgets import (METRICS, check_budgets, compare_runs, format_table, load_budgets,
                           parse_tolerance, summary_line, to_junit, to_markdown)
    from ..store import LOCK_FILE, load_run

    if not args.budgets and not args.baseline:
        raise HarnessError("check needs --budgets YAML, --baseline RUN_DIR, or both")
    tolerance = parse_tolerance(args.tolerance)
    metrics = _metric_list(args.metrics, METRICS)
    budgets = load_budgets(args.budgets) if args.budgets else []
    current = load_run(_one_run_dir(args.run_dir))
    verdicts = []
    if budgets:
        verdicts += check_budgets(current, budgets, args.require_measured, args.allow_unmatched)
    if args.baseline:
        verdicts += compare_runs(load_run(_one_run_dir(args.baseline)), current, tolerance,
                                 metrics, args.require_measured)
    for w in current.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if (current.path / LOCK_FILE).exists():
        print(f"warning: {current.path} is locked: a run is still writing it (or was killed); "
              "cells not finished yet are missing from this check", file=sys.stderr)
    title = f"edgebench check: {current.manifest.get('run_id') or Path(args.run_dir).name}"
    _write(args.junit, lambda: to_junit(verdicts, title))
    _write(args.markdown, lambda: to_markdown(verdicts, title))
    sys.stdout.write(summary_line(verdicts) + "\n" if args.quiet else format_table(verdicts))
    return 1 if any(v.breaks for v in verdicts) else 0


def _one_run_dir(arg: str) -> Path:
    """A run dir, or a folder holding exactly one (CI writes each run into a fresh folder)."""
    from ..store import iter_run_dirs

    path = Path(arg)
    if not path.exists():
        raise HarnessError(f"{path}: not a run directory (no such path)")
    dirs = list(iter_run_dirs([path]))
    if len(dirs) != 1:
        raise HarnessError(f"{path} holds {len(dirs)} runs ({', '.join(d.name for d in dirs)}); "
                           "name the one to check")
    return dirs[0]


def _metric_list(text: str | None, known: dict) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise HarnessError(f"--metrics: unknown {', '.join(unknown)}; "
                           f"choose from {', '.join(known)}")
    return names


def _write(path: str | None, render) -> None:
    if not path:
        return
    try:
        Path(path).write_text(render(), encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"cannot write {path}: {e.strerror}") from None
