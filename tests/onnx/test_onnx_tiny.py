"""The `onnx` backend on a real ONNX model, in CI: a tiny decoder that the test builds itself.

Exporting the default model needs torch and minutes (tests/onnx/test_onnx_export_e2e.py, marked
`export`); this one needs only the [onnx] extra and `onnx` (to write the graph), and takes about
a second. The tokens onnxruntime-genai produces one at a time through its KV cache must equal a
greedy argmax recomputed in numpy over the whole sequence from the same seeded weights.

In CI (CI=true) a missing onnxruntime-genai or onnx is a failure, not a skip: this is the test
that proves the ONNX backend runs there.
"""
from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

from harness.backends.base import RuntimeSettings
from harness.errors import HarnessError

_MISSING = [m for m in ("onnxruntime_genai", "onnx") if importlib.util.find_spec(m) is None]
if _MISSING:
    _WHY = (f"needs {', '.join(_MISSING)}: pip install -e '.[dev,onnx]' (onnx builds the tiny "
            "model, onnxruntime-genai runs it)")
    if os.environ.get("CI"):
        raise ImportError(f"CI must run the ONNX backend: {_WHY}")
    pytest.skip(_WHY, allow_module_level=True)

from harness.backends.onnx_genai import OnnxGenaiBackend  # noqa: E402
from tests.onnx.tiny_decoder import (  # noqa: E402
    TinyDecoder, build_tiny_decoder, reference_greedy, reference_logits)

PROMPT = "the cat in the hat"
N_TOKENS = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyDecoder:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny") / "model", seed=7)


def _load(tiny: TinyDecoder, **settings) -> OnnxGenaiBackend:
    backend = OnnxGenaiBackend()
    backend.load(tiny.path, RuntimeSettings(**{"n_ctx": 64, **settings}))
    return backend


@pytest.fixture(scope="module")
def backend(tiny):
    b = _load(tiny, need_logits=True, n_threads=1)
    yield b
    b.unload()


def test_tokenizer_applies_the_merges_and_round_trips_bytes(backend, tiny):
    v = tiny.vocab
    assert backend.tokenize("the cat") == [v["the"], v["Ġ"], v["c"], v["a"], v["t"]]
    assert backend.tokenize(" the", add_bos=True) == [tiny.bos_token_id, v["Ġthe"]]
    assert backend.bos_token == tiny.bos_token_id and backend.eos_token == tiny.eos_token_id
    for text in (PROMPT, "héllo, wörld ☃ 42"):
        ids = backend.tokenize(text)
        assert backend.detokenize(ids) == text
    assert backend.detokenize([]) == ""


def test_greedy_tokens_equal_a_cache_free_numpy_argmax(backend, tiny):
    prompt_ids = backend.tokenize(PROMPT, add_bos=True)
    gen = backend.generate(PROMPT, max_tokens=N_TOKENS, ignore_eos=True)
    expected = reference_greedy(tiny, prompt_ids, N_TOKENS, suppress_eos=True)
    assert list(gen.tokens) == expected
    assert len(set(expected)) > 2  # the weights make a non-trivial continuation
    assert gen.tokens_in == len(prompt_ids) and gen.tokens_out == N_TOKENS
    assert gen.stop_reason == "length"
    assert gen.text == backend.detokenize(expected)


def test_timestamps_are_monotonic_and_rates_finite(backend):
    gen = backend.generate(PROMPT, max_tokens=N_TOKENS, ignore_eos=True)
    times = gen.token_times_s
    assert len(times) == N_TOKENS and times[0] == gen.t_first_token_s
    assert gen.t_start_s <= gen.t_first_token_s <= gen.t_end_s
    assert all(a <= b for a, b in zip(times, times[1:])) and times[-1] <= gen.t_end_s
    assert math.isfinite(gen.decode_tokens_per_s) and gen.decode_tokens_per_s > 0
    assert math.isfinite(gen.prefill_tokens_per_s) and gen.prefill_tokens_per_s > 0


