"""Checking a run (`python -m harness check`): budgets, a baseline, and where the verdicts go.

Exit codes: 0 every check holds, 1 a budget or regression check is broken; bad input (unreadable
run, invalid budgets file, runs that cannot be compared) raises HarnessError (exit 2).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import HarnessError
from ..store import LOCK_FILE, iter_run_dirs, load_run
from .baseline import compare_runs
from .checks import check_budgets
from .output import format_table, summary_line, to_junit, to_markdown
from .spec import DIRECTED_METRICS, load_budgets, parse_tolerance


@dataclass(frozen=True)
class CheckOptions:
    """What the `check` command was asked (see harness.cli.check)."""

    run_dir: str
    budgets: str | None = None
    baseline: str | None = None
    tolerance: str = "5%"
    metrics: str | None = None
    require_measured: bool = False
    allow_unmatched: bool = False
    junit: str | None = None
    markdown: str | None = None
    quiet: bool = False


def check_run(options: CheckOptions) -> int:
    """Every verdict for the run, printed and written where asked; 1 if any check is broken."""
    if not options.budgets and not options.baseline:
        raise HarnessError("check needs --budgets YAML, --baseline RUN_DIR, or both")
    tolerance = parse_tolerance(options.tolerance)
    metrics = _metric_list(options.metrics, DIRECTED_METRICS)
    budgets = load_budgets(options.budgets) if options.budgets else []
    current = load_run(_one_run_dir(options.run_dir))
    verdicts = []
    if budgets:
        verdicts += check_budgets(current, budgets, options.require_measured, options.allow_unmatched)
    if options.baseline:
        verdicts += compare_runs(load_run(_one_run_dir(options.baseline)), current, tolerance,
                                 metrics, options.require_measured)
    for w in current.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if (current.path / LOCK_FILE).exists():
        print(f"warning: {current.path} is locked: a run is still writing it (or was killed); "
              "cells not finished yet are missing from this check", file=sys.stderr)
    title = f"edgebench check: {current.manifest.get('run_id') or Path(options.run_dir).name}"
    _write(options.junit, lambda: to_junit(verdicts, title))
    _write(options.markdown, lambda: to_markdown(verdicts, title))
    sys.stdout.write(summary_line(verdicts) + "\n" if options.quiet else format_table(verdicts))
    return 1 if any(v.breaks for v in verdicts) else 0


def _one_run_dir(arg: str) -> Path:
    """A run dir, or a folder holding exactly one (CI writes each run into a fresh folder)."""
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


def _write(path: str | None, render: Callable[[], str]) -> None:
    if not path:
        return
    try:
        Path(path).write_text(render(), encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"cannot write {path}: {e.strerror}") from None
