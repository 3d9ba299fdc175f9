"""Workloads: what a cell runs on a loaded model, every kind behind one interface.

The registry below maps a matrix entry's `kind:` to the module implementing it (see base.py for
the interface: `Config.from_node`, `run(backend, config, ctx) -> WorkloadResult`). Modules are
imported only when a matrix uses the kind, so validating a generation-only matrix does not load
numpy or the quality data sets. docs/ARCHITECTURE.md, "Adding a workload kind", is the recipe.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .base import WorkloadContext, WorkloadResult

__all__ = ["KINDS", "SPEED_KINDS", "WorkloadContext", "WorkloadResult", "default_counts", "is_speed",
           "kind_module"]

# kind -> module implementing Config/run (imported on first use).
KINDS: dict[str, str] = {
    "generation": "harness.workloads.generation",
    "llama_bench": "harness.workloads.llama_bench",
    "soak": "harness.workloads.soak",
    "closed_book": "harness.workloads.quality.closed_book",
    "halueval": "harness.workloads.quality.halueval",
    "truthfulqa": "harness.workloads.quality.truthfulqa",
    "fidelity": "harness.workloads.quality.fidelity",
}
# Kinds measured for speed: repeated with warm-ups, never reusing a prompt cache. The others are
# quality kinds: greedy and deterministic (one repetition, no warm-up by default), and they may
# reuse the KV cache of a shared prompt prefix (RuntimeSettings.reuse_prompt_prefix).
SPEED_KINDS: tuple[str, ...] = ("generation", "llama_bench", "soak")
# Speed kinds whose one repetition is a long run of its own: one repetition and no warm-up unless
# the matrix entry says otherwise (a warm-up would pre-heat the device and hide a soak's burst).
SINGLE_RUN_KINDS: tuple[str, ...] = ("soak",)


def kind_module(kind: str) -> ModuleType:
    """The module of a registered kind (KeyError for an unknown one: matrices validate kinds first)."""
    return importlib.import_module(KINDS[kind])


def is_speed(kind: str) -> bool:
    return kind in SPEED_KINDS


def default_counts(kind: str, repetitions: int, warmup: int) -> tuple[int, int]:
    """(repetitions, warm-ups) of a workload entry that does not set them: the matrix's for speed
    kinds; one and none for quality kinds (greedy: one repetition is the answer) and soaks."""
    if not is_speed(kind) or kind in SINGLE_RUN_KINDS:
        return 1, 0
    return repetitions, warmup
