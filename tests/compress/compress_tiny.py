"""A tiny random-weight Gemma 3 GGUF that llama.cpp loads in well under a second.

Same architecture, tensor names and metadata layout as Gemma 3 270M (sliding-window attention
with the built-in 6-block pattern included), with small dimensions and a byte-level vocabulary,
so quantizing, pruning and loading it exercise the same code paths as the real model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

N_EMBD, N_FF, N_HEAD, HEAD_DIM, N_BLOCKS = 256, 512, 2, 128, 6


def _vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)]
    types = [3, 3, 3, 2] + [6] * 256  # control, unknown, byte
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < n_vocab:  # distinct word pieces: ▁a ... ▁z, ▁ba, ▁bb, ... (base 26)
        piece, n = "", i
        while True:
            n, r = divmod(n, 26)
            piece = letters[r] + piece
            if n == 0:
                break
        tokens.append("\u2581" + piece)
        types.append(1)
        i += 1
    scores = [0.0] * 4 + [-1000.0] * 256 + [-float(j) for j in range(len(tokens) - 260)]
    return tokens, scores, types


def write_tiny_gemma3(path: Path, n_vocab: int = 1024, seed: int = 0) -> Path:
    """Write the tiny model (F32 weights, as a converter from safetensors would) to `path`."""
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("tiny-gemma3-test")
    w.add_context_length(512)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_BLOCKS)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(1)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_sliding_window(64)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    tokens, scores, types = _vocab(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", mat(n_vocab, N_EMBD))
    w.add_tensor("output_norm.weight", ones(N_EMBD))
    for b in range(N_BLOCKS):
        p = f"blk.{b}."
        w.add_tensor(p + "attn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "attn_q.weight", mat(N_HEAD * HEAD_DIM, N_EMBD))
        w.add_tensor(p + "attn_k.weight", mat(HEAD_DIM, N_EMBD))
        w.add_tensor(p + "attn_v.weight", mat(HEAD_DIM, N_EMBD))
        w.add_tensor(p + "attn_q_norm.weight", ones(HEAD_DIM))
        w.add_tensor(p + "attn_k_norm.weight", ones(HEAD_DIM))
        w.add_tensor(p + "attn_output.weight", mat(N_EMBD, N_HEAD * HEAD_DIM))
        w.add_tensor(p + "post_attention_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "ffn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "ffn_gate.weight", mat(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", mat(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", mat(N_EMBD, N_FF))
        w.add_tensor(p + "post_ffw_norm.weight", ones(N_EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
