"""What a GGUF level holds, for the `compression` record: types, sizes, bits per weight.

Reads with the fast header reader (gguf_header), not gguf.GGUFReader, which needs 15-70 s to open
a file with Gemma 3's 262k-token vocabulary on a small machine.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..models import file_type_name
from .gguf_header import read_header

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.")
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")


def describe(path: Path) -> dict[str, Any]:
    """Size, parameter count, bits per weight and tensor-type histograms of a GGUF file.

    `bits_per_weight` is tensor-data bits / parameters, as llama.cpp prints it ("BPW"), so it is
    comparable across files whatever their metadata (vocabulary) size.
    """
    header = read_header(path)
    counts: dict[str, int] = {}
    params_by_type: dict[str, int] = {}
    for t in header.tensors:
        counts[t.type_name] = counts.get(t.type_name, 0) + 1
        params_by_type[t.type_name] = params_by_type.get(t.type_name, 0) + t.n_elements
    params = sum(t.n_elements for t in header.tensors)
    tensor_bytes = sum(t.n_bytes for t in header.tensors)
    arch = header.get("general.architecture")
    file_type = header.get("general.file_type")
    return {
        "file_size_bytes": Path(path).stat().st_size,
        "architecture": arch,
        "block_count": header.get(f"{arch}.block_count"),
        "quant_type": file_type_name(file_type) if file_type is not None else None,
        "params": params,
        "tensor_bytes": tensor_bytes,
        "bits_per_weight": round(tensor_bytes * 8 / params, 4) if params else None,
        "tensor_types": dict(sorted(counts.items())),
        "tensor_type_params": dict(sorted(params_by_type.items())),
        "is_quantized": any(n not in FLOAT_TYPES for n in counts),
    }


def block_index(tensor_name: str) -> int | None:
    """Transformer block number of a tensor named `blk.<n>.…`, None for global tensors."""
    m = _BLOCK_RE.match(tensor_name)
    return int(m.group(1)) if m else None
