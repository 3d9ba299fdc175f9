"""Convert a GGUF model to an onnxruntime-genai folder (fp32, fp16, int8, int4), offline, cached.

Two steps, each in a child process so its peak RSS is its own and a crash or an out-of-memory
kill cannot take the harness down:
1. dequantize: transformers reads the GGUF (`from_pretrained(dir, gguf_file=...)`), dequantizes it
   to float32 and writes a Hugging Face folder (weights, config, tokenizer all from the GGUF).
   Cached on its own, so the four precisions share one dequantization.
2. build: onnxruntime-genai's model builder turns that folder into an ONNX model folder.
So every ONNX level *derives from the GGUF source*: fp32 ONNX reproduces the source's
quantization error, not the original model's weights; the record says so.

Needs the `[export]` extra (torch CPU, transformers, accelerate, onnx, onnx-ir,
onnxruntime-genai); never needed to run benchmarks. Nothing is downloaded: Hugging Face offline
mode is forced in the children and their caches point inside the build folder.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import runpy
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import HarnessError, ModelError
from ..gguf import gguf_info
from ..models import sha256_file
from . import cache
from .levels import ONNX_LEVELS

Progress = Callable[[str], None]

# Part of every cache key: bump it whenever a change here changes the files produced. Tool
# versions are recorded, not keyed, so a device without the [export] extra still finds entries.
EXPORT_FORMAT = "edgebench-onnx-export/1"
MODEL_DIR = "model"  # the onnxruntime-genai folder inside a cache entry
HF_DIR = "hf"  # the dequantized Hugging Face folder inside its cache entry
LOG_FILE = "export.log"
CHILD_TIMEOUT_S = 3 * 3600

# Builder --extra_options per precision. int4 with the builder's default (RTN) rounding gave
# wrong answers on Gemma 3 270M; k-quant keeps them (slower: minutes, ~9 GB RAM).
BUILDER_OPTIONS: dict[str, dict[str, str]] = {
    "fp32": {},
    "fp16": {},
    "int8": {},
    "int4": {"algo_config": "k_quant"},
}

# import name -> pip requirement, checked before any child starts.
EXPORT_MODULES = {
    "torch": "torch (CPU build: pip install torch --index-url of PyPI, never a CUDA build)",
    "transformers": "transformers>=5.18,<6",
    "accelerate": "accelerate",
    "onnx": "onnx",
    "onnx_ir": "onnx-ir",
    "onnxruntime_genai": "onnxruntime-genai",
    "sentencepiece": "sentencepiece",
}


def onnx_recipe(precision: str) -> dict[str, Any]:
    """What identifies an exported folder's content (with the source sha256, the cache key)."""
    return {"format": "onnx", "precision": precision, "execution_provider": "cpu",
            "builder_extra_options": dict(BUILDER_OPTIONS[precision]),
            "via": "transformers-gguf-dequantize-f32"}


def export_onnx(gguf_path: Path, sha256: str, precision: str, cache_dir: Path,
                progress: Progress | None = None) -> Any:
    """The onnxruntime-genai folder for `precision` of a GGUF model: cached, or built now.

    Returns harness.compress.gguf_quant.Artifact(path=<model folder>, compression=<record>).
    """
    from .gguf_quant import Artifact

    gguf_path, cache_dir = Path(gguf_path), Path(cache_dir)
    if precision not in ONNX_LEVELS:
        raise HarnessError(f"unknown ONNX precision '{precision}'; choose one of: "
                           f"{', '.join(ONNX_LEVELS)}")
    if not gguf_path.is_file():
        raise ModelError(f"GGUF source not found: {gguf_path}")
    key = cache.cache_key(sha256, onnx_recipe(precision), EXPORT_FORMAT)
    hit = cache.lookup(cache_dir, key)
    if hit is not None:
        _say(progress, f"{precision}: cached {hit.path}")
        return Artifact(hit.path, dict(hit.meta["compression"], cache_hit=True))
    check_export_deps()
    source = gguf_info(gguf_path)
    t0 = time.monotonic()
    hf_dir, dequant = _dequantized(gguf_path, sha256, cache_dir, progress)
    with cache.build(cache_dir, key) as work:
        _say(progress, f"{precision}: building ONNX with onnxruntime-genai's model builder")
        build = _run_child({"step": "build", "hf_dir": str(hf_dir), "out": str(work / MODEL_DIR),
                            "precision": precision, "extra_options": BUILDER_OPTIONS[precision],
                            "scratch": str(work / "scratch")}, work / LOG_FILE, precision)
        shutil.rmtree(work / "scratch", ignore_errors=True)
        from ..backends.onnx_genai import check_model_folder

        check_model_folder(work / MODEL_DIR)  # a builder that "succeeded" but wrote no model
        record = _record(gguf_path, sha256, source, precision, key, work / MODEL_DIR, dequant,
                         build, time.monotonic() - t0)
        entry = cache.commit(work, cache_dir, key, MODEL_DIR, {"compression": record})
    _say(progress, f"{precision}: built {entry.path} in {record['build_time_s']:.0f} s")
    return Artifact(entry.path, dict(entry.meta["compression"], cache_hit=False))


