"""How each record metric is shown: label, display unit, scale and which direction is better.

Records keep SI units (`_j`, `_s`, `_bytes`); the page shows friendlier units (mJ per token, ms,
MB) and always says which. One table here so the HTML, Markdown and CSV agree on names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str  # record field
    label: str
    unit: str  # display unit
    scale: float  # display value = record value * scale
    lower_is_better: bool


_SPECS = [
    MetricSpec("energy_per_decode_token_j", "Energy / decode token", "mJ", 1e3, True),
    MetricSpec("energy_per_prefill_token_j", "Energy / prefill token", "mJ", 1e3, True),
    MetricSpec("tokens_per_j", "Tokens per joule", "tok/J", 1.0, False),
    MetricSpec("energy_net_j", "Energy (net of idle)", "J", 1.0, True),
    MetricSpec("energy_gross_j", "Energy (gross)", "J", 1.0, True),
    MetricSpec("energy_load_j", "Load energy", "J", 1.0, True),
    MetricSpec("power_avg_w", "Average power", "W", 1.0, True),
    MetricSpec("baseline_power_w", "Idle baseline power", "W", 1.0, True),
    MetricSpec("co2e_g", "Carbon", "mg CO2e", 1e3, True),
    MetricSpec("decode_tokens_per_s", "Decode speed", "tok/s", 1.0, False),
    MetricSpec("prefill_tokens_per_s", "Prefill speed", "tok/s", 1.0, False),
    # decode tok/s x bytes read per token / measured memory bandwidth: 62 means 62 % of the
    # memory-bandwidth bound (100 is the most decode can reach, whatever the thread count)
    MetricSpec("decode_roofline_fraction", "Roofline (decode)", "% of bound", 100.0, False),
    MetricSpec("ttft_s", "Time to first token", "ms", 1e3, True),
    MetricSpec("e2e_latency_s", "End-to-end latency", "s", 1.0, True),
    MetricSpec("load_time_s", "Load time", "s", 1.0, True),
    MetricSpec("peak_rss_bytes", "Peak memory (RSS)", "MB", 1e-6, True),
    MetricSpec("hallucination_rate", "Hallucination rate", "%", 100.0, True),
    MetricSpec("hallucination_rate_attempted", "Hallucination rate (attempted)", "%", 100.0, True),
    MetricSpec("accuracy", "Accuracy", "%", 100.0, False),
    MetricSpec("abstention_rate", "Abstention rate", "%", 100.0, False),
    MetricSpec("empty_rate", "Empty answers", "%", 100.0, True),
    MetricSpec("mc1", "TruthfulQA MC1", "%", 100.0, False),
    MetricSpec("mc2", "TruthfulQA MC2", "%", 100.0, False),
    MetricSpec("kl_divergence_mean", "KL divergence vs reference", "nats", 1.0, True),
    MetricSpec("top1_agreement", "Top-1 agreement vs reference", "%", 100.0, False),
    MetricSpec("perplexity_ratio", "Perplexity ratio vs reference", "x", 1.0, True),
    MetricSpec("token_agreement", "Token agreement vs llama.cpp", "%", 100.0, False),
]
SPECS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}

ENERGY_METRICS = ("energy_per_decode_token_j", "energy_per_prefill_token_j", "tokens_per_j",
                  "energy_net_j", "energy_gross_j", "energy_load_j", "power_avg_w",
                  "baseline_power_w", "co2e_g")
QUALITY_METRICS = ("hallucination_rate", "accuracy", "abstention_rate",
                   "hallucination_rate_attempted", "empty_rate", "mc1", "mc2",
                   "kl_divergence_mean", "top1_agreement", "perplexity_ratio")


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


def header(name: str) -> str:
    spec = SPECS.get(name)
    return f"{spec.label} ({spec.unit})" if spec else name
