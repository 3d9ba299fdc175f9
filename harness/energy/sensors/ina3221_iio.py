"""Jetson INA3221 through the older IIO driver (JetPack 4, `ina3221x`): power per rail in mW.

Files per channel N: rail_name_N, in_powerN_input (mW). Same total-rail rule as hwmon.
"""
from __future__ import annotations

import re

from ... import sysfs
from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig
from . import jetson_rails

BASE = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"
PERMISSION_FIX = "run as root, or make the ina3221x iio files readable with a udev rule"


class IioRail:
    def __init__(self, device: str, n: int, label: str):
        self.device, self.n, self.label = device, n, label

    def power_w(self) -> float:
        return sysfs.read_int(f"{self.device}/in_power{self.n}_input") / 1000.0


class Ina3221Iio(PowerSensor):
    name = "ina3221_iio"
    max_power_w = 200.0

    def __init__(self, rails: list[IioRail], coverage: str, note: str | None):
        super().__init__()
        self.rails = rails
        self.coverage = coverage
        self.notes.append("rails: " + ", ".join(r.label for r in rails))
        if note:
            self.notes.append(note)

    def read_power_w(self) -> float:
        return sum(r.power_w() for r in self.rails)


def find_rails() -> list[IioRail]:
    out = []
    for device in sysfs.glob(BASE):
        for name_path in sysfs.glob(f"{device}/rail_name_*"):
            n = int(re.search(r"rail_name_(\d+)$", name_path).group(1))
            label = sysfs.read_text(name_path).strip()
            if jetson_rails.is_unconnected(label) or not sysfs.exists(
                    f"{device}/in_power{n}_input"):
                continue
            out.append(IioRail(device, n, label))
    return out


def create(config: EnergyConfig, estimate_params: dict | None) -> Ina3221Iio:
    try:
        rails = find_rails()
    except PermissionError as e:
        raise SensorProblem(f"cannot read ina3221x files ({e.filename})", PERMISSION_FIX)
    if not rails:
        raise SensorProblem("no ina3221x IIO rails under /sys/bus/i2c/drivers/ina3221x",
                            "this reader needs a Jetson on JetPack 4; on JetPack 5+ use "
                            "ina3221_hwmon, or tegrastats")
    labels, coverage, note = jetson_rails.choose([r.label for r in rails])
    sensor = Ina3221Iio([r for r in rails if r.label in labels], coverage, note)
    try:
        sensor.read_power_w()
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)", PERMISSION_FIX)
    return sensor
