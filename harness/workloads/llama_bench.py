"""llama-bench's `pp<N>` and `tg<N>` tests, reproduced so figures sit beside llama-bench tables.

The llama.cpp community publishes per-device tables of `pp512` (prompt processing) and `tg128`
(text generation) in tokens/s. They are defined by llama-bench, not by a text prompt:
- `pp<N>`: N random tokens (BOS first when the vocabulary adds one) decoded in batches of n_batch
  from an empty KV cache; t/s = N / wall time of all batches.
- `tg<N>`: from an empty KV cache, BOS then random tokens decoded one at a time, each decode
  synchronised; t/s = N / wall time of the N decodes. No sampling: the logits are not read.
llama-bench repeats each test (5 times by default, after one warm-up run) and reports the mean
and standard deviation of the per-repetition t/s; the harness's `repetitions` and `warmup` play
that role. docs/llama-bench.md sets our definitions and llama-bench's side by side.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import HarnessError
from ..schema import Node
from .base import WorkloadContext, WorkloadResult

TEST_RE = re.compile(r"^(pp|tg)([1-9][0-9]{0,5})$")


@dataclass(frozen=True)
class Config:
    name: str
    test: str  # "pp512", "tg128", ...
    mode: str  # "pp" | "tg"
    n_tokens: int
    needs_logits: bool = field(default=False)

    @property
    def context_tokens(self) -> int:
        """llama-bench sizes the context to its test (n_prompt + n_gen), and decode speed depends
        on it: on the default model tg128 ran 3% slower with n_ctx 1024 and 5% with 4096 than
        with 128 (docs/llama-bench.md). The cell's n_ctx is therefore the test's N."""
        return self.n_tokens

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        node.mapping(("name", "kind", "test"), required=("name", "test"))
        test = node.get("test").str()
        m = TEST_RE.match(test)
        if not m:
            raise node.get("test").fail("expected llama-bench's test name: pp<N> (prompt processing, "
                                        "e.g. pp512) or tg<N> (text generation, e.g. tg128)")
        return cls(name=node.get("name").str(), test=test, mode=m.group(1), n_tokens=int(m.group(2)))


def run(backend: Any, config: Config, ctx: WorkloadContext | None = None) -> WorkloadResult:
    bench = getattr(backend, "bench_decode", None)
    if bench is None:
        raise HarnessError(f"workload kind llama_bench needs the llama_cpp runtime; "
                           f"'{getattr(backend, 'name', backend)}' cannot run {config.test}")
    seed = int(getattr(ctx, "seed", 0) or 0)
    t0, t1 = bench(config.mode, config.n_tokens, seed)
    rate = config.n_tokens / (t1 - t0) if t1 > t0 else float("nan")
    extra = {"llama_bench_test": config.test}
    if config.mode == "pp":
        return WorkloadResult(metrics={"prefill_tokens_per_s": rate, "e2e_latency_s": t1 - t0},
                              tokens_in=config.n_tokens, tokens_out=0,
                              phases={"prefill": (t0, t1)}, decode_tokens=0, extra=extra)
    return WorkloadResult(metrics={"decode_tokens_per_s": rate, "e2e_latency_s": t1 - t0},
                          tokens_in=0, tokens_out=config.n_tokens,
                          phases={"decode": (t0, t1)}, decode_tokens=config.n_tokens, extra=extra)
