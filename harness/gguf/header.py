"""A fast reader of a GGUF file's metadata and tensor table (data stays on disk, memory-mapped).

Why not gguf.GGUFReader: it builds numpy views for every element of every array, which for
Gemma 3's 262,144-token vocabulary took 15-70 s per open on the 2-core dev machine. This reader
decodes the same layout (GGUF v2/v3, little-endian) in well under a second; tensor types, block
sizes and dequantization still come from the gguf package.
"""
from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ModelError

GGUF_MAGIC = b"GGUF"
# GGUF value types (gguf.GGUFValueType) -> struct format of one scalar
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?",
          10: "<u8", 11: "<i8", 12: "<f8"}
STRING, ARRAY = 8, 9
SMALL_ARRAY = 4096  # numeric arrays up to this many elements are read as lists (per-layer values)
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_STRING_BYTES = 16 * 2**20  # one key or string value (chat templates are kilobytes)
MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset


@dataclass(frozen=True)
class KV:
    """One metadata entry: value, its GGUF type and, for arrays, the element type."""

    value: Any
    vtype: int
    sub_type: int | None = None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order (ne0 first), as stored in the file
    ggml_type: int
    offset: int  # absolute file offset of the data
    n_elements: int
    n_bytes: int

    @property
    def type_name(self) -> str:
        import gguf

        return gguf.GGMLQuantizationType(self.ggml_type).name


@dataclass(frozen=True)
class Header:
    path: Path
    version: int
    kv: dict[str, KV]
    tensors: list[TensorInfo]
    alignment: int

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.kv.get(key)
        return default if entry is None else entry.value

    def tensor_data(self, t: TensorInfo) -> np.ndarray:
        """The tensor as stored, memory-mapped: float dtypes as numbers, quantized as raw bytes
        shaped (rows, bytes per row), the layout gguf.quants.dequantize takes."""
        import gguf

        qtype = gguf.GGMLQuantizationType(t.ggml_type)
        np_shape = tuple(reversed(t.shape))
        floats = {gguf.GGMLQuantizationType.F32: "<f4", gguf.GGMLQuantizationType.F16: "<f2"}
        if qtype in floats:
            return np.memmap(self.path, dtype=floats[qtype], mode="r", offset=t.offset,
                             shape=np_shape)
        byte_shape = gguf.quants.quant_shape_to_byte_shape(np_shape, qtype)
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=t.offset, shape=byte_shape)


class _Cursor:
    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def scalar(self, fmt: str) -> Any:
        try:
            (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise ModelError(f"{self.path}: GGUF header ends early; the file is truncated") from None
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > MAX_STRING_BYTES:
            raise ModelError(f"{self.path}: a GGUF metadata string of {n:,} bytes (at most "
                             f"{MAX_STRING_BYTES:,} are read); the file is corrupt")
        self.need(n)
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int) -> KV:
        if vtype == STRING:
            return KV(self.string(), vtype)
        if vtype in _SCALAR:
            return KV(self.scalar(_SCALAR[vtype]), vtype)
        if vtype != ARRAY:
            raise ModelError(f"{self.path}: unknown GGUF value type {vtype}")
        sub, count = self.scalar("<I"), self.scalar("<Q")
        if sub == STRING:
            return KV(self.skip_strings(count), vtype, sub)
        if sub not in _NUMPY:
            raise ModelError(f"{self.path}: unsupported GGUF array element type {sub}")
        dt = np.dtype(_NUMPY[sub])
        self.need(dt.itemsize * count)
        arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += dt.itemsize * count
        # small arrays (per-layer head counts) as lists; large ones stay a view of the mapped file
        return KV(arr.tolist() if count <= SMALL_ARRAY else LazyArray(arr), vtype, sub)

    def need(self, n_bytes: int) -> None:
        if n_bytes < 0 or self.pos + n_bytes > len(self.buf):
            raise ModelError(f"{self.path}: GGUF header ends early; the file is truncated")

    def skip_strings(self, count: int) -> "LazyStrings":
        """Step over a string array by its length prefixes; nothing is decoded or kept."""
        self.need(8 * count)  # every string has at least its 8-byte length
        start = self.pos
        for _ in range(count):
            (n,) = struct.unpack_from("<Q", self.buf, self.pos)
            self.pos += 8
            self.need(n)
            self.pos += n
        return LazyStrings(self.buf, start, count)


