"""Raspberry Pi 5 PMIC ADC (`vcgencmd pmic_read_adc`): sum of V x I over the PMIC rails.

Currents (`X_A`) and voltages (`X_V`) are paired by rail name, not by channel number (the
numbers differ). Rails without a current (EXT5V, BATT) are skipped. This misses the 5 V side
(USB devices, fan, HAT, PMIC conversion losses), so it under-estimates the board's input power.
Each read runs vcgencmd once (a few ms of CPU on a Pi 5): prefer rate_hz <= 10 there.
"""
from __future__ import annotations

import re

from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig
from ..uncertainty import Accuracy
from ..tool import run_tool

_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+)[AV]\s*$")
FIX = "install the Raspberry Pi userland tools (`sudo apt install libraspberrypi-bin`)"
NO_PMIC_FIX = ("this board has no PMIC ADC (Raspberry Pi 4 and older have no power sensor): "
               "use a USB meter (sensor usb_meter) or the labelled estimate")
UNDERESTIMATE_NOTE = ("PMIC rails only: misses the 5 V side (USB, fan, HAT, conversion losses), "
                      "so it under-estimates input power")
TIMEOUT_S = 2.0
# Stated accuracy (harness.energy.uncertainty): none is published.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0,
    source="Raspberry Pi publishes no accuracy for the Pi 5 PMIC ADC behind `vcgencmd "
           "pmic_read_adc`; it also misses the 5 V side (a coverage bias, see the notes). "
           "Calibrate it against a USB meter (docs/calibration.md) for a figure.")


def parse_rails(text: str) -> dict[str, tuple[float, float]]:
    """{rail: (current_a, volt_v)} for rails that report both; NUL separators are accepted."""
    if "error_msg" in text:
        msg = re.search(r'error_msg="([^"]*)"', text)
        raise SensorProblem(f"vcgencmd pmic_read_adc failed: "
                            f"{msg.group(1) if msg else text.strip()}", NO_PMIC_FIX)
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in re.split(r"[\r\n\x00]+", text):
        m = _LINE.match(line)
        if m:
            (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {rail: (amps[rail], volts[rail]) for rail in amps if rail in volts}


def total_w(rails: dict[str, tuple[float, float]]) -> float:
    return sum(a * v for a, v in rails.values())


class Rpi5Pmic(PowerSensor):
    name = "rpi5_pmic"
    coverage = "pmic_rails"
    max_power_w = 50.0

    def __init__(self) -> None:
        super().__init__()
        rails = self._read()
        self.notes.append(UNDERESTIMATE_NOTE)
        self.notes.append(f"{len(rails)} rails: " + ", ".join(sorted(rails)))

    def _read(self) -> dict[str, tuple[float, float]]:
        proc = run_tool("vcgencmd", ["pmic_read_adc"], TIMEOUT_S, FIX)
        rails = parse_rails(proc.stdout + proc.stderr)
        if not rails:
            raise SensorProblem(f"vcgencmd pmic_read_adc printed no rail pairs "
                                f"(exit {proc.returncode}): {proc.stdout[:120]!r}", NO_PMIC_FIX)
        return rails

    def read_power_w(self) -> float:
        return total_w(self._read())


def create(config: EnergyConfig, estimate_params: dict | None) -> Rpi5Pmic:
    return Rpi5Pmic()
