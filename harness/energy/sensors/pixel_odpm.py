"""Pixel 6+ on-device power monitor (ODPM): cumulative per-rail energy in uWs (= uJ).

`/sys/bus/iio/devices/iio:device*/energy_value` prints `t=<ms>` then one line per channel,
`CHn(T=<ms>)[RAIL_NAME], <uWs>`. All channels of all ODPM devices are summed (the two PMICs
monitor different rails); they cover the SoC and main rails, not the display or the whole phone.
"""
from __future__ import annotations

import re

from ... import sysfs
from ..base import CounterSensor, SensorProblem
from ..config import EnergyConfig

FILES = "/sys/bus/iio/devices/iio:device*/energy_value"
_CHANNEL = re.compile(r"^CH(\d+)\(T=(\d+)\)\[([^\]]+)\],\s*(\d+)\s*$")
FIX = "the ODPM files need root on most builds: `adb root`, or run the harness as root"


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


class PixelOdpm(CounterSensor):
    name = "pixel_odpm"
    coverage = "soc_rails"
    max_power_w = 40.0

    def __init__(self, files: list[str]):
        super().__init__()
        self.files = files
        rails = [r for f in files for r in parse_energy_value(sysfs.read_text(f))]
        self.notes.append("ODPM rails: " + ", ".join(rails))

    def read_energy_j(self) -> float:
        return sum(sum(parse_energy_value(sysfs.read_text(f)).values()) for f in self.files) / 1e6


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
