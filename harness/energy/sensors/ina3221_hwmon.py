"""Jetson INA3221 through hwmon (JetPack 5+, upstream `ina3221` driver): V x I per rail.

Files per channel N: inN_label, inN_input (bus voltage, mV), currN_input (mA). Channels without a
current (the "sum of shunt voltages" channel) and unconnected (`NC`) channels are skipped. The
hwmonN index changes per boot, so it is globbed, never hard-coded.
"""
from __future__ import annotations

import re

from ... import sysfs
from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig
from . import jetson_rails

BASE = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
PERMISSION_FIX = "run as a user that can read the hwmon files (on Jetson: root, or add a udev rule)"


class Channel:
    def __init__(self, hwmon: str, n: int, label: str):
        self.hwmon, self.n, self.label = hwmon, n, label

    def power_w(self) -> float:
        mv = sysfs.read_int(f"{self.hwmon}/in{self.n}_input")
        ma = sysfs.read_int(f"{self.hwmon}/curr{self.n}_input")
        return mv * ma / 1e6


class Ina3221Hwmon(PowerSensor):
    name = "ina3221_hwmon"
    max_power_w = 200.0

    def __init__(self, channels: list[Channel], coverage: str, note: str | None):
        super().__init__()
        self.channels = channels
        self.coverage = coverage
        self.notes.append("rails: " + ", ".join(c.label for c in channels))
        if note:
            self.notes.append(note)

    def read_power_w(self) -> float:
        return sum(c.power_w() for c in self.channels)


def find_channels() -> list[Channel]:
    out = []
    for hwmon in sysfs.glob(BASE):
        for label_path in sysfs.glob(f"{hwmon}/in*_label"):
            n = int(re.search(r"in(\d+)_label$", label_path).group(1))
            label = sysfs.read_text(label_path).strip()
            if (jetson_rails.is_unconnected(label) or "sum" in label.lower()
                    or not sysfs.exists(f"{hwmon}/curr{n}_input")):
                continue
            out.append(Channel(hwmon, n, label))
    return out


def create(config: EnergyConfig, estimate_params: dict | None) -> Ina3221Hwmon:
    try:
        channels = find_channels()
    except PermissionError as e:
        raise SensorProblem(f"cannot read INA3221 hwmon files ({e.filename})", PERMISSION_FIX)
    if not channels:
        raise SensorProblem("no INA3221 hwmon rails under /sys/bus/i2c/drivers/ina3221",
                            "this reader needs a Jetson on JetPack 5+; on JetPack 4 use "
                            "ina3221_iio, or tegrastats")
    labels, coverage, note = jetson_rails.choose([c.label for c in channels])
    sensor = Ina3221Hwmon([c for c in channels if c.label in labels], coverage, note)
    try:
        sensor.read_power_w()
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)", PERMISSION_FIX)
    return sensor
