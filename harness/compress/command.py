"""Building compression levels ahead of a run (`python -m harness compress`).

Uses the same code, cache and records as `run`, so a level built here is a cache hit there.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..models import ModelFile, resolve_package, resolve_path
from ..schema import Node
from .cache import default_cache_dir
from .levels import Level, parse_level, runtime_of

_WHERE = "<command line>"


@dataclass(frozen=True)
class CompressOptions:
    """What the `compress` command was asked (see harness.cli.compress)."""

    model: str
    levels: list[str] = field(default_factory=list)
    prune: str | None = None
    to: str | None = None
    precisions: list[str] = field(default_factory=list)
    allow_requantize: bool = False
    cache_dir: Path | None = None
    json: bool = False


def compress_model(options: CompressOptions) -> int:
    """Build (or find cached) every requested level and print one line (or JSON) per level.

    The builders are imported per level: each pulls its own toolchain (llama.cpp's quantizer,
    onnxruntime-genai's builder) that the other kind of level never needs.
    """
    levels = requested_levels(options)
    model = _resolve_model(options.model)
    cache_dir = options.cache_dir or default_cache_dir()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    for level in levels:
        if runtime_of(level) == "onnx":
            from .onnx_export import ensure_onnx_level

            art = ensure_onnx_level(model.path, model.sha256, level, cache_dir, progress=say)
        else:
            from .gguf_quant import ensure_level

            art = ensure_level(model.path, model.sha256, level, options.allow_requantize, cache_dir,
                               progress=say)
        if options.json:
            print(json.dumps({"path": str(art.path), "compression": art.compression}))
        else:
            print(_summary_line(art.path, art.compression))
    return 0


def requested_levels(options: CompressOptions) -> list[Level]:
    """The levels named by --level/--prune and --to onnx --precision, checked together."""
    if options.to == "onnx" and not options.precisions:
        raise HarnessError("--to onnx needs --precision (fp32, fp16, int8 or int4)")
    if options.precisions and options.to != "onnx":
        raise HarnessError("--precision goes with --to onnx")
    if not options.levels and not options.precisions:
        raise HarnessError("give at least one --level TYPE (or --to onnx --precision P)")
    levels = [cli_level(q, options.prune, i) for i, q in enumerate(options.levels)]
    return levels + [parse_level(Node(p, _WHERE, f"--precision[{i}]"))
                     for i, p in enumerate(options.precisions)]


def cli_level(quant: str, prune: str | None, index: int) -> Level:
    """A Level from `--level` and `--prune`, validated by the same parser as the matrix."""
    node_path = f"--level[{index}]"
    if prune is None:
        return parse_level(Node(quant, _WHERE, node_path))
    method, amount = _split_prune(prune)
    quant_name = parse_level(Node(quant, _WHERE, node_path)).name
    if method == "magnitude":
        spec = {"method": method, "sparsity": _number(amount, float, prune)}
        name = f"{quant_name}-prune{round(spec['sparsity'] * 100):d}"
    else:
        spec = {"method": method, "n_layers": _number(amount, int, prune)}
        name = f"{quant_name}-drop{spec['n_layers']}"
    return parse_level(Node({"name": name, "quant": quant, "prune": spec}, _WHERE, node_path))


def _split_prune(text: str) -> tuple[str, str]:
    method, sep, amount = text.partition(":")
    if not sep or method not in ("magnitude", "drop_layers"):
        raise HarnessError(f"--prune {text!r}: expected magnitude:SPARSITY (e.g. magnitude:0.25) "
                           "or drop_layers:N (e.g. drop_layers:2)")
    return method, amount


def _number(text: str, kind: type, whole: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise HarnessError(f"--prune {whole!r}: {text!r} is not {what}") from None


def _resolve_model(spec: str) -> ModelFile:
    path = Path(spec).expanduser()
    if path.exists() or spec.endswith(".gguf") or "/" in spec:
        return resolve_path(path.stem, path)
    return resolve_package(spec)


def _summary_line(path: Path, rec: dict[str, Any]) -> str:
    size_mib = (rec.get("file_size_bytes") or rec.get("size_bytes") or 0) / 2**20
    if rec.get("build_time_s") is None:
        how = "source file, used as is" if rec["kind"] == "source" else "given file"
    elif rec.get("cache_hit"):
        how = f"cached (built in {rec['build_time_s']:.1f} s)"
    else:
        how = f"built in {rec['build_time_s']:.1f} s, peak RSS {rec['build_peak_rss_bytes'] / 2**20:.0f} MiB"
    extra = ""
    prune = rec.get("prune") or {}
    if prune.get("method") == "magnitude":
        extra = (f", sparsity {prune['sparsity_achieved']:.3f} pruned"
                 f" / {prune.get('sparsity_after_quant') or 0:.3f} after quantization")
    elif prune.get("method") == "drop_layers":
        extra = f", dropped blocks {prune['dropped_blocks']}"
    bpw = rec.get("bits_per_weight")
    bpw_text = f"{bpw:.2f} bpw" if bpw is not None else "bpw n/a (ONNX)"
    params = rec.get("params")
    params_text = f"{params:,} params" if params else "params n/a"
    return f"{rec['level']}: {path}  {size_mib:.1f} MiB, {bpw_text}, {params_text}, {how}{extra}"
