"""Jetson INA3221 through the older IIO driver (JetPack 4, `ina3221x`): power per rail in mW.

Files per channel N: rail_name_N, in_powerN_input (mW). The rails added are the board's
documented rule (`jetson_rails`), shared with the hwmon reader through `rail_sum`.
"""
from __future__ import annotations

import re

from ... import sysfs
from ..config import EnergyConfig
from .ina3221_hwmon import ACCURACY  # noqa: F401  the same chip: the same stated accuracy
from .rail_sum import RailSumSensor, open_rails

BASE = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"
PERMISSION_FIX = "run as root, or make the ina3221x iio files readable with a udev rule"
ABSENT_FIX = ("this reader needs a Jetson on JetPack 4; on JetPack 5+ use ina3221_hwmon, or "
              "tegrastats")


class IioRail:
    def __init__(self, device: str, n: int, label: str):
        self.device, self.n, self.label = device, n, label

    def power_w(self) -> float:
        return sysfs.read_int(f"{self.device}/in_power{self.n}_input") / 1000.0


class Ina3221Iio(RailSumSensor):
    name = "ina3221_iio"


def find_rails() -> list[IioRail]:
    out = []
    for device in sysfs.glob(BASE):
        for name_path in sysfs.glob(f"{device}/rail_name_*"):
            n = int(re.search(r"rail_name_(\d+)$", name_path).group(1))
            if sysfs.exists(f"{device}/in_power{n}_input"):
                out.append(IioRail(device, n, sysfs.read_text(name_path).strip()))
    return out


def create(config: EnergyConfig, estimate_params: dict | None) -> Ina3221Iio:
    return open_rails(Ina3221Iio, find_rails, "ina3221x IIO", ABSENT_FIX, PERMISSION_FIX)
