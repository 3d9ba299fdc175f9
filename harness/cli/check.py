"""`python -m harness check RUN_DIR --budgets budgets.yaml [--baseline RUN_DIR --tolerance 5%]`
(harness.budgets.command does the work).

Exit codes: 0 every check holds, 1 a budget or regression check is broken, 2 bad input
(unreadable run, invalid budgets file, runs that cannot be compared).
"""
from __future__ import annotations

import argparse

from ..budgets.command import CheckOptions, check_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the run directory to check (results/<run-id>), or a "
                        "folder holding exactly one run")
    parser.add_argument("--budgets", metavar="YAML", help="budgets file (see docs/budgets.md)")
    parser.add_argument("--baseline", metavar="RUN_DIR", help="compare against this earlier run")
    parser.add_argument("--tolerance", default="5%",
                        help="regression tolerance for --baseline, e.g. 5%% or 0.05 (default 5%%)")
    parser.add_argument("--metrics", metavar="NAMES",
                        help="comma-separated metrics for --baseline (default: the headline "
                             "energy, speed, memory and quality metrics both runs record; any "
                             "metric with a better direction may be named)")
    parser.add_argument("--require-measured", action="store_true",
                        help="fail energy checks whose figure is estimated rather than measured")
    parser.add_argument("--allow-unmatched", action="store_true",
                        help="report budgets that match no cell (or no recorded metric) as "
                             "skipped instead of failing")
    parser.add_argument("--junit", metavar="XML", help="also write JUnit XML here")
    parser.add_argument("--markdown", metavar="MD", help="also write a Markdown summary here")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")


def run(args: argparse.Namespace) -> int:
    return check_run(CheckOptions(
        run_dir=args.run_dir, budgets=args.budgets, baseline=args.baseline, tolerance=args.tolerance,
        metrics=args.metrics, require_measured=args.require_measured,
        allow_unmatched=args.allow_unmatched, junit=args.junit, markdown=args.markdown,
        quiet=args.quiet))
