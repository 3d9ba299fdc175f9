"""A sensor sampled without end into a bounded buffer, and the energy of any recent window.

The cell's Sampler makes one trace per window it already knows; a meter does not know the
windows in advance (the device asks afterwards), so it keeps the last `retention_s` of readings
and cuts a Trace out of them per request. Integration, interpolation at the window edges and the
validity checks are the energy room's own (harness.energy.trace.Trace).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..energy.base import Sensor
from ..energy.trace import Trace

EDGE_WAIT_PERIODS = 3.0  # a request right after its window waits this many periods for a sample past it


@dataclass(frozen=True)
class WindowEnergy:
    """The server's energy over one window, or why it has none."""

    energy_j: float | None
    valid: bool
    invalid_reason: str | None
    t0_monotonic_s: float
    t1_monotonic_s: float
    sample_count: int
    sensor: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"energy_j": self.energy_j, "valid": self.valid,
                "invalid_reason": self.invalid_reason, "t0_monotonic_s": self.t0_monotonic_s,
                "t1_monotonic_s": self.t1_monotonic_s, "sample_count": self.sample_count,
                "method": self.sensor.get("method"), "sensor": self.sensor.get("sensor"),
                "model": self.sensor.get("model"), "coverage": self.sensor.get("coverage")}


class RollingSampler:
    """Reads `sensor` at `rate_hz` in a thread; keeps `retention_s` of (monotonic time, value)."""

    def __init__(self, sensor: Sensor, rate_hz: float, retention_s: float = 3600.0):
        if rate_hz <= 0 or retention_s <= 0:
            raise ValueError("rate_hz and retention_s must be positive")
        self.sensor = sensor
        self.rate_hz = float(rate_hz)
        self.retention_s = float(retention_s)
        self._read = sensor.read_energy_j if sensor.kind == "counter" else sensor.read_power_w
        n = int(retention_s * rate_hz) + 2
        self._t: deque[float] = deque(maxlen=n)
        self._v: deque[float] = deque(maxlen=n)
        self._errors: deque[tuple[float, str]] = deque(maxlen=64)
        self._lock = threading.Lock()
        self._new = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meter-sampler", daemon=True)

    def start(self) -> "RollingSampler":
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic() + period
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            self._sample()
            next_t += period
            now = time.monotonic()
            if next_t < now:  # fell behind: no burst; the gap shows in the trace checks
                next_t = now + period

    def _sample(self) -> None:
        t_a = time.monotonic()
        try:
            value = float(self._read())
        except Exception as e:  # kept with its time: a window containing it is invalid
            with self._lock:
                self._errors.append((t_a, f"{type(e).__name__}: {e}"))
            return
        t_b = time.monotonic()
        with self._new:
            self._t.append((t_a + t_b) / 2.0)
            self._v.append(value)
            self._new.notify_all()

    @property
    def oldest_s(self) -> float | None:
        with self._lock:
            return self._t[0] if self._t else None

    def energy(self, t0: float, t1: float) -> WindowEnergy:
        """Joules between two monotonic times of this process (waits briefly for the edge)."""
        info = self.sensor.info()
        if not t1 > t0:
            return WindowEnergy(None, False, f"empty window [{t0}, {t1}]", t0, t1, 0, info)
        self._wait_past(t1)
        with self._lock:
            t = np.array(self._t, dtype=float)
            v = np.array(self._v, dtype=float)
            errors = [msg for (te, msg) in self._errors if t0 - 1.0 / self.rate_hz <= te <= t1]
        reason = self._coverage_problem(t, t0, t1)
        n_inside = int(np.sum((t >= t0) & (t <= t1)))
        if reason is None:
            lo = max(0, int(np.searchsorted(t, t0, side="right")) - 1)
            hi = int(np.searchsorted(t, t1, side="left")) + 1
            t, v = t[lo:hi], v[lo:hi]
            if self.sensor.kind == "counter" and len(v):
                v = v - v[0]
            trace = Trace(kind=self.sensor.kind, t_s=t, values=v, nominal_rate_hz=self.rate_hz,
                          sensor=info, read_errors=errors[:5], read_error_count=len(errors),
                          max_power_w=self.sensor.max_power_w, check_stuck=self.sensor.check_stuck)
            reason = trace.invalid_reason
            if reason is None:
                return WindowEnergy(trace.window(t0, t1), True, None, t0, t1, trace.sample_count, info)
        return WindowEnergy(None, False, reason, t0, t1, n_inside, info)

    def _wait_past(self, t1: float) -> None:
        deadline = time.monotonic() + EDGE_WAIT_PERIODS / self.rate_hz + 0.5
        with self._new:
            while not (self._t and self._t[-1] >= t1):
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return
                self._new.wait(left)

    def _coverage_problem(self, t: np.ndarray, t0: float, t1: float) -> str | None:
        if len(t) < 2:
            return "the meter has fewer than 2 samples so far"
        if t0 < t[0]:
            return (f"the window starts {t[0] - t0:.1f} s before the oldest sample the meter keeps "
                    f"(retention {self.retention_s:g} s, or the meter started after the window)")
        if t1 > t[-1]:
            return (f"the window ends {t1 - t[-1]:.2f} s after the newest sample: the window lies "
                    "in the meter's future (clock offset wrong?) or its sensor stopped")
        return None
