"""Reading GGUF files (header.py: metadata and tensor table, data left on disk) and their facts
(facts.py: the one quant type and the one bits per weight every record and report uses)."""
from __future__ import annotations

from .facts import (FLOAT_TYPES, bits_per_weight, block_index, describe, file_type_name, gguf_info,
                    kv_shape, quant_type, read_checked)
from .header import GGUF_MAGIC, KV, Header, TensorInfo, check_magic, read_header

__all__ = ["FLOAT_TYPES", "GGUF_MAGIC", "KV", "Header", "TensorInfo", "bits_per_weight",
           "block_index", "check_magic", "describe", "file_type_name", "gguf_info", "kv_shape",
           "quant_type", "read_checked", "read_header"]
