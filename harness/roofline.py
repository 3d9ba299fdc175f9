"""Decode roofline: how close a cell's decode rate comes to what memory bandwidth allows.

Why: decoding one token with a small model on a CPU is a stream over (almost) every weight plus the
KV cache, so tokens/s can never exceed bandwidth / bytes-per-token. A cell at 90% of that bound has
nothing left to gain from threads or kernels; one at 40% does (or is compute-bound). The bytes are
read from the GGUF's own tensor table and metadata (the fast header reader: gguf.GGUFReader takes
15-70 s on Gemma 3's vocabulary), never from a model-name table.

What one decode step reads, as llama.cpp runs it:
- every weight tensor in full, except row-lookup tables (the token embedding; learned position and
  per-layer token embeddings where a model has them), of which one row per token is read;
- but when the model has no `output.weight` its token embedding doubles as the output projection
  (tied embeddings, e.g. Gemma 3) and is read in full for the logits;
- of mixture-of-experts tensors (`*_exps`), expert_used_count / expert_count of the bytes;
- the KV cache: per layer, head_count_kv x (key_length + value_length) elements per attended
  position (f16 by default: 2 bytes), over min(positions, sliding_window) positions on
  sliding-window layers (which layers: the GGUF's `attention.sliding_window_pattern` when present,
  else llama.cpp's built-in pattern for the architecture).
This is the data the step needs; llama.cpp may read a little more (it pads its KV view to 256
cells), so the fraction is an upper bound on headroom, not an exact byte count.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .gguf import Header, read_header
from .devices.emulation import kv_bytes_per_token as kv_bytes_per_position

ROW_LOOKUP_TENSORS = ("token_embd.weight", "position_embd.weight", "per_layer_token_embd.weight")
TOKEN_EMBD, OUTPUT = "token_embd.weight", "output.weight"
KV_F16_BYTES = 2.0
# llama.cpp's built-in sliding-window patterns (load_swa_pattern(ml, n, dense_first) in
# src/models/<arch>.cpp), used when the GGUF carries no sliding_window_pattern key.
BUILTIN_SWA_PATTERN: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False), "gemma3": (6, False), "gemma3n": (5, False), "cohere2": (4, False),
    "exaone4": (4, False), "olmo2": (4, False), "gpt-oss": (2, False), "smallthinker": (4, True),
}


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    """GGUF stores some per-layer counts as one int or as an array with one entry per layer."""
    if value is None:
        return [default] * n_layer
    if isinstance(value, list):
        return [int(v) for v in value[:n_layer]] + [default] * max(0, n_layer - len(value))
    return [int(value)] * n_layer


def weight_bytes_read_per_token(header: Header) -> dict[str, Any]:
    """Bytes of weights one decode step reads (see the module docstring for the rules)."""
    arch = header.get("general.architecture")
    names = {t.name for t in header.tensors}
    tied = TOKEN_EMBD in names and OUTPUT not in names
    n_expert = header.get(f"{arch}.expert_count")
    n_used = header.get(f"{arch}.expert_used_count")
    expert_fraction = (n_used / n_expert) if n_expert and n_used else 1.0
    total = 0.0
    for t in header.tensors:
        if t.name in ROW_LOOKUP_TENSORS and not (tied and t.name == TOKEN_EMBD):
            rows = math.prod(t.shape[1:]) if len(t.shape) > 1 else 1
            total += t.n_bytes / rows
        elif "_exps." in t.name:
            total += t.n_bytes * expert_fraction
        else:
            total += t.n_bytes
    return {"weight_bytes_per_token": int(round(total)), "tied_embeddings": tied,
            "expert_fraction": expert_fraction if n_expert else None,
            "tensor_bytes": sum(t.n_bytes for t in header.tensors)}


def sliding_layers(header: Header, n_layer: int) -> tuple[list[bool], int | None, str]:
    """Which layers use sliding-window attention, the window, and where the pattern came from.

    Mirrors llama.cpp: no (or zero) `attention.sliding_window` means none; a per-layer bool array
    in `attention.sliding_window_pattern` is used as is; an integer n there (or the architecture's
    built-in n) makes every layer sliding except each n-th (the first of each group when the
    architecture is dense-first). An architecture with a window but no known pattern is counted
    as all full attention: more bytes, so the reported fraction is never flattered.
    """
    arch = header.get("general.architecture")
    window = header.get(f"{arch}.attention.sliding_window")
    if not window:
        return [False] * n_layer, None, "no sliding window"
    pattern = header.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list):
        flags = [bool(x) for x in pattern[:n_layer]]
        return flags + [False] * (n_layer - len(flags)), int(window), "gguf array"
    dense_first = BUILTIN_SWA_PATTERN.get(arch, (0, False))[1]
    if pattern is not None:
        n, source = int(pattern), "gguf"
    elif arch in BUILTIN_SWA_PATTERN:
        n, source = BUILTIN_SWA_PATTERN[arch][0], f"llama.cpp built-in for {arch}"
    else:
        return [False] * n_layer, int(window), f"unknown for {arch}: all layers counted as full"
    if dense_first:
        flags = [n == 0 or il % n != 0 for il in range(n_layer)]
    else:
        flags = [n == 0 or il % n < n - 1 for il in range(n_layer)]
    return flags, int(window), source


def kv_bytes_read_per_token(header: Header, n_ctx_mean: float,
                       kv_bytes_per_element: float = KV_F16_BYTES) -> dict[str, Any]:
    """KV-cache bytes one decode step reads when it attends over `n_ctx_mean` positions."""
    arch = header.get("general.architecture")
    n_layer = int(header.get(f"{arch}.block_count") or 0)
    n_embd = int(header.get(f"{arch}.embedding_length") or 0)
    n_head = _per_layer(header.get(f"{arch}.attention.head_count"), n_layer, 0)
    n_head_kv = _per_layer(header.get(f"{arch}.attention.head_count_kv"), n_layer, 0)
    if header.get(f"{arch}.attention.head_count_kv") is None:
        n_head_kv = n_head  # llama.cpp: no head_count_kv means plain multi-head attention
    head_dim = n_embd // max(n_head) if n_head and max(n_head) else 0
    k_len = int(header.get(f"{arch}.attention.key_length") or head_dim)
    v_len = int(header.get(f"{arch}.attention.value_length") or head_dim)
    k_swa = int(header.get(f"{arch}.attention.key_length_swa") or k_len)
    v_swa = int(header.get(f"{arch}.attention.value_length_swa") or v_len)
    swa, window, source = sliding_layers(header, n_layer)
    total = 0.0
    for il in range(n_layer):
        k, v = (k_swa, v_swa) if swa[il] else (k_len, v_len)
        positions = min(n_ctx_mean, window) if swa[il] else n_ctx_mean
        total += kv_bytes_per_position(1, n_head_kv[il], k, v, kv_bytes_per_element) * positions
    return {"kv_bytes_per_token": total, "n_layers": n_layer, "n_layers_sliding": sum(swa),
            "sliding_window": window, "swa_pattern_source": source,
            "kv_bytes_per_element": kv_bytes_per_element}


def decode_bytes_per_token(gguf_path: Path, n_ctx_mean: float,
                           kv_bytes_per_element: float = KV_F16_BYTES) -> dict[str, Any]:
    """Bytes one decode step reads: weights actually touched + KV cache over `n_ctx_mean`
    attended positions (use mean_kv_positions for a generation). Keys: bytes_per_token,
    weight_bytes_per_token, kv_bytes_per_token, tensor_bytes, tied_embeddings, expert_fraction,
    n_layers, n_layers_sliding, sliding_window, swa_pattern_source, kv_bytes_per_element,
    n_ctx_mean."""
    if not n_ctx_mean >= 0:
        raise ValueError(f"n_ctx_mean must be >= 0, got {n_ctx_mean}")
    header = read_header(Path(gguf_path))
    weights = weight_bytes_read_per_token(header)
    kv = kv_bytes_read_per_token(header, n_ctx_mean, kv_bytes_per_element)
    return {"bytes_per_token": weights["weight_bytes_per_token"] + kv["kv_bytes_per_token"],
            **weights, **kv, "n_ctx_mean": float(n_ctx_mean)}


def mean_kv_positions(tokens_in: int, tokens_out: int) -> float:
    """Mean positions attended per decode step of a generation: the step that evaluates the
    token at position p attends over p + 1 positions; decode evaluates positions tokens_in ..
    tokens_in + tokens_out - 2 (the first output token comes from the prefill's logits)."""
    if tokens_out <= 1:
        return float(tokens_in + 1)
    return tokens_in + tokens_out / 2


def bound_tokens_per_s(bytes_per_token: float, bandwidth_bytes_per_s: float) -> float:
    """The memory-bandwidth ceiling on decode tokens/s."""
    _check_positive(bytes_per_token=bytes_per_token, bandwidth_bytes_per_s=bandwidth_bytes_per_s)
    return bandwidth_bytes_per_s / bytes_per_token


def roofline_fraction(decode_tokens_per_s: float, bytes_per_token: float,
                      bandwidth_bytes_per_s: float) -> float:
    """Achieved decode rate over the bandwidth ceiling (1.0 = at the bound; above 1.0 means the
    weights were partly served from cache or the bandwidth figure is too low)."""
    _check_positive(bytes_per_token=bytes_per_token, bandwidth_bytes_per_s=bandwidth_bytes_per_s)
    if not (decode_tokens_per_s >= 0 and math.isfinite(decode_tokens_per_s)):
        raise ValueError("decode_tokens_per_s must be a finite number >= 0, "
                         f"got {decode_tokens_per_s}")
    return decode_tokens_per_s * bytes_per_token / bandwidth_bytes_per_s


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
