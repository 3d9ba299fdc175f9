"""`python -m harness fleet run|status|setup`: drive a lab of devices from this controller.

`device-info`, `device-clock` and `device-run` are what the controller runs on each device
(harness.fleet.device); they are not for people and are left out of the help.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="fleet_command", metavar="ACTION")
    r = sub.add_parser("run", help="run a matrix across the devices of an inventory")
    r.add_argument("inventory", nargs="?", help="fleet.yaml: the devices")
    r.add_argument("matrix", nargs="?", help="the matrix to run")
    r.add_argument("--resume", metavar="FLEET_DIR", help="continue a fleet run; finished cells "
                   "(on the devices or in the journal) are not run again")
    r.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process drives every device (default); ray: devices are Ray "
                        "actors on the controller hosts that advertise them")
    r.add_argument("--output-dir", default="results", help="where the fleet folder goes")
    r.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no live lines")
    r.add_argument("--no-report", action="store_true", help="no merged report at the end")
    s = sub.add_parser("status", help="what a fleet run did and does, per device, from its journal")
    s.add_argument("fleet_dir")
    u = sub.add_parser("setup", help="check every device (version, python, disk, clock) and "
                       "optionally install this controller's edgebench there")
    u.add_argument("inventory")
    u.add_argument("--install", metavar="WHEEL", nargs="?", const="build",
                   help="pip install this wheel (default: build one from this controller's "
                        "source) on devices whose version differs")
    hidden = argparse.SUPPRESS
    i = sub.add_parser("device-info", help=hidden)
    i.add_argument("--workdir")
    sub.add_parser("device-clock", help=hidden)
    d = sub.add_parser("device-run", help=hidden)
    d.add_argument("--matrix", required=True)
    d.add_argument("--run-dir", required=True)
    d.add_argument("--profile")
    d.add_argument("--emulate", action="store_true")
    d.add_argument("--cells", required=True, help="cell ids, comma-separated")
    d.add_argument("--manifest-extra", default="{}")


def run(args: argparse.Namespace) -> int:
    action = args.fleet_command
    if action in ("device-info", "device-clock", "device-run"):
        return _device_side(args)
    if action == "run":
        from ..fleet.engine import FleetOptions, run_fleet
        return run_fleet(FleetOptions(inventory=args.inventory, matrix=args.matrix, resume=args.resume,
                                      output_dir=args.output_dir, engine=args.engine,
                                      quiet=getattr(args, "quiet", False),
                                      no_report=args.no_report))
    if action == "status":
        from ..fleet.status import show_status
        return show_status(args.fleet_dir)
    if action == "setup":
        from ..fleet.setup import setup_devices
        return setup_devices(args.inventory, args.install)
    print("usage: python -m harness fleet {run,status,setup} ...", file=sys.stderr)
    return 2


def _device_side(args: argparse.Namespace) -> int:
    from ..fleet import device

    if args.fleet_command == "device-info":
        print(json.dumps(device.device_info(args.workdir), default=str), flush=True)
        return 0
    if args.fleet_command == "device-clock":
        return device.clock_server()
    return device.device_run(args.matrix, args.run_dir, args.profile, args.emulate,
                             [c for c in args.cells.split(",") if c], json.loads(args.manifest_extra))
