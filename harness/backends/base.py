"""The small interface every inference runtime implements.

Timestamps are time.monotonic() seconds so the energy sampler (same clock) can align phases.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class RuntimeSettings:
    """Runtime knobs; values come from the device profile, overridden by the matrix."""

    # None leaves the count to the runtime, whose defaults differ (llama-cpp-python: cpu_count//2;
    # llama.cpp's tools: physical cores): the harness always sets both, see devices.threads.
    n_threads: int | None = None  # threads for decoding one token at a time
    n_threads_batch: int | None = None  # threads for prompt (batch) processing; None: n_threads
    n_ctx: int = 2048
    n_batch: int = 512
    use_mmap: bool = True
    use_mlock: bool = False
    seed: int = 0
    need_logits: bool = False  # quality/fidelity workloads need logits for every position
    # Quality workloads send many prompts that share a long few-shot prefix and are not timed per
    # token: they may reuse the KV cache of the common prefix (same greedy answers, many times
    # faster). Speed workloads never do: every repetition pays its full prefill. Set from the
    # workload kind when the cell's settings are built (WorkloadSpec.reuses_prompt_prefix).
    reuse_prompt_prefix: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # runtime-specific (e.g. ONNX providers)


@dataclass(frozen=True)
class Generation:
    """One greedy generation with per-token timing."""

    text: str
    tokens_in: int
    tokens_out: int
    t_start_s: float  # monotonic, just before the prompt is evaluated
    t_first_token_s: float  # monotonic, when the first generated token was available
    t_end_s: float  # monotonic, after the last token
    token_times_s: tuple[float, ...]  # monotonic time at which each generated token was available
    stop_reason: str  # "length" | "stop" | "eos"
    tokens: tuple[int, ...] = ()  # the generated token ids (cross-runtime token agreement)

    @property
    def ttft_s(self) -> float:
        return self.t_first_token_s - self.t_start_s

    @property
    def e2e_latency_s(self) -> float:
        return self.t_end_s - self.t_start_s

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.tokens_in / self.ttft_s if self.ttft_s > 0 else float("nan")

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first, over the time after the first (the first comes with prefill)."""
        n = self.tokens_out - 1
        dt = self.t_end_s - self.t_first_token_s
        return n / dt if n > 0 and dt > 0 else float("nan")


class Backend(ABC):
    """load -> generate/logits (any number of times) -> unload."""

    name: str = "base"

    @abstractmethod
    def load(self, model: Path, settings: RuntimeSettings) -> None: ...

    @abstractmethod
    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True, ignore_eos: bool = False) -> Generation:
        """Greedy decoding; `Generation.tokens` holds the generated ids.

        A fresh context per call unless RuntimeSettings.reuse_prompt_prefix (runtimes that can
        keep the KV cache of the previous prompt's common prefix do; the answers are the same).
        Stops at max_tokens, at the first stop string (the text is cut before it), or at EOS
        unless ignore_eos (fixed-length benchmarks).
        """

    @abstractmethod
    def tokenize(self, text: str, add_bos: bool = False) -> list[int]: ...

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str: ...

    @abstractmethod
    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Float32 array (len(tokens), n_vocab); row i is the distribution predicting token i+1.

        Needs RuntimeSettings.need_logits=True at load.
        """

    @abstractmethod
    def unload(self) -> None: ...

    def window_fields(self, t0_s: float, t1_s: float) -> dict[str, Any]:
        """Figures of a measured window [t0, t1] (monotonic) that are not the device's own: a
        remote runtime's network bytes and its server's energy. Local runtimes have none. The
        cell calls it after the window's sampler stopped, so asking costs the window nothing."""
        return {}

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Runtime name, version and build info, for the manifest and records."""

    @property
    @abstractmethod
    def eos_token(self) -> int: ...
