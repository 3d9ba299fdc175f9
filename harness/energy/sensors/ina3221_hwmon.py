"""Jetson power monitors through hwmon (JetPack 5+): INA3221 rails, and the AGX Thor's INA238 VIN.

INA3221 (`ina3221` driver), per channel N: inN_label, inN_input (bus voltage, mV), currN_input
(mA); channels without a current (the "sum of shunt voltages" channel) and unconnected (`NC`)
channels are skipped. INA238 (`ina238` driver, the Thor carrier board's board input VIN):
power1_input (uW), else in1_input (mV) x curr1_input (mA); its name comes from the hwmon `label`
file, and an unlabelled INA238 is taken as VIN (the only one on the Thor developer kit, as
jetson_stats PR #900 reads it). Which rails are added is the board's documented rule
(`jetson_rails`). hwmonN indices change per boot, so they are globbed, never hard-coded.
"""
from __future__ import annotations

import re

from ... import sysfs
from ..config import EnergyConfig
from ..uncertainty import Accuracy
from .rail_sum import RailSumSensor, open_rails

BASE = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
INA238_BASE = "/sys/bus/i2c/drivers/ina238/*/hwmon/hwmon*"
INA238_DEFAULT_LABEL = "VIN"
PERMISSION_FIX = "run as a user that can read the hwmon files (on Jetson: root, or add a udev rule)"
ABSENT_FIX = ("this reader needs a Jetson on JetPack 5+; on JetPack 4 use ina3221_iio, or "
              "tegrastats")
# Stated accuracy (harness.energy.uncertainty): limits from the chip's datasheet. Power = V x I
# from one ADC, so the two gain errors add linearly (TI's own power figure). The shunt offset
# (+-80 uV) becomes watts only through the board's shunt resistor, which the kernel does not
# expose: it is left to a calibration against a meter (docs/calibration.md).
ACCURACY = Accuracy(
    gain_limit=0.005, offset_limit_w=0.0, update_interval_s=0.0,
    source="TI INA3221 datasheet (SBOS576): shunt and bus voltage gain error 0.25% max each, "
           "power V x I 0.5% max (TI product page: power measurement accuracy 0.5%); shunt "
           "offset +-80 uV max depends on the board's shunt (not exposed): calibrate to remove "
           "it. The AGX Thor's INA238 VIN is given the same figure.")


class Channel:
    """One INA3221 channel: bus voltage x current."""

    def __init__(self, hwmon: str, n: int, label: str):
        self.hwmon, self.n, self.label = hwmon, n, label

    def power_w(self) -> float:
        mv = sysfs.read_int(f"{self.hwmon}/in{self.n}_input")
        ma = sysfs.read_int(f"{self.hwmon}/curr{self.n}_input")
        return mv * ma / 1e6


class Ina238Rail:
    """The INA238's single rail: its own power register when exposed (uW), else V x I."""

    def __init__(self, hwmon: str, label: str):
        self.hwmon, self.label = hwmon, label
        self.has_power = sysfs.exists(f"{hwmon}/power1_input")

    def power_w(self) -> float:
        if self.has_power:
            return sysfs.read_int(f"{self.hwmon}/power1_input") / 1e6
        return sysfs.read_int(f"{self.hwmon}/in1_input") * sysfs.read_int(
            f"{self.hwmon}/curr1_input") / 1e6


class Ina3221Hwmon(RailSumSensor):
    name = "ina3221_hwmon"


def find_channels() -> list[Channel]:
    out = []
    for hwmon in sysfs.glob(BASE):
        for label_path in sysfs.glob(f"{hwmon}/in*_label"):
            n = int(re.search(r"in(\d+)_label$", label_path).group(1))
            label = sysfs.read_text(label_path).strip()
            if "sum" in label.lower() or not sysfs.exists(f"{hwmon}/curr{n}_input"):
                continue
            out.append(Channel(hwmon, n, label))
    return out


def find_ina238() -> list[Ina238Rail]:
    out = []
    for hwmon in sysfs.glob(INA238_BASE):
        if not (sysfs.exists(f"{hwmon}/power1_input") or sysfs.exists(f"{hwmon}/curr1_input")):
            continue
        label_file = f"{hwmon}/label"
        label = sysfs.read_text(label_file).strip() if sysfs.exists(label_file) else ""
        out.append(Ina238Rail(hwmon, label or INA238_DEFAULT_LABEL))
    return out


def find_rails() -> list:
    return [*find_channels(), *find_ina238()]


def create(config: EnergyConfig, estimate_params: dict | None) -> Ina3221Hwmon:
    return open_rails(Ina3221Hwmon, find_rails, "INA3221/INA238 hwmon", ABSENT_FIX,
                      PERMISSION_FIX)
