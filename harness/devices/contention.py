"""Did other processes share the cores during a measured window?

A second benchmark on the same machine only showed up as "unstable" (first-token time from 0.09 s
to 1.3 s). Here the machine's busy CPU time (/proc/stat, through harness.sysfs so tests can fake
it) is compared with this process's own CPU time over each repetition: what is left was used by
someone else. Above OTHERS_LIMIT_CORES on average the repetition gets a warning, so a contaminated
figure is never compared silently. Where /proc/stat cannot be read nothing is claimed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .. import sysfs

OTHERS_LIMIT_CORES = 0.25  # other processes' average use, in cores, above which a window is flagged
TICK_MARGIN = 3  # /proc/stat counts whole clock ticks: allow this many of rounding on two reads


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    try:
        first = sysfs.read_text("/proc/stat").splitlines()[0].split()
        if first[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    except (OSError, IndexError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / _ticks_per_s()


def own_cpu_s() -> float:
    """CPU seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


def _ticks_per_s() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


@dataclass
class ContentionWindow:
    """Open with start(), close with stop(): the cores others used in between."""

    busy0_s: float | None = None
    own0_s: float = 0.0
    t0: float = 0.0

    def start(self) -> "ContentionWindow":
        self.busy0_s, self.own0_s, self.t0 = machine_busy_s(), own_cpu_s(), time.monotonic()
        return self

    def others_cores(self) -> float | None:
        """Average cores used by other processes since start(); None when it cannot be known."""
        busy1, own1, window_s = machine_busy_s(), own_cpu_s(), time.monotonic() - self.t0
        if self.busy0_s is None or busy1 is None or window_s <= 0:
            return None
        others_s = (busy1 - self.busy0_s) - (own1 - self.own0_s) - TICK_MARGIN / _ticks_per_s()
        return max(0.0, others_s) / window_s

    def warning(self, what: str) -> str | None:
        """A warning for the record when others used more than OTHERS_LIMIT_CORES, else None."""
        cores = self.others_cores()
        if cores is None or cores <= OTHERS_LIMIT_CORES:
            return None
        return (f"shared cores: other processes used {cores:.2f} core(s) on average during {what} "
                f"(limit {OTHERS_LIMIT_CORES}); another benchmark or a heavy process was running, "
                "so its figures are not comparable")
