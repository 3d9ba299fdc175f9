"""Test-only sensor with a known analytic power curve, so the true energy of any window is known.

power_w(t) = base_w + amplitude_w * sin(2 pi t / period_s), with t = time.monotonic() itself
(not time since opening), so a test in another process can integrate the same curve over the
monotonic times a record reports. Method is `scripted`: never shown as a measurement.
"""
from __future__ import annotations

import dataclasses
import math
import time

from ...errors import SensorError
from ..base import SCRIPTED, CounterSensor, PowerSensor, Sensor
from ..config import EnergyConfig, ScriptedParams
from ..uncertainty import Accuracy

# Stated accuracy (harness.energy.uncertainty): the analytic curve is exact.
ACCURACY = Accuracy(gain_limit=0.0, offset_limit_w=0.0, update_interval_s=0.0,
                    source="test-only analytic curve: exact by construction")


def power_w(p: ScriptedParams, t: float) -> float:
    return p.base_w + p.amplitude_w * math.sin(2 * math.pi * t / p.period_s)


def energy_j(p: ScriptedParams, t: float) -> float:
    """Antiderivative of power_w (zero at t = 0)."""
    w = 2 * math.pi / p.period_s
    return p.base_w * t + p.amplitude_w / w * (1.0 - math.cos(w * t))


def true_energy_j(p: ScriptedParams, t0: float, t1: float) -> float:
    return energy_j(p, t1) - energy_j(p, t0)


class _Scripted:
    name = "scripted"
    method = SCRIPTED
    model = "analytic-sine"
    coverage = "scripted"

    def _init(self, params: ScriptedParams) -> None:
        self.params = params
        self.opened_s = time.monotonic()

    def info(self) -> dict:
        return {**super().info(), "scripted_params": dataclasses.asdict(self.params)}

    def _now(self) -> float:
        t = time.monotonic()
        fail = self.params.fail_after_s
        if fail is not None and t - self.opened_s >= fail:
            raise SensorError(f"scripted sensor failure {fail} s after opening (fault injection)")
        return t


class ScriptedPower(_Scripted, PowerSensor):
    def __init__(self, params: ScriptedParams):
        PowerSensor.__init__(self)
        self._init(params)

    def read_power_w(self) -> float:
        return power_w(self.params, self._now())


class ScriptedCounter(_Scripted, CounterSensor):
    def __init__(self, params: ScriptedParams):
        CounterSensor.__init__(self)
        self._init(params)

    def read_energy_j(self) -> float:
        return energy_j(self.params, self._now())


def create(config: EnergyConfig, estimate_params: dict | None) -> Sensor:
    params = config.scripted or ScriptedParams(base_w=1.0)
    return ScriptedCounter(params) if params.mode == "counter" else ScriptedPower(params)
