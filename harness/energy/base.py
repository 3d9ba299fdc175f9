"""The one small interface every power sensor implements (zeus-style).

A sensor is either a cumulative counter (`read_energy_j`) or an instantaneous power reader
(`read_power_w`). Counters are preferred: their differences are exact whatever the sampling rate;
power readers are integrated over the actual sample timestamps by the sampler.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SensorError

MEASURED = "measured"
ESTIMATED = "estimated"
SCRIPTED = "scripted"  # the test-only sensor: a known curve, never shown as a measurement


class SensorProblem(SensorError):
    """A sensor cannot be used; `fix` says what the user can do about it (None: nothing)."""

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. Fix: {fix}" if fix else what)


@dataclass(frozen=True)
class Probe:
    """Answer for `devices --detect`: can this sensor be read here, and if not, how to fix it."""

    ok: bool
    detail: str
    fix: str | None = None


class Sensor:
    """Common provenance every energy record carries."""

    name: str = "sensor"
    kind: str = "power"  # "power" or "counter"
    method: str = MEASURED
    model: str | None = None  # for estimates: the named power model
    coverage: str = "unknown"
    max_power_w: float = 2000.0  # above this a reading is implausible for any edge device
    check_stuck: bool = True  # counters only: a counter that stops moving is a broken sensor

    def __init__(self) -> None:
        self.notes: list[str] = []  # caveats shown in reports (e.g. "sum of rails, board excluded")
        self.fallback_reason: str | None = None  # set when `auto` fell back to this sensor

    def info(self) -> dict:
        return {"sensor": self.name, "method": self.method, "model": self.model,
                "coverage": self.coverage, "notes": list(self.notes),
                "fallback_reason": self.fallback_reason}

    def close(self) -> None:
        """Release tools or handles; reading after close is not supported."""


class PowerSensor(Sensor):
    kind = "power"

    def read_power_w(self) -> float:
        raise NotImplementedError


class CounterSensor(Sensor):
    kind = "counter"

    def read_energy_j(self) -> float:
        """Cumulative energy; never decreases (wraparound is unwrapped inside the sensor)."""
        raise NotImplementedError


class WrapCounter:
    """Unwraps one hardware counter that restarts at 0 after `range_raw` (e.g. RAPL uJ).

    It must be fed more often than one full wrap (RAPL: ~minutes at package power), which the
    sampler's rate guarantees.
    """

    def __init__(self, first_raw: int, range_raw: int | None):
        self.last_raw = first_raw
        self.range_raw = range_raw
        self.total_raw = 0

    def update(self, raw: int) -> int:
        delta = raw - self.last_raw
        if delta < 0:
            if not self.range_raw:
                raise SensorError(f"counter went backwards ({self.last_raw} -> {raw}) and its "
                                  "wrap range is unknown (counter reset?)")
            delta += self.range_raw
        self.last_raw = raw
        self.total_raw += delta
        return self.total_raw
