"""macOS `powermetrics` (needs root): CPU + GPU + ANE power as Apple reports it.

Apple describes these figures as estimates from its own power model, not a shunt measurement, so
this sensor is labelled method `estimated`, model `apple-powermetrics` (honesty rule: never an
estimate shown as a measurement). The `Combined Power` line is used; without it, the first CPU,
GPU and ANE lines of the sample are added. Effective resolution: the tool's interval.
"""
from __future__ import annotations

import os
import re

from ..base import ESTIMATED, PowerSensor
from ..config import EnergyConfig
from ..tool import StreamingTool, find_tool

FIX = ("powermetrics needs root without a password prompt: run the harness with sudo, or add "
       "a sudoers rule `<you> ALL=(root) NOPASSWD: /usr/bin/powermetrics`")
MIN_INTERVAL_MS = 100
_POWER = re.compile(r"^(CPU|GPU|ANE) Power:\s*([0-9.]+)\s*mW\s*$")
_COMBINED = re.compile(r"^Combined Power \(CPU \+ GPU \+ ANE\):\s*([0-9.]+)\s*mW\s*$")
_HEADER = "*** Sampled system activity"


class BlockParser:
    """Feeds powermetrics lines; returns W once per sample block.

    The Combined line wins; later per-unit lines of that block (a second "GPU Power" in the GPU
    section) are ignored. Without a Combined line, the first CPU/GPU/ANE lines are added when
    the next block starts.
    """

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self.done = False

    def feed(self, line: str) -> float | None:
        line = line.strip()
        if line.startswith(_HEADER):
            return self._flush()
        if self.done:
            return None
        m = _COMBINED.match(line)
        if m:
            self.done = True
            return float(m.group(1)) / 1000.0
        m = _POWER.match(line)
        if m:
            self.parts.setdefault(m.group(1), float(m.group(2)) / 1000.0)
        return None

    def _flush(self) -> float | None:
        watts = sum(self.parts.values()) if self.parts and not self.done else None
        self.parts, self.done = {}, False
        return watts


def parse_sample(text: str) -> float:
    """W from one printed sample (for tests and one-shot use)."""
    parser = BlockParser()
    values = [v for v in (parser.feed(line) for line in text.splitlines()) if v is not None]
    last = parser._flush()
    if last is not None:
        values.append(last)
    if not values:
        raise ValueError("no CPU/GPU/ANE power in powermetrics output")
    return values[0]


class Powermetrics(PowerSensor):
    name = "powermetrics"
    method = ESTIMATED
    model = "apple-powermetrics"
    coverage = "cpu_gpu_ane"
    max_power_w = 500.0

    def __init__(self, interval_ms: int):
        super().__init__()
        argv = [find_tool("powermetrics", "powermetrics ships with macOS (/usr/bin)"),
                "--samplers", "cpu_power,gpu_power", "-i", str(interval_ms)]
        if os.geteuid() != 0:
            argv = [find_tool("sudo", FIX), "-n", *argv]
        self.stream = StreamingTool(argv, BlockParser(), max_age_s=max(2.0, 5 * interval_ms / 1000),
                                    fix=FIX)
        self.stream.start(first_value_timeout_s=max(3.0, 3 * interval_ms / 1000))
        self.notes.append("Apple's model-based figure (CPU+GPU+ANE), not a shunt measurement; "
                          f"interval {interval_ms} ms")

    def read_power_w(self) -> float:
        return self.stream.latest_w()

    def close(self) -> None:
        self.stream.close()


def create(config: EnergyConfig, estimate_params: dict | None) -> Powermetrics:
    return Powermetrics(max(MIN_INTERVAL_MS, int(round(1000 / config.rate_hz))))
