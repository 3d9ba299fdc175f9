"""What a GGUF file says about its model: architecture, sizes, one quant type, one bits per weight.

Everything here reads the fast header reader (header.py), not gguf.GGUFReader, which needs
15-70 s to open a file with Gemma 3's 262k-token vocabulary on a small machine. The model fields
of a record (`quant_type`, `bits_per_weight`) and the `compression` record of a level are both
computed by the functions below, so the two can never disagree.
"""
from __future__ import annotations

import numbers
import re
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .header import Header, read_header

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")

# llama.cpp's LLAMA_FTYPE_* numbering (stable across versions; MOSTLY_ prefix dropped).
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}


def file_type_name(file_type: int) -> str:
    """llama.cpp's name of a `general.file_type` number (e.g. 15 -> "Q4_K_M")."""
    return _FILE_TYPES.get(int(file_type), f"ftype{int(file_type)}")


def bits_per_weight(header: Header) -> float | None:
    """Tensor-data bits / parameters, as llama.cpp prints it ("BPW"), at full precision.

    Comparable across files whatever their metadata (vocabulary) size. Not rounded: a record keeps
    the figure, the report rounds it for display.
    """
    params = sum(t.n_elements for t in header.tensors)
    return sum(t.n_bytes for t in header.tensors) * 8 / params if params else None


def quant_type(header: Header) -> str | None:
    """The file's type as llama.cpp names it (`general.file_type`); a file that does not say
    gets the tensor type holding the most parameters (what most of its bytes are)."""
    file_type = header.get("general.file_type")
    if file_type is not None:
        if isinstance(file_type, bool) or not isinstance(file_type, numbers.Integral):
            raise ModelError(f"{header.path}: general.file_type is {type(file_type).__name__} "
                             f"{str(file_type)[:40]!r}, not an integer; the file is corrupt or forged")
        return file_type_name(file_type)
    return _most_params(header)


def _most_params(header: Header) -> str | None:
    params = tensor_type_params(header)
    return max(params, key=params.__getitem__) if params else None


def tensor_types(header: Header) -> dict[str, int]:
    """Tensor count per ggml type, sorted by type name."""
    counts: dict[str, int] = {}
    for t in header.tensors:
        counts[t.type_name] = counts.get(t.type_name, 0) + 1
    return dict(sorted(counts.items()))


def tensor_type_params(header: Header) -> dict[str, int]:
    """Parameters per ggml type, sorted by type name."""
    params: dict[str, int] = {}
    for t in header.tensors:
        params[t.type_name] = params.get(t.type_name, 0) + t.n_elements
    return dict(sorted(params.items()))


def read_checked(path: Path) -> Header:
    """read_header, with any parse failure of a cut or malformed file as a ModelError naming it."""
    try:
        return read_header(Path(path))
    except ModelError:
        raise
    except Exception as e:  # struct/index errors on a file cut inside its metadata
        raise ModelError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e}); "
                         "it may be truncated") from None


def gguf_info(path: Path) -> dict[str, Any]:
    """The model facts a record carries: architecture, context length, KV shape, params, quant
    type, bits per weight. A truncated or malformed file raises ModelError naming the file."""
    header = read_checked(path)
    arch = header.get("general.architecture")
    types = tensor_types(header)
    return {
        "architecture": arch,
        "name": header.get("general.name"),
        "context_length": header.get(f"{arch}.context_length"),
        "block_count": header.get(f"{arch}.block_count"),
        "head_count_kv": header.get(f"{arch}.attention.head_count_kv"),
        "key_length": header.get(f"{arch}.attention.key_length"),
        "value_length": header.get(f"{arch}.attention.value_length"),
        "params": sum(t.n_elements for t in header.tensors),
        "tensor_bytes": sum(t.n_bytes for t in header.tensors),
        "bits_per_weight": bits_per_weight(header),
        "quant_type": quant_type(header),
        "tensor_types": types,
        "n_tensors": len(header.tensors),
    }


def describe(path: Path) -> dict[str, Any]:
    """What a GGUF level holds, for the `compression` record: size, parameters, one quant type,
    one bits per weight, and tensor-type histograms (count and parameters per type)."""
    header = read_header(Path(path))
    arch = header.get("general.architecture")
    counts = tensor_types(header)
    return {
        "file_size_bytes": Path(path).stat().st_size,
        "architecture": arch,
        "block_count": header.get(f"{arch}.block_count"),
        "quant_type": quant_type(header),
        "params": sum(t.n_elements for t in header.tensors),
        "tensor_bytes": sum(t.n_bytes for t in header.tensors),
        "bits_per_weight": bits_per_weight(header),
        "tensor_types": counts,
        "tensor_type_params": tensor_type_params(header),
        "is_quantized": any(n not in FLOAT_TYPES for n in counts),
    }


def kv_shape(info: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """(block_count, head_count_kv, key_length, value_length) from gguf_info, None if any is
    missing (llama.cpp then derives them; the harness does not guess)."""
    parts = tuple(info.get(k) for k in ("block_count", "head_count_kv", "key_length", "value_length"))
    return parts if all(isinstance(x, int) and x > 0 for x in parts) else None  # type: ignore[return-value]


def block_index(tensor_name: str) -> int | None:
    """Transformer block number of a tensor named `blk.<n>.…`, None for global tensors."""
    m = _BLOCK_RE.match(tensor_name)
    return int(m.group(1)) if m else None
