"""`python -m harness meter serve`: sample this machine's sensor and answer window energies over
HTTP, next to a model server that devices offload to (docs/offload.md).

The sensor comes from the same registry as a run's: `--sensor auto` tries this machine's detected
profile's sensors in order (else the labelled estimate), a name opens that sensor, and
`--energy-config FILE` reads an `energy:` block (as in a matrix) for sensor settings (scripted
test curves, rapl.include_dram, ...).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import HarnessError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="meter_command", metavar="ACTION", required=True)
    p = sub.add_parser("serve", help="sample this machine's sensor and answer window energies")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; a LAN address to let devices in)")
    p.add_argument("--port", type=int, default=8091, help="port (default 8091; 0: any free port)")
    p.add_argument("--sensor", default=None,
                   help="auto (the detected profile's sensors, in order) or a sensor name; "
                        "overrides the energy config's")
    p.add_argument("--energy-config", type=Path, metavar="FILE",
                   help="YAML with an `energy:` block, as in a matrix (sensor, rate_hz, scripted, rapl)")
    p.add_argument("--rate-hz", type=float, default=None, help="sampling rate (default: config's, 20)")
    p.add_argument("--retention-s", type=float, default=3600.0,
                   help="how long readings are kept for window requests (default 3600 s)")


def run(args: argparse.Namespace) -> int:
    from ..meter.rolling import RollingSampler
    from ..meter.server import MeterServer

    config = _energy_config(args)
    sensor = _open(config)
    rate = args.rate_hz or config.rate_hz
    if not 0.5 <= rate <= 1000:
        raise HarnessError(f"--rate-hz {rate}: use 0.5 to 1000")
    server = MeterServer(RollingSampler(sensor, rate, args.retention_s).start(), args.host,
                         args.port)
    signal.signal(signal.SIGTERM, _stop_on_term)
    info = sensor.info()
    print(f"meter: {info['sensor']} ({info['method']}, covers {info['coverage']}) at {rate:g} Hz; "
          f"listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.sampler.stop()
        sensor.close()
    print("meter: stopped", file=sys.stderr, flush=True)
    return 0


def _stop_on_term(signum: int, frame: Any) -> None:
    """SIGTERM stops the meter as Ctrl-C does: the sensor (and any tool it runs) is closed."""
    raise KeyboardInterrupt


def _energy_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from ..energy import EnergyConfig
    from ..schema import Node, load_yaml

    if args.energy_config is not None:
        raw = load_yaml(args.energy_config)
        root = Node(raw, str(args.energy_config)).mapping(("energy",), required=("energy",))
        config = EnergyConfig.from_node(root.get("energy"))
    else:
        config = EnergyConfig()
    if args.sensor is not None:
        from ..energy import SENSOR_NAMES

        if args.sensor not in ("auto",) + tuple(SENSOR_NAMES):
            raise HarnessError(f"--sensor {args.sensor}: choose auto or one of {', '.join(SENSOR_NAMES)}")
        if args.sensor == "scripted" and config.scripted is None:
            raise HarnessError("--sensor scripted needs --energy-config with an energy.scripted block")
        config = replace(config, sensor=args.sensor)
    return config


def _open(config: Any) -> Any:
    """This machine's sensor: its detected profile's list for `auto`, as a run would open it."""
    from .. import devices
    from ..energy import open_sensor

    sensors: list[str] = []
    estimate: dict[str, Any] | None = None
    detected = devices.detect().profile
    if detected is not None:
        profile = devices.get_profile(detected)
        sensors, estimate = list(profile.sensors), profile.estimate_params()
    elif config.sensor == "auto":
        raise HarnessError("no hardware profile matches this machine, so `auto` has no sensor "
                           "list; name one with --sensor (see `python -m harness devices --detect`)")
    return open_sensor(config, sensors, estimate)
