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
    "calibrate": "Calibrate a power sensor against a reference meter (writes a calibration file)",
    "fleet": "Drive a lab of devices over ssh/adb from this controller (run, status, setup)",
    "meter": "Serve this machine's energy per time window to devices that offload to it",
    "meter": "Serve this machine's energy per time window to devices that offload to it",
    "rescore": "Re-label a run's saved quality answers (or a JSONL of answers) with today's rules",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="edgebench: what generative AI really costs on small devices")
    parser.add_argument("--version", action="version", version=f"edgebench {package_version()}")
    for flag, help_text in COMMON_FLAGS:
        parser.add_argument(flag, action="store_true", help=help_text)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the chosen subcommand's module
            _module(name).add_arguments(p)
        _add_common_flags(p)
    return parser


# Flags accepted before or after the subcommand (`--debug run` and `run --debug` alike).
COMMON_FLAGS = (("--debug", "show tracebacks on errors"),
                ("--quiet", "no progress lines (CI logs); for `check`, only the summary line"))


def _add_common_flags(p: argparse.ArgumentParser) -> None:
    """A subcommand's copy of a common flag defaults to SUPPRESS, so it never resets the value
    given before the subcommand (argparse copies a subparser's defaults over the namespace)."""
    for flag, help_text in COMMON_FLAGS:
        own = next((a for a in p._actions if flag in a.option_strings), None)
        if own is not None:
            own.default = argparse.SUPPRESS
        else:
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)


def package_version() -> str:
    """The installed distribution's version, else the source tree's (harness.__version__)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgebench")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


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
