"""`python -m harness <subcommand>`: a thin dispatcher.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
it is imported only when chosen, so `devices` does not pay for llama.cpp or matplotlib imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from ..errors import HarnessError

SUBCOMMANDS = {
    "run": "Run a matrix of model x level x device x workload cells",
    "report": "Merge runs into one self-contained HTML report (+ Markdown, CSV)",
    "check": "Check a run against energy/speed/quality budgets or a baseline run",
    "devices": "List hardware profiles, or detect this machine's profile and sensors",
    "compress": "Build a compression level of a model (quantize, prune, export to ONNX)",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="edgebench: what generative AI really costs on small devices")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the chosen subcommand's module
            _module(name).add_arguments(p)
    return parser


def _module(name: str):
    return importlib.import_module(f"harness.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_module(args.command).run(args) or 0)
    except HarnessError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