def ensure_onnx_level(source_path: Path, source_sha256: str, level: Any, cache_dir: Path,
                      progress: Progress | None = None) -> Any:
    """export_onnx for a parsed `Level` of kind "onnx" (what harness.compress dispatches to)."""
    if getattr(level, "kind", None) != "onnx":
        raise HarnessError(f"level '{getattr(level, 'name', level)}' is not an ONNX level")
    art = export_onnx(source_path, source_sha256, level.onnx, cache_dir, progress)
    art.compression["level"] = level.name
    return art


def check_export_deps() -> None:
    """Fail before a long build, listing every missing conversion package at once."""
    missing = [pip for mod, pip in EXPORT_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise HarnessError("converting to ONNX needs the [export] extra, missing: "
                           f"{', '.join(missing)}; pip install 'edgebench[export]'")


def token_agreement(tokens_a: list[int] | tuple[int, ...],
                    tokens_b: list[int] | tuple[int, ...]) -> float:
    """Share of two greedy outputs that is identical before they first differ.

    Common-prefix length over the longer length: after the first different token, greedy
    continuations condition on different text, so later positional matches mean nothing.
    1.0 = same tokens; two empty outputs agree fully.
    """
    longest = max(len(tokens_a), len(tokens_b))
    if longest == 0:
        return 1.0
    same = 0
    for a, b in zip(tokens_a, tokens_b):
        if a != b:
            break
        same += 1
    return same / longest


def flatten_gemma3_rope(config: Any) -> bool:
    """Give a transformers 5.x Gemma 3 text config the flat RoPE keys the model builder reads.

    transformers 5 nests RoPE per layer type ({"full_attention": {...}, "sliding_attention":
    {...}}); onnxruntime-genai's builder reads `rope_parameters["rope_type"]`, `rope_theta` and
    `rope_local_base_freq` (KeyError: 'rope_type' otherwise). The nested entries stay, because the
    builder also runs transformers' own Gemma 3 modules, which read them. Returns True if patched.
    """
    rope = getattr(config, "rope_parameters", None)
    if getattr(config, "model_type", None) != "gemma3_text" or not isinstance(rope, dict):
        return False
    if "rope_type" in rope or "full_attention" not in rope or "sliding_attention" not in rope:
        return False
    full, local = rope["full_attention"], rope["sliding_attention"]
    config.rope_parameters = dict(rope, rope_type=full.get("rope_type", "default"),
                                  rope_theta=full["rope_theta"])
    config.rope_theta = full["rope_theta"]
    config.rope_local_base_freq = local["rope_theta"]
    return True


def folder_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def folder_sha256(path: Path) -> str:
    """One digest for a model folder: sha256 over `relative/path<NUL>file sha256` lines, sorted."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(path).rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _dequantized(gguf_path: Path, sha256: str, cache_dir: Path,
                 progress: Progress | None) -> tuple[Path, dict[str, Any]]:
    """The float32 Hugging Face folder of the GGUF (a cache entry of its own)."""
    recipe = {"format": "hf-safetensors", "dtype": "float32", "via": "transformers-gguf"}
    key = cache.cache_key(sha256, recipe, EXPORT_FORMAT)
    hit = cache.lookup(cache_dir, key)
    if hit is not None:
        return hit.path, dict(hit.meta["dequantize"], cache_hit=True)
    with cache.build(cache_dir, key) as work:
        _say(progress, f"dequantizing {gguf_path.name} with transformers (once per source)")
        step = _run_child({"step": "dequantize", "gguf": str(gguf_path), "out": str(work / HF_DIR),
                           "scratch": str(work / "scratch")}, work / LOG_FILE, "dequantize")
        shutil.rmtree(work / "scratch", ignore_errors=True)
        entry = cache.commit(work, cache_dir, key, HF_DIR, {"dequantize": step, "recipe": recipe})
    return entry.path, dict(step, cache_hit=False)


def _record(gguf_path: Path, sha256: str, source: dict[str, Any], precision: str, key: str,
            model_dir: Path, dequant: dict[str, Any], build: dict[str, Any],
            total_s: float) -> dict[str, Any]:
    peaks = [build["peak_rss_bytes"]] + ([] if dequant.get("cache_hit")
                                         else [dequant["peak_rss_bytes"]])
    return {
        "level": precision, "kind": "onnx_export", "format": "onnx", "precision": precision,
        "recipe": onnx_recipe(precision), "cache_key": key,
        "source_sha256": sha256, "source_quant_type": source.get("quant_type"),
        "derived_from": {
            "format": "gguf", "path": str(gguf_path), "sha256": sha256,
            "quant_type": source.get("quant_type"),
            "note": "weights dequantized from this GGUF, so every ONNX precision inherits its "
                    "quantization error; fp32 reproduces the GGUF, not the original model"},
        "quant_type": precision, "params": source.get("params"),
        "bits_per_weight": None,  # the ONNX folder adds an untied lm_head and RoPE caches
        "file_size_bytes": folder_size_bytes(model_dir),
        "size_bytes": folder_size_bytes(model_dir),
        "sha256": folder_sha256(model_dir),
        "build_time_s": round(total_s, 3),
        "build_peak_rss_bytes": max(peaks),
        "steps": {"dequantize": dequant, "build": build},
        "tools": build.get("tools", {}),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _run_child(job: dict[str, Any], log_path: Path, what: str) -> dict[str, Any]:
    """Run one step in `python -m harness.compress.onnx_export`; its last stdout line is JSON."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    Path(job["scratch"]).mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.run([sys.executable, "-m", "harness.compress.onnx_export"],
                                  input=json.dumps(job).encode(), stdout=subprocess.PIPE,
                                  stderr=log, env=_child_env(job["scratch"]), cwd=job["scratch"],
                                  timeout=CHILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ModelError(f"ONNX export step '{what}' ran over {CHILD_TIMEOUT_S} s; "
                             f"see {log_path}") from None
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = f"killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0 \
            else f"exit code {proc.returncode}"
        raise ModelError(f"ONNX export step '{what}' failed ({reason}):\n{_tail(log_path)}")
    return json.loads(lines[-1])


def _child_env(scratch: str) -> dict[str, str]:
    """Offline, caches inside the build folder, this package importable."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=os.path.join(scratch, "hf_home"), TQDM_DISABLE="1")
    return env


def _tail(path: Path, n_lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return ""


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# ---- child side: heavy imports happen only here ------------------------------------------------

def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _child_dequantize(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(job["gguf"]), Path(job["out"])
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    model.hf_quantizer = None  # weights are already dequantized; the GGUF quantizer refuses to save
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config_file = out / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("quantization_config", None)  # else loading the folder would ask for the GGUF again
    config_file.write_text(json.dumps(config, indent=2))
    return {"transformers_version": transformers.__version__, "torch_version": torch.__version__}


def _child_build(job: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime_genai
    import torch
    import transformers
    from transformers import AutoConfig

    original = AutoConfig.from_pretrained.__func__

    def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(cls, *args, **kwargs)
        flatten_gemma3_rope(out[0] if isinstance(out, tuple) else out)
        return out

    AutoConfig.from_pretrained = classmethod(from_pretrained)
    argv = ["builder", "-i", job["hf_dir"], "-o", job["out"], "-p", job["precision"], "-e", "cpu",
            "-c", os.path.join(job["scratch"], "builder_cache")]
    if job["extra_options"]:
        argv += ["--extra_options"] + [f"{k}={v}" for k, v in job["extra_options"].items()]
    sys.argv = argv
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")
    return {"tools": {"onnxruntime_genai": onnxruntime_genai.__version__,
                      "transformers": transformers.__version__, "torch": torch.__version__}}


def _child_main() -> int:
    job = json.loads(sys.stdin.read())
    t0 = time.monotonic()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # library chatter goes to the log; stdout carries only the result
    result = {"dequantize": _child_dequantize, "build": _child_build}[job["step"]](job)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(time_s=round(time.monotonic() - t0, 3), peak_rss_bytes=_peak_rss_bytes(),
                  cpu_time_s=round(usage.ru_utime + usage.ru_stime, 3))  # less noisy than wall
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
