"""What the quality kinds share: the config keys, seeded item selection and answer labels.

Item selection is seeded from the workload entry (not the cell), so every level of a model answers
the very same items and levels can be compared pairwise (harness.workloads.quality.compare).
Quality kinds return the one result type of every workload (harness.workloads.base.WorkloadResult).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence, TypeVar

from ...errors import HarnessError
from ...schema import Node
from ...stats import wilson_ci

# Keys every quality workload entry accepts; each kind adds its own.
BASE_KEYS: tuple[str, ...] = ("name", "kind", "samples", "seed", "max_tokens")

# The labels a generated answer can get (closed_book and halueval). OTHER: HaluEval's first rules
# (closer to neither reference), kept so old samples files still read; UNSCORABLE: no rule decides.
CORRECT, HALLUCINATED, ABSTAINED, OTHER = "correct", "hallucinated", "abstained", "other"
UNSCORABLE = "unscorable"
EXCLUDED = "excluded"  # an item whose data-set key our review rejected: in no rate

T = TypeVar("T")


@dataclass(frozen=True)
class BaseSettings:
    name: str
    samples: int
    seed: int
    max_tokens: int


def base_settings(node: Node, extra_keys: Sequence[str], required: Sequence[str] = (),
                  default_samples: int = 50, default_max_tokens: int = 32) -> BaseSettings:
    """Validate the workload mapping (unknown keys rejected) and read the shared keys."""
    node.mapping(allowed=[*BASE_KEYS, *extra_keys], required=["name", "kind", *required])
    return BaseSettings(
        name=node.get("name").str(),
        samples=node.opt("samples", "int", default_samples, min=1),
        seed=node.opt("seed", "int", 0, min=0),
        max_tokens=node.opt("max_tokens", "int", default_max_tokens, min=1, max=4096),
    )


def select(items: Sequence[T], n: int, seed: int, what: str) -> list[tuple[int, T]]:
    """A seeded sample of n items as (index, item), in sampled order; the same for every level.

    Asking for more items than exist is an error rather than a silent cap, because the sample
    size sets the confidence interval the user planned for.
    """
    if n > len(items):
        raise HarnessError(f"samples: {n} requested but {what} has only {len(items)} items; "
                           f"set samples to at most {len(items)}")
    idx = random.Random(seed).sample(range(len(items)), n)
    return [(i, items[i]) for i in idx]


def label_metrics(labels: Sequence[str], empty: Sequence[bool]) -> tuple[dict[str, float], list[str]]:
    """Rates over all items with 95% Wilson intervals, and a warning when answers are empty.

    hallucination_rate = hallucinated / all; accuracy = correct / all; abstention_rate =
    abstained / all (empty answers included); hallucination_rate_attempted = hallucinated /
    (all - abstained); unscorable_rate = answers no rule could decide / all. empty_rate is
    reported on its own so a collapsed model is plain to see.
    """
    empty = [e for lab, e in zip(labels, empty) if lab != EXCLUDED]
    labels = [lab for lab in labels if lab != EXCLUDED]
    n = len(labels)
    counts = {lab: sum(1 for x in labels if x == lab)
              for lab in (CORRECT, HALLUCINATED, ABSTAINED, UNSCORABLE)}
    n_empty = sum(1 for e in empty if e)
    attempted = n - counts[ABSTAINED]
    metrics: dict[str, float] = {"n_items": float(n)}
    _rate(metrics, "hallucination_rate", counts[HALLUCINATED], n)
    _rate(metrics, "accuracy", counts[CORRECT], n)
    _rate(metrics, "abstention_rate", counts[ABSTAINED], n)
    _rate(metrics, "hallucination_rate_attempted", counts[HALLUCINATED], attempted)
    _rate(metrics, "empty_rate", n_empty, n)
    _rate(metrics, "unscorable_rate", counts[UNSCORABLE], n)
    warnings = []
    if n_empty:
        warnings.append(f"{n_empty} of {n} answers were empty and count as abstentions"
                        + (" (the model answered nothing: collapsed?)" if n_empty == n else ""))
    return metrics, warnings


def _rate(metrics: dict[str, float], name: str, k: int, n: int) -> None:
    lo, hi = wilson_ci(k, n)
    metrics[name] = k / n if n else float("nan")
    metrics[f"{name}_ci95_low"] = float("nan") if lo is None else lo
    metrics[f"{name}_ci95_high"] = float("nan") if hi is None else hi
