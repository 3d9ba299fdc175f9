"""Pruning a GGUF model into a new GGUF, which llama.cpp's quantizer then takes to the level.

Two methods (see docs/compression.md for the exact rules):
- magnitude: in every linear projection weight of every block (attention q/k/v/output, MLP
  gate/up/down), the `sparsity` fraction of entries with the smallest |w| is set to 0, per tensor.
- drop_layers: the `n_layers` blocks just before the final block are removed, the rest are
  renumbered, and `<arch>.block_count` plus every per-layer metadata array are shortened to match.

Only the tensors that pruning changes (magnitude: the linear weights) are dequantized with
gguf.quants.dequantize and written as F16/F32; every other kept tensor (embedding, norms, all of
a layer-dropped model's blocks) is copied byte for byte in its source encoding, and llama.cpp's
quantizer then treats it exactly as in an unpruned build of the same level. Tensors are written
one at a time, so peak memory stays near one linear weight rather than the whole model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ModelError
from ..gguf import Header, TensorInfo, block_index, read_header
from .levels import Prune

LINEAR_RE = re.compile(
    r"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")

# Architectures whose llama.cpp loader derives the sliding-window layer pattern from a built-in
# period (load_swa_pattern(ml, n, dense_first)). Dropping blocks shifts that pattern, which
# would silently switch kept blocks between local and global attention (and their RoPE base),
# so the pruned file gets the kept blocks' pattern written explicitly as a bool array.
SWA_DEFAULT_PATTERN: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False), "gemma3": (6, False), "gemma-embedding": (6, False),
    "cohere2": (4, False), "olmo2": (4, False), "exaone4": (4, False), "llama4": (4, False),
}

Progress = Callable[[str], None]


@dataclass
class PruneStats:
    """What pruning achieved, for the compression record."""

    method: str
    params_before: int = 0
    params_after: int = 0
    pruned_tensors: int = 0
    pruned_params: int = 0  # entries of the pruned (linear) tensors
    pruned_zeros: int = 0  # of those, entries equal to 0 after pruning
    dropped_blocks: list[int] = field(default_factory=list)
    block_count_before: int | None = None
    block_count_after: int | None = None

    def as_record(self, prune: Prune) -> dict[str, Any]:
        rec: dict[str, Any] = dict(prune.recipe(), params_before=self.params_before,
                                   params_after=self.params_after)
        if self.method == "magnitude":
            rec.update(sparsity_target=prune.sparsity, pruned_tensors=self.pruned_tensors,
                       pruned_params=self.pruned_params,
                       sparsity_achieved=round(self.pruned_zeros / self.pruned_params, 6)
                       if self.pruned_params else None,
                       params_nonzero_linear=self.pruned_params - self.pruned_zeros)
        else:
            rec.update(dropped_blocks=self.dropped_blocks,
                       block_count_before=self.block_count_before,
                       block_count_after=self.block_count_after)
        return rec


def magnitude_prune(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero exactly round(sparsity * n) entries with the smallest |w| (ties broken by position)."""
    flat = np.array(weights, dtype=np.float32, copy=True).reshape(-1)
    k = int(round(sparsity * flat.size))
    if k > 0:
        idx = np.argpartition(np.abs(flat), k - 1)[:k]
        flat[idx] = 0.0
    return flat.reshape(weights.shape)


def blocks_to_drop(block_count: int, n_layers: int) -> list[int]:
    """The n blocks just before the final one (deep blocks are the most redundant; the final
    block and the early blocks, which build the representation, are kept)."""
    if n_layers >= block_count - 1:
        raise ModelError(f"cannot drop {n_layers} of {block_count} blocks: at least the first and "
                         f"the final block must remain (use n_layers <= {block_count - 2})")
    last = block_count - 1
    return list(range(last - n_layers, last))


def swa_pattern(header: Header, arch: str, block_count: int) -> list[bool] | None:
    """Per-block "uses sliding-window attention" as llama.cpp would derive it, None if no SWA."""
    explicit = header.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(explicit, list):
        return [bool(v) for v in explicit]
    if header.get(f"{arch}.attention.sliding_window") in (None, 0):
        return None
    if arch not in SWA_DEFAULT_PATTERN:
        raise ModelError(f"{arch}: sliding-window attention with a built-in layer pattern the "
                         "harness does not know; dropping layers would change which layers "
                         "attend globally. Use magnitude pruning for this model.")
    n, dense_first = SWA_DEFAULT_PATTERN[arch]
    if isinstance(explicit, int):  # a scalar period in the file overrides the built-in one
        n = explicit
    if dense_first:
        return [n == 0 or il % n != 0 for il in range(block_count)]
    return [n == 0 or il % n < n - 1 for il in range(block_count)]


