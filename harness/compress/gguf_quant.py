"""Make sure a GGUF compression level of a source model exists, building it once if needed.

The build itself runs in a child process (harness.compress.worker) inside a private cache folder
that becomes the cache entry by one atomic rename, so the result is either a complete file
described by its record or nothing at all.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import HarnessError, ModelError, write_error
from ..gguf import describe
from ..models import sha256_file
from . import cache
from .levels import Level, gguf_quant_types

Progress = Callable[[str], None]
LOG_FILE = "build.log"
# Bump when the harness's own part of a build (pruning, metadata rewriting) changes its output,
# so that cached files built the old way are not reused.
PIPELINE_VERSION = 2


@dataclass(frozen=True)
class Artifact:
    """The file a cell loads for a level, and the record of how it was made."""

    path: Path
    compression: dict[str, Any]


def llama_cpp_version() -> str:
    """Version of llama-cpp-python, which pins the vendored llama.cpp that quantizes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        raise HarnessError("GGUF levels need llama-cpp-python: pip install llama-cpp-python") from None


def tool_version() -> str:
    """What built the file, for the cache key: llama.cpp (via its binding) and this pipeline."""
    return f"llama-cpp-python {llama_cpp_version()}; edgebench-compress {PIPELINE_VERSION}"


def ensure_level(source_path: Path, source_sha256: str, level: Level, allow_requantize: bool,
                 cache_dir: Path, progress: Progress | None = None) -> Artifact:
    """The artifact for `level` of the source model: the source itself, a given file, or a
    cached build (built now on a miss). Raises HarnessError when the level needs a
    requantization that the model does not allow."""
    if level.kind == "onnx":
        raise HarnessError(f"level '{level.name}' is an ONNX level; it is built by "
                           "harness.compress.onnx_export, not the GGUF quantizer")
    source_path = Path(source_path)
    src = describe(source_path)
    base = {"level": level.name, "recipe": level.recipe, "source_sha256": source_sha256,
            "source_quant_type": src["quant_type"]}
    if level.kind == "path":
        return Artifact(level.path, _record(base, describe(level.path), kind="file"))
    if level.prune is None and level.quant == src["quant_type"]:
        return Artifact(source_path, _record(base, src, kind="source"))
    if src["is_quantized"] and not allow_requantize:
        raise HarnessError(
            f"level '{level.name}' would requantize {source_path.name}, whose weights are already "
            f"{src['quant_type']}; set `allow_requantize: true` on the model in the matrix (or "
            f"pass --allow-requantize) to accept that its quality cannot exceed {src['quant_type']}")
    version = llama_cpp_version()
    key = cache.cache_key(source_sha256, level.recipe, tool_version())
    hit = cache.lookup(cache_dir, key)
    if hit is not None:
        _say(progress, f"{level.name}: cached {hit.path}")
        return Artifact(hit.path, dict(hit.meta["compression"], cache_hit=True))
    return _build(source_path, src, level, base, key, version, Path(cache_dir), progress)


def _build(source_path: Path, src: dict[str, Any], level: Level, base: dict[str, Any], key: str,
           version: str, cache_dir: Path, progress: Progress | None) -> Artifact:
    try:
        return _build_in_cache(source_path, src, level, base, key, version, cache_dir, progress)
    except OSError as e:  # the cache folder: read-only, full, or a file in the way
        raise write_error(e.filename or cache_dir, e, "the level cache (HARNESS_CACHE_DIR) must be "
                          "a writable folder with room for the level") from None


def _build_in_cache(source_path: Path, src: dict[str, Any], level: Level, base: dict[str, Any],
                    key: str, version: str, cache_dir: Path, progress: Progress | None) -> Artifact:
    name = f"{_stem(source_path)}.{level.name}.gguf"
    with cache.build(cache_dir, key) as work:
        job = {"source": str(source_path), "out": str(work / name), "quant": level.quant,
               "ftype": gguf_quant_types()[level.quant or ""],
               "allow_requantize": bool(src["is_quantized"]),
               "prune": _prune_job(level), "float_type": "F32" if level.quant in ("F32", "BF16")
               else "F16", "nthread": 0}
        t0 = time.monotonic()
        result = _run_worker(job, work, level, progress)
        build_time_s = round(time.monotonic() - t0, 3)
        out = describe(work / name)
        compression = _record(base, out, kind="prune+quantize" if level.prune else "quantize")
        compression.update(
            requantized=bool(src["is_quantized"]), llama_cpp_version=version, cache_key=key,
            sha256=sha256_file(work / name), build_time_s=build_time_s,
            build_work_time_s=result["work_time_s"], build_peak_rss_bytes=result["peak_rss_bytes"],
            build_threads=os.cpu_count(), prune=result["prune"])
        entry = cache.commit(work, cache_dir, key, name, {"compression": compression})
    _say(progress, f"{level.name}: built {entry.path} in {build_time_s:.1f} s")
    return Artifact(entry.path, dict(entry.meta["compression"], cache_hit=False))


def _record(base: dict[str, Any], info: dict[str, Any], kind: str) -> dict[str, Any]:
    """The compression record fields every level has, built or not."""
    rec = dict(base, kind=kind, quant_type=info["quant_type"],
               file_size_bytes=info["file_size_bytes"], params=info["params"],
               bits_per_weight=info["bits_per_weight"], tensor_types=info["tensor_types"],
               tensor_type_params=info["tensor_type_params"])
    if kind in ("source", "file"):  # nothing built: no build cost, no cache involved
        rec.update(requantized=False, cache_hit=None, build_time_s=None,
                   build_peak_rss_bytes=None, prune=None)
    return rec


def _prune_job(level: Level) -> dict[str, Any] | None:
    if level.prune is None:
        return None
    return {"method": level.prune.method, "sparsity": level.prune.sparsity,
            "n_layers": level.prune.n_layers}


def _run_worker(job: dict[str, Any], work: Path, level: Level,
                progress: Progress | None) -> dict[str, Any]:
    """Run the build child; forward its progress; raise with the log tail when it fails."""
    log_path = work / LOG_FILE
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness.compress.worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                text=True, env=_child_env())
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        result, error = None, None
        for line in proc.stdout:
            msg = _parse(line)
            if msg.get("event") == "progress":
                _say(progress, f"{level.name}: {msg.get('message')}")
            elif msg.get("event") == "done":
                result = msg.get("result")
            elif msg.get("event") == "error":
                error = msg.get("message")
        rc = proc.wait()
    if rc != 0 or result is None:
        _refuse_if_full(Path(job["out"]), error)
        tail = _tail(log_path)
        reason = error or (f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}")
        raise ModelError(f"building level '{level.name}' failed: {reason}\n{tail}")
    return result


# Below this much free space a failed build is put down to a full disk: the quantizer itself
# only says "iostream error" (or "No space left") when its output write fails.
FULL_DISK_BYTES = 1 << 20


def _refuse_if_full(out: Path, error: str | None) -> None:
    """A build that failed on a full cache folder says so, naming the file and the cause."""
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if free < FULL_DISK_BYTES:
        said = f" (the quantizer said: {error.strip()[:200]})" if error else ""
        raise write_error(out, OSError(errno.ENOSPC, "No space left on device"),
                          f"{free} bytes left in {out.parent.parent}; free space or point "
                          f"HARNESS_CACHE_DIR elsewhere{said}")


def _child_env() -> dict[str, str]:
    """The child imports this package from wherever the parent found it."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _parse(line: str) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return msg if isinstance(msg, dict) else {}


def _tail(path: Path, n_lines: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n_lines:])


def _stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:80] or "model"


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
