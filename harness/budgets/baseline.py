"""Regression checks against a baseline run, with statistical support so noise cannot fail CI.

For each cell present in both runs and each metric, w is the worsening ratio (current/baseline for
metrics where higher is worse, baseline/current otherwise) with a 95% interval on the log scale
from the delta method and Welch-Satterthwaite degrees of freedom (t quantiles from harness.stats):
- w <= 1 + tolerance -> pass (an improvement beyond the tolerance is noted);
- w > 1 + tolerance and the interval's lower bound > 1 + tolerance -> fail;
- w > 1 + tolerance but the interval reaches down to 1 + tolerance -> inconclusive (no failure):
  the regression is not supported by the repetitions.
Runs from different hardware or different energy measurement methods are refused outright.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import HarnessError
from ..stats import mann_whitney_p, t975
from ..store import Run
from .cells import CheckedCell, MetricStats, cells_of
from .spec import DIRECTED_METRICS, Metric

# Compared when --metrics is not given (the headline figures; any metric with a better direction
# may be named).
DEFAULT_METRICS = ("energy_per_decode_token_j", "energy_gross_j", "energy_net_j",
                   "decode_tokens_per_s", "ttft_s", "e2e_latency_s", "peak_rss_bytes",
                   "hallucination_rate", "kl_divergence_mean", "accuracy")
from .verdict import FAIL, INCONCLUSIVE, NO_DATA, PASS, Verdict, fmt_value

# What "the same hardware" means: the CPU, the architecture, the core count and the device profile
# (with its emulation flag). RAM is compared within RAM_TOLERANCE (firmware reserves vary).
HARDWARE_FIELDS = (("host", "cpu_model"), ("host", "machine"), ("host", "cores_logical"),
                   ("device", "profile"), ("device", "emulated"))
RAM_TOLERANCE = 0.05


def _get(manifest: dict[str, Any], section: str, key: str) -> Any:
    return (manifest.get(section) or {}).get(key)


def hardware_differences(base: dict[str, Any], cur: dict[str, Any]) -> list[str]:
    """Human-readable differences between two manifests' hardware; empty when comparable."""
    diffs = [f"{s}.{k}: baseline {_get(base, s, k)!r}, this run {_get(cur, s, k)!r}"
             for s, k in HARDWARE_FIELDS if _get(base, s, k) != _get(cur, s, k)]
    rb, rc = _get(base, "host", "ram_bytes"), _get(cur, "host", "ram_bytes")
    if (rb is None) != (rc is None) or (rb and rc and abs(rc - rb) > RAM_TOLERANCE * rb):
        diffs.append(f"host.ram_bytes: baseline {rb!r}, this run {rc!r}")
    return diffs


def method_differences(base: Run, cur: Run) -> list[str]:
    """Energy method or sensor differences, run-wide (manifest) and per shared cell."""
    diffs = [f"energy.{k}: baseline {_get(base.manifest, 'energy', k)!r}, "
             f"this run {_get(cur.manifest, 'energy', k)!r}"
             for k in ("method", "sensor")
             if _get(base.manifest, "energy", k) != _get(cur.manifest, "energy", k)]
    base_cells = {c.key: c for c in cells_of(base) if not c.failed}
    for c in cells_of(cur):
        b = base_cells.get(c.key)
        if b is not None and not c.failed and b.energy_provenance()[0] != c.energy_provenance()[0]:
            diffs.append(f"{c.label}: baseline {b.energy_provenance()[1]}, "
                         f"this run {c.energy_provenance()[1]}")
    return diffs


def assert_comparable(base: Run, cur: Run) -> None:
    """Refuse (HarnessError, exit 2) to compare runs a ratio would mislead about."""
    hw = hardware_differences(base.manifest, cur.manifest)
    if hw:
        raise HarnessError(f"refusing to compare {cur.path} with baseline {base.path}: different "
                           "hardware (" + "; ".join(hw) + "). Record a baseline on this device.")
    method = method_differences(base, cur)
    if method:
        raise HarnessError(f"refusing to compare {cur.path} with baseline {base.path}: different "
                           "energy measurement methods (" + "; ".join(method) + "). Record the "
                           "baseline with the same sensor configuration.")


def worsening_ratio(metric: Metric, base: MetricStats, cur: MetricStats
                    ) -> tuple[float, float | None, float | None]:
    """(w, lo, hi): how many times worse the current run is, with its 95% interval."""
    num, den = (cur, base) if metric.higher_is_worse else (base, cur)
    w = num.mean / den.mean
    if num.se is None or den.se is None:
        return w, None, None
    a_num, a_den = (num.se / num.mean) ** 2, (den.se / den.mean) ** 2
    rel_var = a_num + a_den
    if rel_var == 0:
        return w, w, w
    denom = sum(a * a / d for a, d in ((a_num, num.df), (a_den, den.df)) if d and a)
    df = rel_var ** 2 / denom if denom else 1.0
    # On the log scale (log w = log num - log den) the interval stays positive and asymmetric,
    # as a ratio's should; var(log w) ~ rel_var by the delta method.
    half = t975(max(1, int(math.floor(df)))) * math.sqrt(rel_var)
    return w, w * math.exp(-half), w * math.exp(half)


def decide_regression(w: float, lo: float | None, tolerance: float) -> tuple[str, bool, str | None]:
    limit = 1 + tolerance
    if w <= limit:
        return PASS, False, None
    if lo is not None and lo > limit:
        return FAIL, True, None
    why = "no interval (a run has one repetition)" if lo is None else \
        f"95% CI of the ratio reaches {lo:.3f}x"
    return INCONCLUSIVE, False, f"worse beyond tolerance but not supported: {why}"


