"""Absolute budget checks: is a cell's metric within the limit a budgets.yaml sets?

Decision rule (also in docs/budgets.md), for the 95% interval [lo, hi] of the metric:
- the whole interval is within the limit -> pass;
- the whole interval is beyond the limit -> fail;
- the interval contains the limit -> inconclusive, and the mean decides the exit code (a budget
  is the team's limit on the best estimate; more repetitions would settle it either way);
- one repetition (no interval) -> the single value decides, with a note.
Energy figures say how they were obtained; `require_measured` turns estimated ones into failures.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..store import Run
from .cells import CheckedCell, MetricStats, cells_of
from .spec import Budget, Limit
from .verdict import FAIL, INCONCLUSIVE, NO_DATA, PASS, Verdict, fmt_interval, fmt_value


def decide(limit: Limit, s: MetricStats) -> tuple[str, bool, str | None]:
    """(status, breaks, note) for one metric against one limit."""
    mean_ok = limit.holds(s.mean)
    if s.ci95_low is None or s.ci95_high is None:
        return (PASS if mean_ok else FAIL), not mean_ok, f"n={s.n}: no confidence interval"
    lo_ok, hi_ok = limit.holds(s.ci95_low), limit.holds(s.ci95_high)
    if lo_ok and hi_ok:
        return PASS, False, None
    if not lo_ok and not hi_ok:
        return FAIL, True, None
    side = "within" if mean_ok else "beyond"
    return INCONCLUSIVE, not mean_ok, f"95% CI contains the limit; mean is {side} it"


@dataclass(frozen=True)
class LimitCheck:
    """One limit of one budget, applied cell by cell."""

    budget: Budget
    limit: Limit
    require_measured: bool = False

    @property
    def expected(self) -> str:
        return f"{self.limit.relation} {fmt_value(self.limit.value, self.limit.metric.unit)}"

    def evaluate(self, cell: CheckedCell) -> Verdict | None:
        """A verdict for this cell, or None when the cell does not record the metric."""
        if cell.failed:
            return self._row(cell, "-", "-", FAIL, True, (cell.failure_reason(),))
        s = cell.stats(self.limit.metric.name)
        if s is None and self.limit.metric.kind == "energy" and cell.invalid_energy_reasons():
            why = "energy invalid in every repetition: " + "; ".join(cell.invalid_energy_reasons())
            return self._row(cell, "-", "-", FAIL, True, (why,))
        if s is None:
            return None
        status, breaks, note = decide(self.limit, s)
        notes = [note] if note else []
        if self.limit.metric.kind == "energy":
            status, breaks = self._provenance(cell, status, breaks, notes)
        notes += _conditions(cell)
        unit = self.limit.metric.unit
        return self._row(cell, fmt_value(s.mean, unit), fmt_interval(s.ci95_low, s.ci95_high, unit),
                         status, breaks, tuple(notes), s)

    def _provenance(self, cell: CheckedCell, status: str, breaks: bool,
                    notes: list[str]) -> tuple[str, bool]:
        method, text = cell.energy_provenance()
        notes.append(text)
        invalid = cell.invalid_energy_reasons()
        if invalid:
            notes.append("invalid energy repetitions left out: " + "; ".join(invalid))
        if self.require_measured and method != "measured":
            notes.append("--require-measured: this energy figure is not a measurement")
            return FAIL, True
        return status, breaks

    def _row(self, cell: CheckedCell, measured: str, ci: str, status: str, breaks: bool,
             notes: tuple[str, ...], s: MetricStats | None = None) -> Verdict:
        return Verdict("budget", self.budget.name, cell.label, self.limit.metric.name,
                       self.expected, measured, ci, status, breaks, notes, s.mean if s else None,
                       s.ci95_low if s else None, s.ci95_high if s else None)


def _conditions(cell: CheckedCell) -> list[str]:
    notes = []
    if cell.final.get("emulated"):
        notes.append("emulated device profile")
    if cell.final.get("throttled"):
        notes.append("device throttled during the cell")
    return notes


def check_budgets(run: Run, budgets: list[Budget], require_measured: bool = False,
                  allow_unmatched: bool = False) -> list[Verdict]:
    """Every limit of every budget against every cell it matches; gaps are reported, not passed."""
    cells = cells_of(run)
    verdicts: list[Verdict] = []
    for budget in budgets:
        matched = [c for c in cells if budget.matches(c.final)]
        if not matched:
            verdicts.append(_no_data(budget, "*", "-", allow_unmatched,
                                     f"matches none of the {len(cells)} cell(s) in this run"))
            continue
        for limit in budget.limits:
            check = LimitCheck(budget, limit, require_measured)
            rows = [v for v in (check.evaluate(c) for c in matched) if v is not None]
            why = f"none of the {len(matched)} matched cell(s) records {limit.metric.name}"
            verdicts += rows or [_no_data(budget, limit.metric.name, check.expected,
                                          allow_unmatched, why)]
    return verdicts


def _no_data(budget: Budget, metric: str, expected: str, allowed: bool, why: str) -> Verdict:
    hint = "" if allowed else " (pass --allow-unmatched if that is intended)"
    return Verdict("budget", budget.name, "-", metric, expected, "-", "-", NO_DATA, not allowed,
                   (f"{budget.where}: {why}{hint}",))
