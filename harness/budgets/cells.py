"""A run's cells as the checks need them: the final record, its repetitions, metric statistics.

The run is read only through `harness.store.load_run`; this module turns its records into one
object per cell so checks never re-implement the attempt/resume rules of the store.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..records import CELL_FAILED, CELL_MEASUREMENTS, CellKey
from ..stats import summarize
from ..store import Run
from .spec import METRICS

Z975 = 1.959964
LARGE_DF = 1000  # an interval over many items behaves like a normal one


@dataclass(frozen=True)
class MetricStats:
    """One metric of one cell: mean, its standard error and 95% interval, and the raw values.

    `se`/`df` feed the baseline ratio interval; `ci_source` says what the interval covers:
    `repetitions` (t-interval over repetitions), `items` (the quality room's per-item interval)
    or `repetitions+items` (the wider of both, for quality metrics with repetitions that vary).
    """

    mean: float
    n: int
    se: float | None
    df: float | None
    ci95_low: float | None
    ci95_high: float | None
    values: tuple[float, ...] = ()
    ci_source: str = "repetitions"


@dataclass
class CheckedCell:
    key: CellKey
    final: dict[str, Any]
    repetitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.final.get("record_type") == CELL_FAILED

    @property
    def label(self) -> str:
        return self.key.label()

    def failure_reason(self) -> str:
        kind = self.final.get("failure_kind") or "error"
        return f"cell failed ({kind}): {self.final.get('reason') or 'no reason recorded'}"

    def energy_provenance(self) -> tuple[str, str]:
        """(method, description): method is measured, estimated, scripted or unknown."""
        rec = self.repetitions[0] if self.repetitions else self.final
        sensor = self.final.get("energy_sensor") or rec.get("energy_sensor")
        method = self.final.get("energy_method") or rec.get("energy_method")
        if sensor == "scripted":
            return "scripted", "scripted sensor (test data, not a measurement)"
        if method == "measured":
            return "measured", f"measured by {sensor}"
        if method == "estimated":
            model = rec.get("energy_model") or self.final.get("energy_model") or sensor
            return "estimated", f"estimated by {model}"
        return "unknown", "energy method not recorded"

    def stats(self, metric: str) -> MetricStats | None:
        """Statistics of `metric`, or None when this cell does not record it."""
        reps = self._usable_repetitions(metric)
        values = [float(r[metric]) for r in reps if _is_number(r.get(metric))]
        once = metric in CELL_MEASUREMENTS and self.final.get("schema_version", 1) >= 2
        if once:
            values = []  # schema 2 measures load and idle once: its summary (n=1) says so
        if values:
            s = summarize(values)
        elif not once and any(metric in r for r in self.repetitions):
            return None  # recorded only in repetitions flagged invalid
        else:  # measured once per cell, or a run without repetition records: the summary
            s = (self.final.get("metrics") or {}).get(metric)
            if not s or s.get("mean") is None:
                return None
        base = _from_summary(s, tuple(values))
        if METRICS.get(metric) is not None and METRICS[metric].kind == "quality":
            return _widen_with_items(base, reps, metric, self.final.get("metrics") or {})
        return base

    def _usable_repetitions(self, metric: str) -> list[dict[str, Any]]:
        """Energy figures of repetitions flagged invalid (gaps, dead sensor) are not evidence."""
        if METRICS.get(metric) is not None and METRICS[metric].kind == "energy":
            return [r for r in self.repetitions if r.get("energy_valid") is not False]
        return self.repetitions

    def invalid_energy_reasons(self) -> list[str]:
        return sorted({str(r.get("energy_invalid_reason") or "no reason recorded")
                       for r in self.repetitions if r.get("energy_valid") is False})


def cells_of(run: Run) -> list[CheckedCell]:
    """One CheckedCell per finished or failed cell, repetitions in order."""
    reps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in run.repetitions:
        reps[r["cell_id"]].append(r)
    out = []
    for final in run.summaries + run.failures:
        rows = sorted(reps.get(final["cell_id"], []), key=lambda r: r.get("repetition") or 0)
        out.append(CheckedCell(CellKey.from_record(final), final, rows))
    return sorted(out, key=lambda c: c.label)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _from_summary(s: dict[str, Any], values: tuple[float, ...]) -> MetricStats:
    n = int(s.get("n") or len(values) or 1)
    sd = s.get("stdev")
    se = sd / math.sqrt(n) if sd is not None and n > 1 else None
    df = float(n - 1) if se is not None else None
    return MetricStats(mean=float(s["mean"]), n=n, se=se, df=df, ci95_low=s.get("ci95_low"),
                       ci95_high=s.get("ci95_high"), values=values)


def _widen_with_items(base: MetricStats, reps: list[dict[str, Any]], metric: str,
                      summary_metrics: dict[str, Any]) -> MetricStats:
    """Repetitions of a deterministic evaluation agree exactly; the item sample is the noise."""
    lows = [r.get(f"{metric}_ci95_low") for r in reps]
    highs = [r.get(f"{metric}_ci95_high") for r in reps]
    if reps and all(_is_number(v) for v in lows + highs):
        lo, hi = sum(lows) / len(lows), sum(highs) / len(highs)
    else:
        lo = (summary_metrics.get(f"{metric}_ci95_low") or {}).get("mean")
        hi = (summary_metrics.get(f"{metric}_ci95_high") or {}).get("mean")
        if lo is None or hi is None:
            return base
    item_se = (hi - lo) / (2 * Z975)
    if base.ci95_low is None or base.ci95_high is None:
        return MetricStats(base.mean, base.n, item_se, LARGE_DF, lo, hi, base.values, "items")
    use_items = base.se is None or item_se > base.se
    return MetricStats(base.mean, base.n, item_se if use_items else base.se,
                       LARGE_DF if use_items else base.df, min(lo, base.ci95_low),
                       max(hi, base.ci95_high), base.values, "repetitions+items")
