"""macOS `powermetrics` (needs root): Apple's power figures for the CPU, GPU, ANE or package.

Apple describes these figures as estimates from its own power model, not a shunt measurement, so
this sensor is labelled method `estimated` (honesty rule: never an estimate shown as a
measurement). Per sample block, in this order of preference:
- Apple Silicon, macOS 13+: the `Combined Power (CPU + GPU + ANE)` line (coverage `cpu_gpu_ane`).
- Apple Silicon, macOS 12: no Combined line; `Package Power` (coverage `package`, model
  `apple-powermetrics`). `DRAM Power` and `DCS Power` are printed beside it and are not inside
  it (on a captured M2 block Package was 25 mW, DRAM 19 mW and DCS 36 mW), so they are left out
  and the notes say so.
- Intel Macs: `Intel energy model derived package power (CPUs+GT+SA): 8.53W` (coverage
  `package`, model `apple-intel-energy-model`: Apple's model of the Intel package).
- Otherwise the first CPU, GPU and ANE lines of the block, added when the block's power section
  ends (the next `****` section or sample header), not a whole interval later.
Effective resolution: the tool's interval.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..base import ESTIMATED, PowerSensor
from ..config import EnergyConfig
from ..uncertainty import Accuracy
from ..tool import StreamingTool, find_tool

FIX = ("powermetrics needs root without a password prompt: run the harness with sudo, or add "
       "a sudoers rule `<you> ALL=(root) NOPASSWD: /usr/bin/powermetrics`")
MIN_INTERVAL_MS = 100
_POWER = re.compile(r"^(CPU|GPU|ANE) Power:\s*([0-9.]+)\s*mW\s*$")
_COMBINED = re.compile(r"^Combined Power \(CPU \+ GPU \+ ANE\):\s*([0-9.]+)\s*mW\s*$")
_PACKAGE = re.compile(r"^Package Power:\s*([0-9.]+)\s*mW\s*$")
_INTEL = re.compile(
    r"^Intel energy model derived package power \(CPUs\+GT\+SA\):\s*([0-9.]+)\s*W\s*$")
_HEADERS = ("*** Sampled system activity", "*** Summary system activity")
_SECTION = "****"
# Stated accuracy (harness.energy.uncertainty): an estimate from Apple's model; none published.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0,
    source="Apple describes powermetrics power as estimates and publishes no accuracy.")


@dataclass(frozen=True)
class Kind:
    """What a block's figure covers and whose model it is."""

    coverage: str
    model: str
    note: str


COMBINED = Kind("cpu_gpu_ane", "apple-powermetrics",
                "Apple's model-based figure (Combined Power: CPU+GPU+ANE), not a shunt measurement")
PACKAGE = Kind("package", "apple-powermetrics",
               "Apple's model-based Package Power (macOS 12), not a shunt measurement; DRAM and "
               "DCS Power are printed separately and not included")
INTEL = Kind("package", "apple-intel-energy-model",
             "Apple's Intel energy model of the package (CPUs+GT+SA), not a measurement; DRAM "
             "and the rest of the Mac are not included")
PARTS = Kind("cpu_gpu_ane", "apple-powermetrics",
             "Apple's model-based CPU+GPU+ANE lines added (no Combined line), not a measurement")


class BlockParser:
    """Feeds powermetrics lines; returns W once per sample block, as soon as the block's figure
    is known. A total line (Combined, Package, Intel) wins and later power lines of that block
    (a second "GPU Power" in the GPU section) are ignored; without one, the first CPU/GPU/ANE
    lines are added when the next section or block starts."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self.done = False
        self.kind: Kind | None = None

    def feed(self, line: str) -> float | None:
        line = line.strip()
        if line.startswith(_HEADERS):
            watts = self._flush()
            self.parts, self.done = {}, False
            return watts
        if self.done:
            return None
        if line.startswith(_SECTION) and self.parts:
            return self._flush()
        for pattern, kind, scale in ((_COMBINED, COMBINED, 1e-3), (_PACKAGE, PACKAGE, 1e-3),
                                     (_INTEL, INTEL, 1.0)):
            m = pattern.match(line)
            if m:
                self.done, self.kind = True, kind
                return float(m.group(1)) * scale
        m = _POWER.match(line)
        if m:
            self.parts.setdefault(m.group(1), float(m.group(2)) / 1000.0)
        return None

    def _flush(self) -> float | None:
        if self.done or not self.parts:
            return None
        watts = sum(self.parts.values())
        self.done, self.kind = True, PARTS
        return watts


def parse_samples(text: str) -> list[tuple[float, Kind]]:
    """(W, kind) for every block of a printed output (for tests and one-shot use)."""
    parser = BlockParser()
    out = []
    for line in [*text.splitlines(), _HEADERS[0]]:  # a final header ends the last block
        watts = parser.feed(line)
        if watts is not None:
            out.append((watts, parser.kind))
    return out


def parse_sample(text: str) -> float:
    """W of the first block of a printed output."""
    samples = parse_samples(text)
    if not samples:
        raise ValueError("no CPU/GPU/ANE, package or Intel energy-model power in powermetrics "
                         "output")
    return samples[0][0]


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
        self.parser = BlockParser()
        self.stream = StreamingTool(argv, self.parser, max_age_s=max(2.0, 5 * interval_ms / 1000),
                                    fix=FIX)
        self.stream.start(first_value_timeout_s=max(3.0, 3 * interval_ms / 1000))
        kind = self.parser.kind or COMBINED
        self.coverage, self.model = kind.coverage, kind.model
        self.notes.append(f"{kind.note}; interval {interval_ms} ms")

    def read_power_w(self) -> float:
        return self.stream.latest_w()

    def close(self) -> None:
        self.stream.close()


def create(config: EnergyConfig, estimate_params: dict | None) -> Powermetrics:
    return Powermetrics(max(MIN_INTERVAL_MS, int(round(1000 / config.rate_hz))))