class LazyArray(Sequence):
    """A large numeric metadata array (token scores, types): a view of the mapped file, no copy."""

    def __init__(self, arr: np.ndarray):
        self._arr = arr

    def __len__(self) -> int:
        return len(self._arr)

    def __getitem__(self, i: Any) -> Any:
        got = self._arr[i]
        return got.tolist()

    def tolist(self) -> list[Any]:
        return self._arr.tolist()


class LazyStrings(Sequence):
    """A string metadata array (a 262,144-token vocabulary) decoded only when someone iterates.

    The header reader skips these by size: holding them as Python strings cost gigabytes for a
    forged file and seconds for a real one, and nothing the harness measures needs them.
    """

    def __init__(self, buf: memoryview, start: int, count: int):
        self._buf, self._start, self._count = buf, start, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        pos = self._start
        for _ in range(self._count):
            (n,) = struct.unpack_from("<Q", self._buf, pos)
            yield bytes(self._buf[pos + 8:pos + 8 + n]).decode("utf-8", errors="replace")
            pos += 8 + n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return list(self)[i]
        if not -self._count <= i < self._count:
            raise IndexError(i)
        return next(itertools.islice(iter(self), i % self._count, None))

    def tolist(self) -> list[str]:
        return list(self)


def read_header(path: Path) -> Header:
    """Parse the metadata and tensor table; raise ModelError for a non-GGUF or truncated file."""
    import gguf

    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(memoryview(data), path)
    if bytes(data[:4]) != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (first bytes {bytes(data[:4])!r})")
    cur.pos = 4
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise ModelError(f"{path}: GGUF version {version} is not supported (2 or 3 expected; "
                         "big-endian files are not supported)")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    cur.need(n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_BYTES)  # counts a forged file inflated
    kv = {}
    for _ in range(n_kv):
        key = cur.string()
        kv[key] = cur.value(cur.scalar("<I"))
    raw = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("<I")
        if n_dims > MAX_DIMS:
            raise ModelError(f"{path}: tensor {name[:80]!r} has {n_dims} dimensions (GGUF allows "
                             f"at most {MAX_DIMS}); the file is corrupt")
        dims = tuple(cur.scalar("<Q") for _ in range(n_dims))
        raw.append((name, dims, cur.scalar("<I"), cur.scalar("<Q")))
    alignment = int(kv["general.alignment"].value) if "general.alignment" in kv else 32
    if not isinstance(alignment, int) or alignment <= 0:
        raise ModelError(f"{path}: general.alignment {alignment!r} is not a positive integer")
    start = -(-cur.pos // alignment) * alignment
    return Header(path, version, kv, [_tensor(path, len(data), start, *r, gguf) for r in raw],
                  alignment)


def _tensor(path: Path, file_bytes: int, start: int, name: str, dims: tuple[int, ...],
            ggml_type: int, offset: int, gguf: Any) -> TensorInfo:
    """One tensor's table entry, refused when its size cannot be true of this file.

    Python integers: a dimension product that would wrap around in int64 (numpy) stays huge here
    and fails the end-of-file check instead of passing as a small number.
    """
    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ModelError(f"{path}: tensor {name[:80]!r} has unknown type {ggml_type}; the file "
                         "is corrupt or newer than this gguf package") from None
    n = math.prod(dims)
    t = TensorInfo(name, dims, ggml_type, start + offset, n, n * type_size // block)
    if n > file_bytes * 8 or t.offset + t.n_bytes > file_bytes:  # 8: elements per byte at most
        raise ModelError(f"{path}: tensor {name[:80]!r} ({' x '.join(map(str, dims))}) extends "
                         "past the end of the file; the file is truncated or corrupt")
    return t


def check_magic(path: Path) -> None:
    """The first four bytes only: a cheap 'is this a GGUF file at all' before hashing it."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (first bytes {magic!r}, expected b'GGUF')")