@dataclass(frozen=True)
class RegressionCheck:
    """One metric of one cell, current run versus baseline run."""

    metric: Metric
    tolerance: float
    group: str
    require_measured: bool = False

    @property
    def expected(self) -> str:
        return f"at most {self.tolerance * 100:.3g}% worse than baseline"

    def evaluate(self, base: CheckedCell, cur: CheckedCell) -> Verdict | None:
        """A verdict for two finished cells, or None when either lacks the metric."""
        b, c = base.stats(self.metric.name), cur.stats(self.metric.name)
        if b is None or c is None:
            return None
        if b.mean <= 0 or c.mean <= 0:
            return self._non_positive(cur, b, c)
        w, lo, hi = worsening_ratio(self.metric, b, c)
        status, breaks, note = decide_regression(w, lo, self.tolerance)
        notes = [note] if note else []
        if status == PASS and hi is not None and hi < 1 / (1 + self.tolerance):
            notes.append("improved beyond the tolerance")
        notes += self._evidence(b, c, cur)
        if self.require_measured and self.metric.kind == "energy" and \
                cur.energy_provenance()[0] != "measured":
            status, breaks = FAIL, True
            notes.append("--require-measured: this energy figure is not a measurement")
        return self._row(cur, self._measured(b, c), self._change_interval(lo, hi), status, breaks,
                         tuple(notes), w, lo, hi)

    def _measured(self, b: MetricStats, c: MetricStats) -> str:
        """Both means and the change of the metric itself (+50% tokens/s reads as better)."""
        change = c.mean / b.mean - 1
        worse = change > 0 if self.metric.higher_is_worse else change < 0
        word = "unchanged" if change == 0 else ("worse" if worse else "better")
        unit = self.metric.unit
        return f"{fmt_value(b.mean, unit)} -> {fmt_value(c.mean, unit)} ({change:+.1%}, {word})"

    def _change_interval(self, lo: float | None, hi: float | None) -> str:
        """The interval of the worsening ratio, shown as a change of the metric in percent."""
        if lo is None or hi is None:
            return "-"
        if not self.metric.higher_is_worse:  # w = baseline/current: change = 1/w - 1
            lo, hi = (1 / hi if hi > 0 else float("inf")), (1 / lo if lo > 0 else float("inf"))
        return f"[{lo - 1:+.1%}, {hi - 1:+.1%}]"

    def _evidence(self, b: MetricStats, c: MetricStats, cur: CheckedCell) -> list[str]:
        notes = []
        if len(b.values) >= 2 and len(c.values) >= 2:
            notes.append(f"Mann-Whitney p={mann_whitney_p(b.values, c.values):.3g} "
                         f"(n={len(b.values)} vs {len(c.values)})")
        if self.metric.kind == "energy":
            notes.append(cur.energy_provenance()[1])
        return notes

    def _non_positive(self, cur: CheckedCell, b: MetricStats, c: MetricStats) -> Verdict:
        """A ratio means nothing at or below 0 (a net energy can be negative within noise)."""
        unit = self.metric.unit
        measured = f"{fmt_value(b.mean, unit)} -> {fmt_value(c.mean, unit)}"
        if b.mean == c.mean == 0:
            return self._row(cur, measured, "-", PASS, False, ("unchanged at 0",))
        return self._row(cur, measured, "-", INCONCLUSIVE, False,
                         ("a mean at or below 0 makes the ratio meaningless; set an absolute "
                          "budget for this metric instead",))

    def _row(self, cell: CheckedCell, measured: str, ci: str, status: str, breaks: bool,
             notes: tuple[str, ...], value: float | None = None, lo: float | None = None,
             hi: float | None = None) -> Verdict:
        return Verdict("baseline", self.group, cell.label, self.metric.name, self.expected,
                       measured, ci, status, breaks, notes, value, lo, hi)


def compare_runs(base: Run, cur: Run, tolerance: float, metrics: list[str] | None = None,
                 require_measured: bool = False) -> list[Verdict]:
    """Every shared cell x metric; cells in only one run are listed, not silently dropped."""
    assert_comparable(base, cur)
    chosen = [DIRECTED_METRICS[m] for m in (metrics or DEFAULT_METRICS)]
    group = f"baseline {base.manifest.get('run_id') or base.path.name}"
    base_cells = {c.key: c for c in cells_of(base)}
    cur_cells = {c.key: c for c in cells_of(cur)}
    verdicts: list[Verdict] = []
    for key, c in cur_cells.items():
        b = base_cells.get(key)
        if b is None:
            verdicts.append(_only(group, c, "not in the baseline run; nothing to compare"))
        elif b.failed:
            verdicts.append(_only(group, c, "failed in the baseline run; nothing to compare"))
        elif c.failed:
            verdicts.append(Verdict("baseline", group, c.label, "*", "cell completes", "-", "-",
                                    FAIL, True, (c.failure_reason(),)))
        else:
            checks = [RegressionCheck(m, tolerance, group, require_measured) for m in chosen]
            verdicts += [v for v in (k.evaluate(b, c) for k in checks) if v is not None]
    for key, b in base_cells.items():
        if key not in cur_cells:
            verdicts.append(_only(group, b, "in the baseline but not in this run"))
    return verdicts


def _only(group: str, cell: CheckedCell, why: str) -> Verdict:
    return Verdict("baseline", group, cell.label, "*", "-", "-", "-", NO_DATA, False, (why,))
