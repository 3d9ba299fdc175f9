"""Which sensor to use: a named one, or the device profile's list in order (`auto`).

Sensor modules are imported only when tried, so a Pi never imports NVML code and a laptop never
runs vcgencmd.
"""
from __future__ import annotations

import importlib

from .base import MEASURED, Probe, Sensor, SensorProblem
from .config import SENSOR_NAMES, EnergyConfig

_PROBE_SKIP = {"scripted": "test-only sensor with a known power curve; never used for real runs"}


def create(name: str, config: EnergyConfig, estimate_params: dict | None) -> Sensor:
    """Open one sensor by registry name; raises SensorProblem saying what is missing and the fix."""
    if name not in SENSOR_NAMES:
        raise SensorProblem(f"unknown energy sensor '{name}'",
                            f"choose one of: {', '.join(SENSOR_NAMES)}")
    module = importlib.import_module(f"{__package__}.sensors.{name}")
    return module.create(config, estimate_params)


def open_sensor(config: EnergyConfig, profile_sensors: list[str],
                estimate_params: dict | None) -> Sensor:
    """The sensor for this run. `auto` tries the profile's list in order; only if none can be
    read does it fall back to `estimate` (unless require_measured), and the sensor says why."""
    if config.sensor != "auto":
        sensor = create(config.sensor, config, estimate_params)
        _check_required(config, sensor)
        return sensor
    failures: list[str] = []
    for name in profile_sensors:
        if name == "estimate":
            continue  # the estimate is only ever the fallback, chosen below
        try:
            sensor = create(name, config, estimate_params)
        except SensorProblem as e:
            failures.append(f"{name}: {e}")
            continue
        if config.require_measured and sensor.method != MEASURED:
            failures.append(f"{name}: {sensor.method}, not measured")
            sensor.close()
            continue
        return sensor
    return _fallback(config, estimate_params, failures)


def _fallback(config: EnergyConfig, estimate_params: dict | None, failures: list[str]) -> Sensor:
    tried = "; ".join(failures) if failures else "the device profile lists no measuring sensor"
    if config.require_measured:
        raise SensorProblem(f"no measured energy sensor is readable ({tried})",
                            "fix one of the sensors above, or set energy.require_measured: false "
                            "to accept a labelled estimate")
    try:
        sensor = create("estimate", config, estimate_params)
    except SensorProblem as e:
        raise SensorProblem(f"no energy sensor is readable ({tried}) and the estimate cannot "
                            f"be used either: {e.what}", e.fix) from None
    sensor.fallback_reason = f"auto: no measured sensor readable ({tried})"
    return sensor


def _check_required(config: EnergyConfig, sensor: Sensor) -> None:
    if config.require_measured and sensor.method != MEASURED:
        sensor.close()
        raise SensorProblem(f"sensor '{sensor.name}' is {sensor.method} "
                            f"({sensor.model or 'no model'}), but energy.require_measured is true",
                            "choose a measuring sensor or set require_measured: false")


def probe_sensor(name: str) -> Probe:
    """Can this sensor be opened here, with default settings? (for `devices --detect`)"""
    if name in _PROBE_SKIP:
        return Probe(False, _PROBE_SKIP[name], None)
    try:
        sensor = create(name, EnergyConfig(), None)
    except SensorProblem as e:
        return Probe(False, e.what, e.fix)
    try:
        return Probe(True, describe(sensor), None)
    finally:
        sensor.close()


def describe(sensor: Sensor) -> str:
    what = f"{sensor.name}: {sensor.method}, covers {sensor.coverage}"
    if sensor.model:
        what += f", model {sensor.model}"
    return what + "".join(f"; {n}" for n in sensor.notes)
