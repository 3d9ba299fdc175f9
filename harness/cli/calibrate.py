"""`python -m harness calibrate --sensor ina3221_hwmon --reference usb_meter`: measure a sensor
against a reference meter over a CPU load ladder and write a calibration file
(harness.energy.calibration does the work; docs/calibration.md says how to use it)."""
from __future__ import annotations

import argparse
import socket
from pathlib import Path

from ..energy import calibration as cal
from ..energy.config import SENSOR_NAMES, EnergyConfig, UsbMeterParams
from ..energy.registry import create
from ..energy.base import MEASURED, Sensor, SensorProblem
from ..energy.uncertainty import accuracy_of
from ..errors import HarnessError, write_error
from ..schema import Node, load_yaml

NOT_CALIBRATABLE = {"estimate": "the estimate is a model, not a sensor: calibrating it would "
                                "dress a model up as a measurement"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sensor", required=True, choices=SENSOR_NAMES, metavar="NAME",
                   help="the sensor to calibrate (e.g. ina3221_hwmon, rpi5_pmic)")
    p.add_argument("--reference", required=True, choices=SENSOR_NAMES, metavar="NAME",
                   help="the reference meter (e.g. usb_meter)")
    p.add_argument("--matrix", metavar="FILE", help="read sensor settings (usb_meter port, rapl, "
                   "scripted) from this matrix's energy: block")
    p.add_argument("--port", help="the USB meter's serial port (instead of --matrix), e.g. "
                   "/dev/rfcomm0")
    p.add_argument("--steps", default=",".join(cal.STEP_NAMES),
                   help="load ladder, comma-separated: idle, a thread count, all (default "
                   "idle,1,all)")
    p.add_argument("--step-s", type=float, default=cal.Ladder.step_s, help="seconds per step")
    p.add_argument("--settle-s", type=float, default=cal.Ladder.settle_s,
                   help="seconds left out at the start of each step")
    p.add_argument("--chunk-s", type=float, default=cal.Ladder.chunk_s,
                   help="one paired reading per chunk of this many seconds")
    p.add_argument("--rate-hz", type=float, default=cal.Ladder.rate_hz, help="sampling rate")
    p.add_argument("--device", metavar="PROFILE", help="device profile name, recorded in the file")
    p.add_argument("--output", metavar="FILE",
                   help="calibration file to write (default calibration-<sensor>-<reference>.json)")


def run(args: argparse.Namespace) -> int:
    ladder = _ladder(args)
    if args.device:
        from ..devices import get_profile

        get_profile(args.device)  # an unknown profile name is refused with the valid names
    config = _energy_config(args)
    _check_names(args.sensor, args.reference)
    sensor = _open(args.sensor, config, "sensor")
    try:
        reference = _open(args.reference, config, "reference")
    except HarnessError:
        sensor.close()
        raise
    try:
        points = cal.measure_ladder(sensor, reference, ladder)
        result = cal.make_calibration(sensor, reference, points, ladder, socket.gethostname(),
                                      args.device, accuracy_of(reference.name))
    finally:
        reference.close()
        sensor.close()
    out = Path(args.output or f"calibration-{args.sensor}-{args.reference}.json")
    try:
        out.write_text(result.to_json(), encoding="utf-8")
    except OSError as e:
        raise write_error(out, e) from None
    print(_summary(result, out))
    return 0


def _ladder(args: argparse.Namespace) -> cal.Ladder:
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    for s in steps:
        cal.step_threads(s)  # refuses an unknown step name
    if not (args.step_s > args.settle_s >= 0) or args.chunk_s <= 0 or args.rate_hz <= 0:
        raise HarnessError("calibrate: need --step-s > --settle-s >= 0, --chunk-s > 0 and "
                           "--rate-hz > 0")
    return cal.Ladder(steps, args.step_s, args.settle_s, args.chunk_s, args.rate_hz)


def _energy_config(args: argparse.Namespace) -> EnergyConfig:
    config = EnergyConfig()
    if args.matrix:
        config = EnergyConfig.from_node(Node(load_yaml(args.matrix), args.matrix).get("energy"))
    if args.port:
        from dataclasses import replace

        config = replace(config, usb_meter=UsbMeterParams(port=args.port))
    return config


def _check_names(sensor: str, reference: str) -> None:
    for name in (sensor, reference):
        if name in NOT_CALIBRATABLE:
            raise HarnessError(f"calibrate: '{name}' cannot take part: {NOT_CALIBRATABLE[name]}")
    if sensor == reference and sensor != "scripted":
        raise HarnessError(f"calibrate: --sensor and --reference are both '{sensor}'; the "
                           "reference must be another instrument (e.g. usb_meter)")


def _open(name: str, config: EnergyConfig, role: str) -> Sensor:
    try:
        sensor = create(name, config, None)
    except SensorProblem as e:
        raise HarnessError(f"calibrate: the {role} '{name}' cannot be read on this device: "
                           f"{e}") from None
    if role == "reference" and sensor.method not in (MEASURED, "scripted"):
        sensor.close()
        raise HarnessError(f"calibrate: the reference '{name}' is {sensor.method}, not a "
                           "measurement; use a meter such as usb_meter")
    return sensor


def _summary(c: cal.Calibration, out: Path) -> str:
    lo, hi = c.power_range_w
    return "\n".join([
        f"calibration of {c.sensor} against {c.reference}: {c.n_points} paired readings, "
        f"sensor {lo:.3f}-{hi:.3f} W",
        f"  reference = {c.gain:.5f} (+- {c.gain_stderr:.5f}) x sensor "
        f"{c.offset_w:+.4f} (+- {c.offset_stderr_w:.4f}) W; residual rms {c.residual_rms_w:.4f} W",
        f"written to {out}",
        f"apply it: add `calibration: {out.resolve()}` to the device profile, or export "
        f"{cal.ENV_VAR}={out.resolve()}"])
