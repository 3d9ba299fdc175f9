"""The GGUF header reader on forged files (issue 16, point 9): large arrays are skipped by size,
not turned into Python lists, and tensor sizes that overflow int64 are refused."""
from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest

from harness.errors import ModelError
from harness.gguf.header import LazyArray, LazyStrings, read_header

U32, F32, STRING, ARRAY = 4, 6, 8, 9


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _gguf(kvs: list[bytes], tensors: list[tuple[str, tuple[int, ...], int, int]] = (),
          data: bytes = b"") -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims, gtype, offset in tensors:
        head += _str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", gtype, offset)
    head += b"\0" * (-len(head) % 32)
    return head + data


def _kv_u32(key: str, v: int) -> bytes:
    return _str(key) + struct.pack("<II", U32, v)


def test_large_arrays_are_skipped_not_materialised(tmp_path):
    n_tokens, n_scores = 200_000, 2_000_000
    tokens = b"".join(_str(f"t{i}") for i in range(n_tokens))
    kvs = [_str("general.architecture") + struct.pack("<I", STRING) + _str("llama"),
           _kv_u32("llama.block_count", 2),
           _str("llama.attention.head_count") + struct.pack("<IIQ", ARRAY, U32, 2) + struct.pack("<II", 4, 8),
           _str("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, n_tokens) + tokens,
           _str("tokenizer.ggml.scores") + struct.pack("<IIQ", ARRAY, F32, n_scores)
           + b"\0" * (4 * n_scores)]
    path = tmp_path / "big.gguf"
    path.write_bytes(_gguf(kvs, [("w", (4, 2), 0, 0)], b"\0" * 32))
    import gguf  # noqa: F401  (its import is not the reader's memory)

    tracemalloc.start()
    header = read_header(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4_000_000, peak  # a list of 2 M floats alone is ~60 MB; 200 k strings ~12 MB
    assert header.get("llama.attention.head_count") == [4, 8]  # small arrays stay lists
    toks = header.get("tokenizer.ggml.tokens")
    assert isinstance(toks, LazyStrings) and len(toks) == n_tokens and toks[12345] == "t12345"
    scores = header.get("tokenizer.ggml.scores")
    assert isinstance(scores, LazyArray) and len(scores) == n_scores and scores[7] == 0.0
    assert header.tensors[0].n_elements == 8


def test_an_array_count_larger_than_the_file_is_refused_at_once(tmp_path):
    path = tmp_path / "forged.gguf"
    path.write_bytes(_gguf([_str("tokenizer.ggml.tokens")
                            + struct.pack("<IIQ", ARRAY, STRING, 2**60)]))
    with pytest.raises(ModelError, match="truncated"):
        read_header(path)


def test_tensor_dimensions_whose_product_overflows_int64_are_refused(tmp_path):
    dims = (2**32, 2**32)  # numpy int64 product wraps to 0: a tensor of no bytes, passed before
    path = tmp_path / "overflow.gguf"
    path.write_bytes(_gguf([], [("w", dims, 0, 0)], b"\0" * 64))
    with pytest.raises(ModelError, match="past the end of the file"):
        read_header(path)


def test_more_than_four_dimensions_or_an_unknown_type_is_refused(tmp_path):
    for name, tensors, match in (("dims", [("w", (1, 1, 1, 1, 1), 0, 0)], "dimensions"),
                                 ("type", [("w", (4,), 9999, 0)], "unknown type")):
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(_gguf([], tensors, b"\0" * 64))
        with pytest.raises(ModelError, match=match):
            read_header(path)


def test_the_real_model_header_reads_as_before(tmp_path):
    from harness.models import cache_dir

    models = sorted(Path(cache_dir()).rglob("*.gguf"))
    if not models:
        pytest.skip("no GGUF model in the cache")
    header = read_header(models[0])
    assert header.get("general.architecture")
    assert header.tensors and all(t.n_bytes > 0 for t in header.tensors)
