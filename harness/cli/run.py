"""`python -m harness run matrix.yaml`: validate, expand, run every cell, record, report."""
from __future__ import annotations

import argparse
import sys

from ..run import RunOptions, run_matrix


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("matrix", nargs="?", help="the matrix file (default benchmarks/matrix.yaml)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run: finished cells "
                   "are skipped, the rest (and failed ones) run again")
    p.add_argument("--dry-run", action="store_true", help="validate, print the cells and the "
                   "estimated work, write nothing")
    p.add_argument("--device", metavar="PROFILE", help="use this hardware profile instead of the "
                   "detected one (refused if this machine does not match it; see --emulate)")
    p.add_argument("--emulate", metavar="PROFILE", help="run here with PROFILE's threads and memory "
                   "limit enforced; every record is marked emulated")
    p.add_argument("--output-dir", help="where run directories go (overrides the matrix)")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")


def run(args: argparse.Namespace) -> int:
    return run_matrix(RunOptions(matrix=args.matrix, resume=args.resume, dry_run=args.dry_run,
                                 device=args.device, emulate=args.emulate, output_dir=args.output_dir,
                                 quiet=args.quiet, no_report=args.no_report, argv=list(sys.argv)))
