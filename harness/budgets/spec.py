"""The budgets.yaml format: which cells a budget covers and the limits it sets.

A budget names its cells with fnmatch-style patterns on the record dimensions and sets limits
under `max:` (bigger is worse) or `min:` (smaller is worse). Each metric has one fixed direction,
so a limit can never be written the wrong way round (a `min: {ttft_s: ...}` is rejected).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Mapping

from .. import metrics as registry
from ..errors import ConfigError, HarnessError
from ..metrics import Metric
from ..schema import Node, load_yaml

MATCH_KEYS = ("model", "level", "runtime", "device", "power_mode", "workload")


# A budget may limit every summarised metric (harness.metrics.budget_sides): `max:` for
# lower-is-better metrics, `min:` for higher-is-better ones, either for one with no direction
# (a count or a length, e.g. `min: {n_items: 100}`).
METRICS: dict[str, Metric] = {n: registry.get(n) for n in registry.budgetable()}
MAX_METRICS = registry.budgetable("lower")
MIN_METRICS = registry.budgetable("higher")
# A baseline comparison needs a direction to call a change worse.
DIRECTED_METRICS: dict[str, Metric] = {n: m for n, m in METRICS.items() if m.better is not None}


@dataclass(frozen=True)
class Limit:
    metric: Metric
    value: float
    side: str | None = None  # "max" or "min"; None: the metric's own direction

    @property
    def is_max(self) -> bool:
        return self.side == "max" if self.side is not None else self.metric.higher_is_worse

    @property
    def relation(self) -> str:
        return "<=" if self.is_max else ">="

    def holds(self, x: float) -> bool:
        return x <= self.value if self.is_max else x >= self.value


@dataclass(frozen=True)
class Budget:
    """One entry of `budgets:`: patterns per dimension (absent = any) and its limits."""

    name: str
    patterns: Mapping[str, tuple[str, ...]]
    limits: tuple[Limit, ...]
    where: str  # file and key path, so a report row leads back to the YAML

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when every dimension matches one of its patterns (a null power_mode is '')."""
        for dim, pats in self.patterns.items():
            value = record.get(dim)
            text = "" if value is None else str(value)
            if not any(fnmatchcase(text, p) for p in pats):
                return False
        return True


def load_budgets(file: str | Path) -> list[Budget]:
    """Read and validate a budgets file; every error names the file and key path."""
    file = str(file)
    root = Node(load_yaml(file), file)
    root.mapping(allowed=("budgets",), required=("budgets",))
    budgets = [_parse_budget(n, i) for i, n in enumerate(root.get("budgets").list(min_len=1))]
    seen: dict[str, str] = {}
    for b in budgets:
        if b.name in seen:
            raise ConfigError(file, b.where, f"duplicate budget name '{b.name}' (also at "
                                f"{seen[b.name]}); names label CI test cases, make them unique")
        seen[b.name] = b.where
    return budgets


def _parse_budget(node: Node, index: int) -> Budget:
    node.mapping(allowed=("name", "match", "max", "min"))
    patterns = _parse_match(node.get("match")) if node.has("match") else {}
    limits = _parse_limits(node.get("max"), MAX_METRICS, "max") if node.has("max") else []
    limits += _parse_limits(node.get("min"), MIN_METRICS, "min") if node.has("min") else []
    if not limits:
        raise node.fail("a budget needs at least one limit under 'max:' "
                        f"({', '.join(MAX_METRICS)}) or 'min:' ({', '.join(MIN_METRICS)})")
    name = node.get("name").str() if node.has("name") else _default_name(patterns, index)
    return Budget(name=name, patterns=patterns, limits=tuple(limits), where=node.path)


def _parse_match(node: Node) -> dict[str, tuple[str, ...]]:
    node.mapping(allowed=MATCH_KEYS)
    return {k: tuple(n.str_list()) for k, n in node.items() if n.value is not None}


def _parse_limits(node: Node, allowed: tuple[str, ...], side: str) -> list[Limit]:
    if not isinstance(node.value, dict):
        raise node.fail("expected a mapping of metric: limit")
    out = []
    for key, child in node.items():
        if key not in allowed:
            other = MIN_METRICS if allowed == MAX_METRICS else MAX_METRICS
            hint = (f" ('{key}' belongs under '{'min' if allowed == MAX_METRICS else 'max'}:')"
                    if key in other else "")
            raise child.fail(f"cannot limit this here{hint}; allowed: {', '.join(allowed)}")
        metric = METRICS[key]
        value = parse_bytes(child) if metric.unit == "B" else child.float(min=0.0)
        out.append(Limit(metric, value, side))
    return out


def _default_name(patterns: Mapping[str, tuple[str, ...]], index: int) -> str:
    if not patterns:
        return f"budgets[{index}] (all cells)"
    spec = " ".join(f"{k}={'|'.join(v)}" for k, v in patterns.items())
    return f"budgets[{index}] {spec}"


_BYTES_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(node: Node) -> float:
    """An integer number of bytes or a string like '600MiB' / '1.5 GB' (SI and IEC units)."""
    if isinstance(node.value, str):
        m = _BYTES_RE.match(node.value)
        if not m:
            raise node.fail(f"'{node.value}' is not a size; write bytes (e.g. 629145600) or a "
                            "number with a unit: B, KB, MB, GB, KiB, MiB, GiB")
        return float(m.group(1)) * _BYTE_UNITS[(m.group(2) or "B").upper()]
    return float(node.int(min=0))


def parse_tolerance(text: str) -> float:
    """'5%' -> 0.05; a bare fraction below 1 ('0.05') is accepted too."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100
        else:
            value = float(raw)
            if value >= 1:
                raise HarnessError(f"--tolerance {text}: ambiguous; write a percentage like 5% "
                                   "or a fraction like 0.05")
    except ValueError:
        raise HarnessError(f"--tolerance {text}: not a number; write e.g. 5% or 0.05") from None
    if not 0 <= value < 10:
        raise HarnessError(f"--tolerance {text}: must be between 0% and 1000%")
    return value
