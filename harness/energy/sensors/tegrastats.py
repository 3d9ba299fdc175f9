"""Jetson `tegrastats`: rail powers parsed from its periodic line, for when sysfs is unreadable.

Each rail prints `NAME cur/avg` (older) or `NAME curmW/avgmW` (newer), sometimes with a third
value; the first is the instantaneous reading, the others are the tool's running averages and are
never used. Readings can be negative (an idle AGX Thor prints `VDD_GPU -392mW/-392mW`: an offset
of the monitor), so the sign is kept. Which rails are added is the board's documented rule
(`jetson_rails`): the AGX Thor's `VIN` alone, the AGX Orin without VDDQ_VDD2_1V8AO, and so on.
Effective resolution: the tool's interval.
"""
from __future__ import annotations

import re

from ..base import PowerSensor
from ..config import EnergyConfig
from ..tool import StreamingTool, find_tool
from . import jetson_rails
from .ina3221_hwmon import ACCURACY  # noqa: F401  tegrastats prints the INA3221 rails
from .rail_sum import MAX_POWER_W

_VALUE = r"-?\d+(?:mW)?"
_RAIL = re.compile(rf"(?<!\S)([A-Z][A-Z0-9_]*) (-?\d+)(?:mW)?/{_VALUE}(?:/{_VALUE})?(?!\S)")
FIX = "tegrastats ships with JetPack (/usr/bin/tegrastats); run on a Jetson with it on PATH"
MIN_INTERVAL_MS = 100


def parse_rails_w(line: str) -> dict[str, float]:
    """{rail: W} from one tegrastats line (first value of each rail)."""
    return {name: int(mw) / 1000.0 for name, mw in _RAIL.findall(line)}


def total_w(rails: dict[str, float]) -> tuple[float, jetson_rails.RailPlan]:
    """(W, plan): the board's documented rails added; RailError when no rule fits."""
    plan = jetson_rails.choose(list(rails))
    return sum(rails[n] for n in plan.summed), plan


class _LineParser:
    def __init__(self) -> None:
        self.plan: jetson_rails.RailPlan | None = None

    def feed(self, line: str) -> float | None:
        if not line.strip():
            return None
        rails = parse_rails_w(line)
        if not rails:
            raise ValueError(f"no power rails in tegrastats line: {line[:120]!r}")
        watts, self.plan = total_w(rails)
        return watts


class Tegrastats(PowerSensor):
    name = "tegrastats"
    max_power_w = MAX_POWER_W

    def __init__(self, interval_ms: int):
        super().__init__()
        self.parser = _LineParser()
        exe = find_tool("tegrastats", FIX)
        self.interval_ms = interval_ms
        self.stream = StreamingTool([exe, "--interval", str(interval_ms)], self.parser,
                                    max_age_s=max(2.0, 5 * interval_ms / 1000), fix=FIX)
        self.stream.start(first_value_timeout_s=max(3.0, 3 * interval_ms / 1000))
        plan = self.parser.plan
        if plan is not None:
            self.coverage = plan.coverage
            self.notes.extend(plan.notes())
        self.notes.append(f"tegrastats interval {interval_ms} ms (readings update at that rate)")

    def read_power_w(self) -> float:
        return self.stream.latest_w()

    def close(self) -> None:
        self.stream.close()


def create(config: EnergyConfig, estimate_params: dict | None) -> Tegrastats:
    return Tegrastats(max(MIN_INTERVAL_MS, int(round(1000 / config.rate_hz))))
