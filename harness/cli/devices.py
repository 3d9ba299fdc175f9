"""`python -m harness devices`: list profiles, or say which one this machine is and what it can
measure (harness.devices.overview does the work)."""
from __future__ import annotations

import argparse

from ..devices.overview import DevicesOptions, show_devices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detect", action="store_true",
                        help="say which profile matches this machine, and which sensors work")
    parser.add_argument("--show", metavar="NAME", help="print one profile in full")
    parser.add_argument("--state", action="store_true",
                        help="with --detect (or --show NAME): also read the device state now")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    return show_devices(DevicesOptions(detect=args.detect, show=args.show, state=args.state,
                                       json=args.json))
