"""Paired comparison of two levels on the same items (pure functions over per-sample rows).

Every level answers the same seeded items, so the right test is a paired one: McNemar's exact
test on the discordant pairs for labels, a paired bootstrap for the difference of rates or means.
The report room calls these with the rows of two samples/<cell_id>.jsonl files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import HarnessError
from ...stats import bootstrap_ci, mcnemar_exact


@dataclass(frozen=True)
class PairedLabels:
    """2x2 table of one outcome (e.g. label == "correct") on the items both levels answered."""

    n_pairs: int
    both: int  # outcome in A and in B
    a_only: int  # McNemar's b
    b_only: int  # McNemar's c
    neither: int
    rate_a: float
    rate_b: float
    difference: float  # rate_a - rate_b
    difference_ci95_low: float | None
    difference_ci95_high: float | None
    mcnemar_p: float
    unpaired: int  # ids present in only one of the two lists (ignored)


@dataclass(frozen=True)
class PairedValues:
    """Mean of a per-item number (e.g. mc2, kl_divergence) in A and B, and of their difference."""

    n_pairs: int
    mean_a: float
    mean_b: float
    difference: float
    difference_ci95_low: float | None
    difference_ci95_high: float | None
    unpaired: int


def compare_labels(samples_a: Sequence[Mapping[str, Any]], samples_b: Sequence[Mapping[str, Any]],
                   outcome: str = "correct", field: str = "label", key: str = "id",
                   seed: int = 0) -> PairedLabels:
    """Pair rows by `key` and compare how often row[field] == outcome in A versus B."""
    pairs, unpaired = _pair(samples_a, samples_b, key, field)
    a = np.array([ra.get(field) == outcome for ra, _ in pairs], dtype=bool)
    b = np.array([rb.get(field) == outcome for _, rb in pairs], dtype=bool)
    n = len(pairs)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    lo, hi = bootstrap_ci(a.astype(float) - b.astype(float), seed=seed) if n else (None, None)
    return PairedLabels(
        n_pairs=n, both=int((a & b).sum()), a_only=a_only, b_only=b_only,
        neither=int((~a & ~b).sum()),
        rate_a=float(a.mean()) if n else math.nan, rate_b=float(b.mean()) if n else math.nan,
        difference=float(a.mean() - b.mean()) if n else math.nan,
        difference_ci95_low=lo, difference_ci95_high=hi,
        mcnemar_p=mcnemar_exact(a_only, b_only), unpaired=unpaired)


def compare_values(samples_a: Sequence[Mapping[str, Any]], samples_b: Sequence[Mapping[str, Any]],
                   field: str, key: str = "id", seed: int = 0) -> PairedValues:
    """Pair rows by `key` and compare the mean of a numeric field (rows missing it are skipped)."""
    pairs, unpaired = _pair(samples_a, samples_b, key, field)
    pairs = [(ra, rb) for ra, rb in pairs if _num(ra.get(field)) and _num(rb.get(field))]
    a = np.array([float(ra[field]) for ra, _ in pairs])
    b = np.array([float(rb[field]) for _, rb in pairs])
    n = len(pairs)
    lo, hi = bootstrap_ci(a - b, seed=seed) if n else (None, None)
    return PairedValues(n_pairs=n, mean_a=float(a.mean()) if n else math.nan,
                        mean_b=float(b.mean()) if n else math.nan,
                        difference=float((a - b).mean()) if n else math.nan,
                        difference_ci95_low=lo, difference_ci95_high=hi, unpaired=unpaired)


def _pair(samples_a: Sequence[Mapping[str, Any]], samples_b: Sequence[Mapping[str, Any]],
          key: str, field: str) -> tuple[list[tuple[Mapping[str, Any], Mapping[str, Any]]], int]:
    by_a = _index(samples_a, key, field, "A")
    by_b = _index(samples_b, key, field, "B")
    common = [k for k in by_a if k in by_b]
    unpaired = len(by_a) + len(by_b) - 2 * len(common)
    return [(by_a[k], by_b[k]) for k in common], unpaired


def _index(rows: Sequence[Mapping[str, Any]], key: str, field: str,
           side: str) -> dict[Any, Mapping[str, Any]]:
    """One row per item id. Repetitions of a greedy workload repeat each id with the same
    outcome and collapse to one row; the same id with different outcomes is an error."""
    out: dict[Any, Mapping[str, Any]] = {}
    for i, row in enumerate(rows):
        if key not in row:
            raise HarnessError(f"sample row {i} of level {side} has no '{key}' field to pair on")
        seen = out.get(row[key])
        if seen is not None and seen.get(field) != row.get(field):
            raise HarnessError(f"sample id {row[key]!r} appears twice in level {side} with different "
                               f"'{field}' ({seen.get(field)!r}, {row.get(field)!r}); "
                               "paired tests need one outcome per item")
        out.setdefault(row[key], row)
    return out


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