def write_pruned(source: Path, dest: Path, prune: Prune, float_type: str,
                 progress: Progress | None = None) -> PruneStats:
    """Write `source` pruned by `prune` to `dest`: pruned tensors as `float_type` (F16/F32),
    every other kept tensor byte for byte in its source encoding."""
    import gguf

    header = read_header(source)
    arch = header.get("general.architecture")
    block_count = header.get(f"{arch}.block_count")
    if not arch or not isinstance(block_count, int):
        raise ModelError(f"{source}: no general.architecture / block_count; not a llama.cpp model")
    stats = PruneStats(method=prune.method, block_count_before=block_count,
                       block_count_after=block_count)
    dropped: list[int] = []
    if prune.method == "drop_layers":
        dropped = blocks_to_drop(block_count, prune.n_layers or 0)
        stats.dropped_blocks = dropped
        stats.block_count_after = block_count - len(dropped)
    renumber = _renumbering(block_count, dropped)
    kept = [t for t in header.tensors if _keep(t.name, renumber)]
    float_dtype = np.dtype(np.float32 if float_type == "F32" else np.float16)
    writer = gguf.GGUFWriter(str(dest), arch)
    _copy_metadata(header, writer, arch, block_count, dropped, float_type,
                   all_float=all(_pruned(prune, t) or t.type_name in ("F32", "F16") for t in kept))
    for t in kept:
        name = _new_name(t.name, renumber)
        if _pruned(prune, t):
            writer.add_tensor_info(name, tuple(reversed(t.shape)), float_dtype,
                                   t.n_elements * float_dtype.itemsize)
        else:
            raw = header.tensor_data(t)
            writer.add_tensor_info(name, raw.shape, raw.dtype, t.n_bytes,
                                   raw_dtype=gguf.GGMLQuantizationType(t.ggml_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    stats.params_before = sum(t.n_elements for t in header.tensors)
    for i, t in enumerate(kept):
        if _pruned(prune, t):
            data = magnitude_prune(_float_tensor(header, t), prune.sparsity or 0.0)
            stats.pruned_tensors += 1
            stats.pruned_params += data.size
            stats.pruned_zeros += int(np.count_nonzero(data == 0))
            writer.write_tensor_data(np.ascontiguousarray(data, dtype=float_dtype))
        else:
            writer.write_tensor_data(header.tensor_data(t))
        stats.params_after += t.n_elements
        if progress and (i % 50 == 0 or i == len(kept) - 1):
            progress(f"pruning: wrote tensor {i + 1}/{len(kept)}")
    writer.close()
    return stats


def _pruned(prune: Prune, t: TensorInfo) -> bool:
    return prune.method == "magnitude" and bool(LINEAR_RE.match(t.name))


def _float_tensor(header: Header, t: TensorInfo) -> np.ndarray:
    """The tensor's values as float32 in numpy (row-major, ggml dims reversed)."""
    import gguf

    shape = tuple(reversed(t.shape))
    raw = header.tensor_data(t)
    if t.type_name in ("F32", "F16"):
        return np.asarray(raw, dtype=np.float32).reshape(shape)
    qtype = gguf.GGMLQuantizationType(t.ggml_type)
    return gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(shape)


def _renumbering(block_count: int, dropped: list[int]) -> dict[int, int]:
    kept = [b for b in range(block_count) if b not in set(dropped)]
    return {old: new for new, old in enumerate(kept)}


def _keep(name: str, renumber: dict[int, int]) -> bool:
    b = block_index(name)
    return b is None or b in renumber


def _new_name(name: str, renumber: dict[int, int]) -> str:
    b = block_index(name)
    if b is None:
        return name
    return f"blk.{renumber[b]}." + name[len(f"blk.{b}."):]


def _copy_metadata(header: Header, writer: Any, arch: str, block_count: int,
                   dropped: list[int], float_type: str, all_float: bool) -> None:
    """Copy every key; shorten per-layer arrays and block_count; a file whose tensors are now
    all float says so in general.file_type."""
    import gguf

    pattern = swa_pattern(header, arch, block_count) if dropped else None
    pattern_key = f"{arch}.attention.sliding_window_pattern"
    for key, kv in header.kv.items():
        if key in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.ALIGNMENT):
            continue  # written by GGUFWriter itself (the writer uses its default alignment)
        if key == pattern_key and pattern is not None:
            continue  # rewritten below from the kept blocks
        value = kv.value
        if key == f"{arch}.block_count":
            value = block_count - len(dropped)
        elif key == gguf.Keys.General.FILE_TYPE and all_float:
            value = int(gguf.LlamaFileType.ALL_F32 if float_type == "F32"
                        else gguf.LlamaFileType.MOSTLY_F16)
        elif (dropped and kv.sub_type is not None and key.startswith(f"{arch}.")
              and len(value) == block_count):
            value = [v for i, v in enumerate(value) if i not in set(dropped)]
        sub = gguf.GGUFValueType(kv.sub_type) if kv.sub_type is not None else None
        writer.add_key_value(key, value, gguf.GGUFValueType(kv.vtype), sub_type=sub)
    if pattern is not None:
        kept_pattern = [v for i, v in enumerate(pattern) if i not in set(dropped)]
        writer.add_key_value(pattern_key, kept_pattern, gguf.GGUFValueType.ARRAY,
                             sub_type=gguf.GGUFValueType.BOOL)
