"""How each record metric is shown, as a view of the metric registry (`harness.metrics`).

Records keep SI units (`_j`, `_s`, `_bytes`); the page shows friendlier units (mJ per token, ms,
MiB) and always says which. The label, display unit, scale and direction come from the registry,
so the HTML, Markdown, CSV and the terminal table agree with budgets and the records reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..metrics import METRICS


@dataclass(frozen=True)
class MetricSpec:
    name: str  # record field
    label: str
    unit: str  # display unit
    scale: float  # display value = record value * scale
    lower_is_better: bool


SPECS: dict[str, MetricSpec] = {
    m.name: MetricSpec(m.name, m.label, m.display_unit, m.scale, m.lower_is_better)
    for m in METRICS.values()}


def fmt_number(x: float | None, digits: int = 3) -> str:
    """Three significant digits, no exponent for the ranges the page shows; '–' when missing."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    return f"{x:,.{decimals}f}"


def fmt_value(name: str, x: float | None) -> str:
    spec = SPECS.get(name)
    return fmt_number(None if x is None else x * (spec.scale if spec else 1.0))


def fmt_ci(name: str, low: float | None, high: float | None) -> str:
    """'[low, high]' in display units, or '' when the interval is unknown (n = 1)."""
    if low is None or high is None:
        return ""
    return f"[{fmt_value(name, low)}, {fmt_value(name, high)}]"


def energy_interval_text(row: dict, name: str) -> str:
    """'all [low, high] · dominated by X' for an energy figure with a combined interval
    (harness.energy.uncertainty.interval_fields), '' otherwise; says when the sensor's accuracy
    is unknown (not published) and so left out."""
    low, high = row.get(f"{name}_u95_low"), row.get(f"{name}_u95_high")
    if low is None or high is None:
        return ""
    text = f"all {fmt_ci(name, low, high)} · dominated by {row.get(f'{name}_u_dominant')}"
    if row.get(f"{name}_u_sensor_unknown"):
        text += " · sensor accuracy unknown"
    return text


def header(name: str) -> str:
    spec = SPECS.get(name)
    if spec is None:
        return name
    return f"{spec.label} ({spec.unit})" if spec.unit else spec.label
