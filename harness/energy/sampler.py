"""Background sampling of one sensor at a fixed rate, on the backend's clock (time.monotonic()).

Counters are read at the rate too: the trace then shows power over time, and hardware counters
that wrap (RAPL) are read often enough to unwrap.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from ..errors import SensorError
from .base import Sensor
from .trace import Trace

MAX_KEPT_ERRORS = 5


class Sampler:
    """`start()`, run the workload, `stop() -> Trace`. One sample is taken synchronously at
    start and at stop, so any window between the two calls lies inside the trace."""

    def __init__(self, sensor: Sensor, rate_hz: float, on_tick: Callable[[], object] | None = None):
        """`on_tick`: called after each sample in the sampler's thread. The cell's memory watch
        rides on it during a measured window, so one thread wakes beside the work, not two."""
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.sensor = sensor
        self.rate_hz = float(rate_hz)
        self._read = sensor.read_energy_j if sensor.kind == "counter" else sensor.read_power_w
        self._t: list[float] = []
        self._v: list[float] = []
        self._errors: list[str] = []
        self._error_count = 0
        # Woken by stop() through a held lock: a timed Lock.acquire costs a fifth less CPU per
        # tick than Event.wait (which builds a Condition each call), and the sampler wakes 20
        # times a second beside the measured work (docs/benchmarks.md, "What the harness costs").
        self._wake = threading.Lock()
        self._wake.acquire()
        self._thread: threading.Thread | None = None
        self._on_tick = on_tick

    def start(self) -> "Sampler":
        if self._thread is not None:
            raise RuntimeError("a Sampler is started once; make a new one per trace")
        self._sample()
        self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Trace:
        if self._thread is None:
            raise RuntimeError("stop() called before start()")
        self._wake.release()
        self._thread.join()
        self._sample()
        return self._trace(len(self._t))

    def snapshot(self) -> Trace:
        """The trace so far, while sampling goes on (a soak's per-window power). Only whole
        samples are taken: the sampler thread appends the time before the value."""
        return self._trace(min(len(self._t), len(self._v)))

    def _trace(self, n: int) -> Trace:
        return Trace(kind=self.sensor.kind, t_s=np.array(self._t[:n]), values=self._values(n),
                     nominal_rate_hz=self.rate_hz, sensor=self.sensor.info(),
                     read_errors=list(self._errors), read_error_count=self._error_count,
                     max_power_w=self.sensor.max_power_w, check_stuck=self.sensor.check_stuck)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic() + period
        while not self._wake.acquire(timeout=max(0.0, next_t - time.monotonic())):
            self._sample()
            if self._on_tick is not None:
                self._on_tick()
            next_t += period
            now = time.monotonic()
            if next_t < now:  # fell behind (CPU starved): do not burst; the gap is recorded
                next_t = now + period

    def _sample(self) -> None:
        t_a = time.monotonic()
        try:
            value = float(self._read())
        except Exception as e:  # recorded, and it invalidates the trace; never swallowed
            self._error_count += 1
            if len(self._errors) < MAX_KEPT_ERRORS:
                self._errors.append(f"{type(e).__name__}: {e}")
            return
        t_b = time.monotonic()
        self._t.append((t_a + t_b) / 2.0)  # the reading happened somewhere within the read
        self._v.append(value)

    def _values(self, n: int) -> np.ndarray:
        v = np.array(self._v[:n], dtype=float)
        if self.sensor.kind == "counter" and len(v):
            v = v - v[0]  # joules since the first read keep full float precision
        return v


def measure_baseline(sensor: Sensor, rate_hz: float, duration_s: float) -> tuple[float, Trace]:
    """Idle power (W) over `duration_s` with nothing running, e.g. with the model loaded.

    An invalid baseline raises SensorError: net energy built on it would be wrong.
    duration_s <= 0 (baseline_s: 0) skips it: NaN power, so net energy and carbon become null."""
    if duration_s <= 0:
        return float("nan"), Trace(kind=sensor.kind, t_s=np.array([]), values=np.array([]),
                                   nominal_rate_hz=rate_hz, sensor=sensor.info())
    sampler = Sampler(sensor, rate_hz).start()
    time.sleep(duration_s)
    trace = sampler.stop()
    if not trace.valid:
        raise SensorError(f"idle baseline with sensor '{sensor.name}' is invalid: "
                          f"{trace.invalid_reason}")
    return trace.energy_j() / trace.duration_s, trace