def test_generations_are_independent(backend):
    """A fresh generator per call: the same prompt twice gives the same tokens."""
    a = backend.generate(PROMPT, max_tokens=6, ignore_eos=True)
    backend.generate("an other prompt", max_tokens=3, ignore_eos=True)
    assert backend.generate(PROMPT, max_tokens=6, ignore_eos=True).tokens == a.tokens


def test_eos_ends_the_generation_and_ignore_eos_decodes_past_it(tiny, tmp_path):
    backend = _load(tiny)
    prompt_ids = backend.tokenize("the", add_bos=True)
    backend.unload()
    free = reference_greedy(tiny, prompt_ids, N_TOKENS)
    # The first greedy token not seen before becomes EOS (in genai_config.json only).
    k = next(i for i in range(1, N_TOKENS) if free[i] not in free[:i])
    with_eos = build_tiny_decoder(tmp_path / "eos", seed=7, eos_token_id=free[k])
    backend = _load(with_eos)
    try:
        stopped = backend.generate("the", max_tokens=N_TOKENS)
        assert stopped.stop_reason == "eos" and list(stopped.tokens) == free[:k]
        assert stopped.tokens_out == k and len(stopped.token_times_s) == k  # EOS is not counted
        forced = backend.generate("the", max_tokens=N_TOKENS, ignore_eos=True)
        assert list(forced.tokens) == reference_greedy(with_eos, prompt_ids, N_TOKENS,
                                                       suppress_eos=True)
        assert forced.tokens_out == N_TOKENS and free[k] not in forced.tokens
    finally:
        backend.unload()


def test_stop_string_cuts_the_text_where_it_first_appears(backend):
    full = backend.generate(PROMPT, max_tokens=N_TOKENS, ignore_eos=True)
    pieces = [backend.detokenize(full.tokens[:n]) for n in range(N_TOKENS + 1)]
    n_stop = next(n for n in range(3, N_TOKENS) if len(pieces[n]) > len(pieces[n - 1]))
    stop = pieces[n_stop][len(pieces[n_stop - 1]):]  # the text that token adds
    cut = pieces[n_stop].find(stop)
    expected_n = next(n for n in range(N_TOKENS + 1) if stop in pieces[n])
    gen = backend.generate(PROMPT, max_tokens=N_TOKENS, stop=[stop], ignore_eos=True)
    assert gen.stop_reason == "stop" and gen.text == pieces[n_stop][:cut]
    assert gen.tokens_out == expected_n and gen.tokens == full.tokens[:expected_n]


def test_logits_equal_the_reference_network(backend, tiny):
    ids = backend.tokenize(PROMPT, add_bos=True)
    got = backend.logits(ids)
    want = reference_logits(tiny, ids)
    assert got.shape == (len(ids), tiny.vocab_size) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    first = backend.generate(PROMPT, max_tokens=1, ignore_eos=True).tokens[0]
    assert int(np.argmax(got[-1])) == first


def test_logits_need_need_logits(tiny):
    backend = _load(tiny)
    try:
        with pytest.raises(HarnessError, match="need_logits"):
            backend.logits([tiny.bos_token_id])
    finally:
        backend.unload()


def test_context_is_n_ctx_and_a_prompt_that_does_not_fit_is_refused(tiny):
    backend = _load(tiny, n_ctx=16)
    try:
        n_prompt = len(backend.tokenize(PROMPT, add_bos=True))
        gen = backend.generate(PROMPT, max_tokens=16 - n_prompt, ignore_eos=True)
        assert gen.tokens_out == 16 - n_prompt  # fills the context exactly
        with pytest.raises(HarnessError, match="exceed the context of 16 tokens"):
            backend.generate(PROMPT, max_tokens=17 - n_prompt)
    finally:
        backend.unload()


def test_info_names_the_runtime_and_model(backend):
    import onnxruntime
    import onnxruntime_genai

    info = backend.info()
    assert info["runtime"] == "onnx" and info["providers"] == ["cpu"]
    assert info["onnxruntime_genai_version"] == onnxruntime_genai.__version__
    assert info["onnxruntime_version"] == onnxruntime.__version__
    assert info["model_type"] == "llama" and info["device_type"] == "CPU"
