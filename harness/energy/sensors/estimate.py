"""Estimate when nothing can be measured: a linear CPU-load x TDP model (like codecarbon's).

power_w = idle_w + (tdp_w - idle_w) * cpu_utilisation, with the utilisation of the whole machine
(all cores, all processes) over each interval between two reads, from psutil.cpu_times(). The
model is integrated exactly over each interval, so the sensor is a counter of modelled joules.
Method `estimated`, model `cpu-tdp-linear`; tdp_w, idle_w and `source` (where the figures come
from) are supplied by the device profile.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from ..base import ESTIMATED, CounterSensor, SensorProblem
from ..config import EnergyConfig

MODEL = "cpu-tdp-linear"
_FIX = ("add `estimate: {tdp_w: <W>, idle_w: <W>, source: <datasheet or measurement>}` to the "
        "device profile")


class CpuTdpEstimate(CounterSensor):
    name = "estimate"
    method = ESTIMATED
    model = MODEL
    coverage = "cpu_model"  # the CPU package as modelled, not a measured domain
    check_stuck = False  # idle_w may be 0 in a profile; a flat model is not a broken sensor

    def __init__(self, tdp_w: float, idle_w: float, source: str,
                 cpu_times: Callable[[], Any] | None = None):
        super().__init__()
        self.tdp_w, self.idle_w, self.source = tdp_w, idle_w, source
        if cpu_times is None:
            import psutil  # runner dependency; imported here so the energy package imports without it
            cpu_times = psutil.cpu_times
        self._cpu_times = cpu_times
        self._last = (time.monotonic(), *_busy_total_s(self._cpu_times()))
        self._energy_j = 0.0
        self.utilisation = 0.0
        self.notes.append(f"estimate: power_w = {idle_w:g} + ({tdp_w:g} - {idle_w:g}) x "
                          f"cpu_utilisation; figures from {source}")

    def read_energy_j(self) -> float:
        now = time.monotonic()
        busy, total = _busy_total_s(self._cpu_times())
        t_prev, busy_prev, total_prev = self._last
        if total > total_prev:  # the kernel counts CPU time in ticks; no new tick: keep last value
            self.utilisation = min(1.0, max(0.0, (busy - busy_prev) / (total - total_prev)))
        self._energy_j += self.power_w(self.utilisation) * (now - t_prev)
        self._last = (now, busy, total)
        return self._energy_j

    def power_w(self, utilisation: float) -> float:
        return self.idle_w + (self.tdp_w - self.idle_w) * utilisation


def _busy_total_s(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds over all cores; guest time is already inside user time."""
    fields = times._asdict()
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


def create(config: EnergyConfig, estimate_params: dict | None,
           cpu_times: Callable[[], Any] | None = None) -> CpuTdpEstimate:
    p = estimate_params or {}
    missing = [k for k in ("tdp_w", "idle_w", "source") if p.get(k) in (None, "")]
    if missing:
        raise SensorProblem(f"the estimate needs {', '.join(missing)} from the device profile",
                            _FIX)
    tdp_w, idle_w = float(p["tdp_w"]), float(p["idle_w"])
    if not 0 <= idle_w <= tdp_w:
        raise SensorProblem(f"estimate figures must satisfy 0 <= idle_w <= tdp_w "
                            f"(got idle_w={idle_w}, tdp_w={tdp_w})", _FIX)
    return CpuTdpEstimate(tdp_w, idle_w, str(p["source"]), cpu_times)
