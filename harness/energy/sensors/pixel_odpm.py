"""Pixel 6+ on-device power monitor (ODPM): cumulative per-rail energy in uWs (= uJ).

`/sys/bus/iio/devices/iio:device*/energy_value` prints `t=<ms>` then one line per channel,
`CHn(T=<ms>)[RAIL_NAME], <uWs>`. All channels of all ODPM devices are summed (the two PMICs
monitor different rails). What that covers depends on the device and on which rails are
enabled: `enabled_rails` (`CHn[RAIL]:Subsystem`) names each channel's subsystem; where it is
missing the subsystem is derived from the rail name. A Pixel 6 covers CPU, GPU, TPU, memory,
SoC, modem/RF, WLAN/BT and the display; another build has GNSS instead of the TPU. The coverage
label lists them, so it is never called "SoC rails" when the display is in, nor "whole phone"
(camera, audio, sensors and the battery's own losses are outside every channel).
"""
from __future__ import annotations

import re

from ... import sysfs
from ..base import CounterSensor, SensorProblem
from ..config import EnergyConfig
from ..uncertainty import Accuracy

FILES = "/sys/bus/iio/devices/iio:device*/energy_value"
_CHANNEL = re.compile(r"^CH(\d+)\(T=(\d+)\)\[([^\]]+)\],\s*(\d+)\s*$")
_ENABLED = re.compile(r"^CH(\d+)\[([^\]]+)\]:\s*(.+?)\s*$")
FIX = "the ODPM files need root on most builds: `adb root`, or run the harness as root"
# rail-name fragment -> subsystem, in the words of the Pixel power HAL's enabled_rails
_BY_NAME = (("DISP", "Display"), ("MODEM", "Cellular"), ("RFFE", "Cellular"),
            ("WLAN", "WLAN/BT"), ("GNSS", "GNSS"), ("CPUCL", "CPU"), ("G3D", "GPU"),
            ("TPU", "Tensor"), ("MIF", "Memory"), ("MEM", "Memory"), ("VDD2", "Memory"),
            ("VDDQ", "Memory"), ("AOC", "SoC"), ("VDD_INT", "SoC"))
# Stated accuracy (harness.energy.uncertainty): none is published.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0,
    source="Google publishes no accuracy for the Pixel on-device power monitor (ODPM).")


def parse_energy_value(text: str) -> dict[str, int]:
    """{rail: uWs} from one energy_value file."""
    rails = {}
    for line in text.splitlines():
        m = _CHANNEL.match(line.strip())
        if m:
            rails[m.group(3)] = int(m.group(4))
    if not rails:
        raise ValueError(f"no channels in energy_value: {text[:80]!r}")
    return rails


def parse_enabled_rails(text: str) -> dict[str, str]:
    """{rail: subsystem} from an enabled_rails file."""
    return {m.group(2): m.group(3) for m in map(_ENABLED.match, text.splitlines()) if m}


def subsystem_of(rail: str) -> str:
    for fragment, subsystem in _BY_NAME:
        if fragment in rail.upper():
            return subsystem
    return "other"


def coverage_of(subsystems: dict[str, str]) -> str:
    """A stable label from the covered subsystems, e.g. `odpm:CPU+Display+GPU+Memory`."""
    names = sorted({s.replace(" ", "_") for s in subsystems.values()})
    return "odpm:" + "+".join(names)


class PixelOdpm(CounterSensor):
    name = "pixel_odpm"
    max_power_w = 40.0

    def __init__(self, files: list[str]):
        super().__init__()
        self.files = files
        self.subsystems = read_subsystems(files)
        self.coverage = coverage_of(self.subsystems)
        self.notes.append("ODPM rails: " + ", ".join(f"{r} ({s})"
                                                     for r, s in self.subsystems.items()))
        self.notes.append("not covered: anything outside these rails (camera, audio, sensors, "
                          "battery losses): not the whole phone")

    def read_energy_j(self) -> float:
        return sum(sum(parse_energy_value(sysfs.read_text(f)).values()) for f in self.files) / 1e6


def read_subsystems(files: list[str]) -> dict[str, str]:
    """{rail: subsystem} for every channel, from enabled_rails where the device has it."""
    out: dict[str, str] = {}
    for f in files:
        enabled_file = f.rsplit("/", 1)[0] + "/enabled_rails"
        named = (parse_enabled_rails(sysfs.read_text(enabled_file))
                 if sysfs.exists(enabled_file) else {})
        for rail in parse_energy_value(sysfs.read_text(f)):
            out[rail] = named.get(rail) or subsystem_of(rail)
    return out


def create(config: EnergyConfig, estimate_params: dict | None) -> PixelOdpm:
    files = sysfs.glob(FILES)
    if not files:
        raise SensorProblem("no on-device power monitor (iio energy_value) found",
                            "needs a Pixel 6 or newer; otherwise use android_battery")
    try:
        return PixelOdpm(files)
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)", FIX) from None
    except ValueError as e:
        raise SensorProblem(f"unexpected energy_value format: {e}", None) from None
