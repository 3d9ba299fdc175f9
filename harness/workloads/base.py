"""The one interface of every workload kind: what `run` gets and what it returns.

A kind is a module with `Config.from_node(node)` (validates its matrix entry; unknown keys are
errors) and `run(backend, config, ctx) -> WorkloadResult`. The cell calls `run` once per warm-up
and per measured repetition and turns the result into a record; it never asks which kind it ran.
This module stays light (no numpy, no runtime) because the registry imports it to validate matrices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..backends.base import Backend, Generation

Phases = dict[str, tuple[float, float]]  # phase name -> (start, end), monotonic seconds


class WorkloadContext(Protocol):
    """What the cell offers a workload besides the loaded backend."""

    seed: int  # the runtime seed (llama_bench draws its random tokens from it)

    def open_reference_backend(self) -> "Backend":
        """The reference level's model, loaded with need_logits (fidelity only); its unload() is a no-op."""


@dataclass(frozen=True)
class WorkloadResult:
    """One run of a workload. `metrics` use the record field names of harness.metrics.

    phases: energy accounting windows (generation: prefill and decode from its token timing;
      llama_bench: the timed batch); empty means the whole measured window is one `run` phase.
    decode_tokens: tokens decoded in the decode phase; None means tokens_out - 1 (a generation's
      first token comes out of prefill).
    samples: per-item rows (the audit trail, written to samples/<cell>.jsonl).
    generation: the greedy generation itself (text, stop reason, token ids), when the kind made one.
    extra: further record fields the kind adds (llama_bench: the test name).
    """

    metrics: dict[str, float]
    tokens_in: int
    tokens_out: int
    phases: Phases = field(default_factory=dict)
    decode_tokens: int | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    generation: "Generation | None" = None
    extra: dict[str, Any] = field(default_factory=dict)
