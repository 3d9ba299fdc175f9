"""The outcome of one check: what was expected, what was measured, and whether the build breaks."""
from __future__ import annotations

from dataclasses import dataclass

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
NO_DATA = "no_data"


@dataclass(frozen=True)
class Verdict:
    """One row of the check table and one JUnit test case.

    `status` says what the evidence shows; `breaks` says whether it fails the build. They differ
    only for `inconclusive` (the 95% interval does not settle it; see docs/budgets.md for which way
    each kind of check then goes) and `no_data` (breaks unless unmatched budgets are allowed).
    """

    check: str  # "budget" or "baseline"
    group: str  # budget name, or "baseline <run_id>"
    cell: str  # human-readable cell label ("-" when the row is about no cell)
    metric: str
    expected: str
    measured: str
    ci: str
    status: str
    breaks: bool
    notes: tuple[str, ...] = ()
    value: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None

    @property
    def label(self) -> str:
        """Status as shown to people: the exit-code effect first, the evidence second."""
        if self.status == NO_DATA:
            return "FAIL (no data)" if self.breaks else "skipped (no data)"
        head = "FAIL" if self.breaks else "pass"
        return f"{head} (inconclusive)" if self.status == INCONCLUSIVE else head

    @property
    def test_name(self) -> str:
        return f"{self.metric} on {self.cell}" if self.cell != "-" else self.metric


def fmt_value(value: float | None, unit: str) -> str:
    """Four significant figures; bytes in MiB so memory budgets read naturally."""
    if value is None:
        return "-"
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    text = f"{value:.4g}"
    return f"{text} {unit}" if unit and unit != "1" else text  # "1": a ratio, shown bare


def fmt_interval(lo: float | None, hi: float | None, unit: str) -> str:
    if lo is None or hi is None:
        return "-"
    if unit == "B":
        return f"[{lo / 2**20:.1f}, {hi / 2**20:.1f}] MiB"
    return f"[{lo:.4g}, {hi:.4g}]"
