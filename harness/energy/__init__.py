"""Energy and carbon: joules per token from real sensors, honest labelled estimates elsewhere.

The cell child process uses exactly this API:
    config = EnergyConfig.from_node(matrix_node.get("energy"))
    sensor = open_sensor(config, profile_sensors, estimate_params)
    baseline_w, baseline_trace = measure_baseline(sensor, config.rate_hz, config.baseline_s)
    sampler = Sampler(sensor, config.rate_hz).start(); ...workload...; trace = sampler.stop()
    fields = account(trace, window, phases, baseline_w, tokens_in, tokens_out, g_per_kwh, source)
"""
from __future__ import annotations

from .accounting import account, load_energy_j
from .base import (ESTIMATED, MEASURED, SCRIPTED, CounterSensor, PowerSensor, Probe, Sensor,
                   SensorProblem)
from .carbon import carbon_intensity
from .config import SENSOR_NAMES, EnergyConfig
from .registry import describe, open_sensor, probe_sensor
from .sampler import Sampler, measure_baseline
from .trace import TRACE_CSV_HEADER, Trace

__all__ = ["account", "load_energy_j", "carbon_intensity", "EnergyConfig", "open_sensor",
           "probe_sensor", "describe", "Sampler", "measure_baseline", "Trace", "TRACE_CSV_HEADER",
           "Sensor", "PowerSensor", "CounterSensor", "Probe", "SensorProblem", "SENSOR_NAMES",
           "MEASURED", "ESTIMATED", "SCRIPTED"]
