"""One base for the sysfs rail readers (INA3221 hwmon and IIO, Thor's INA238): pick, add, check.

The readers differ only in where a rail's power comes from; which rails are added is the
documented per-board rule of `jetson_rails`, applied here once. Opening reads every chosen rail
once, so a permission problem shows at open (with the fix), not as a broken trace.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

from ..base import PowerSensor, SensorProblem
from . import jetson_rails

MAX_POWER_W = 250.0  # the AGX Thor developer kit's supply is 240 W; every other Jetson far less


class Rail(Protocol):
    label: str

    def power_w(self) -> float:
        """Instantaneous power of this rail."""


class RailSumSensor(PowerSensor):
    """Adds the rails the board's documented plan chooses; notes say what was left out and why."""

    max_power_w = MAX_POWER_W

    def __init__(self, rails: Sequence[Rail], plan: jetson_rails.RailPlan):
        super().__init__()
        self.rails = list(rails)
        self.plan = plan
        self.coverage = plan.coverage
        self.notes.extend(plan.notes())

    def read_power_w(self) -> float:
        return sum(r.power_w() for r in self.rails)


def open_rails(make: Callable[[list[Rail], jetson_rails.RailPlan], RailSumSensor],
               find: Callable[[], list[Rail]], what: str, absent_fix: str,
               permission_fix: str) -> RailSumSensor:
    """Find the rails, choose by the board's rule, read once; every failure names its fix."""
    try:
        rails = find()
    except PermissionError as e:
        raise SensorProblem(f"cannot read {what} files ({e.filename})", permission_fix) from None
    if not rails:
        raise SensorProblem(f"no {what} rails found", absent_fix)
    try:
        plan = jetson_rails.choose([r.label for r in rails])
    except jetson_rails.RailError as e:
        raise SensorProblem(f"{what}: {e.what}", e.fix) from None
    sensor = make([r for r in rails if r.label in plan.summed], plan)
    try:
        sensor.read_power_w()
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)",
                            permission_fix) from None
    return sensor
