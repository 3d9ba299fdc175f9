"""Estimate when nothing can be measured: a linear CPU-load x TDP model (like codecarbon's).

power_w = idle_w + (tdp_w - idle_w) * cpu_utilisation, with the utilisation of the whole machine
(all cores, all processes) over each interval between two reads, from psutil.cpu_times(). The
model is integrated exactly over each interval, so the sensor is a counter of modelled joules.
Method `estimated`, model `cpu-tdp-linear`. tdp_w, idle_w and `source` (where the figures come
from) are the device profile's, or, where the profile says `lookup: codecarbon`, this host's CPU
looked up in codecarbon's data and scaled to the host's CPUs (harness.energy.cpu_power); without
codecarbon the profile's figures are used and a note on every record says so.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple

from ... import sysfs
from .. import cpu_power
from ..base import ESTIMATED, CounterSensor, SensorProblem
from ..config import EnergyConfig
from ..uncertainty import Accuracy

MODEL = "cpu-tdp-linear"
_FIX = ("add `estimate: {tdp_w: <W>, idle_w: <W>, source: <datasheet or measurement>}` to the "
        "device profile")
LOOKUPS = ("codecarbon",)
# Stated accuracy (harness.energy.uncertainty): a model, whose error is not known.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0,
    source="a CPU-load x TDP model, not a measurement: its error is unknown.")


class CpuTdpEstimate(CounterSensor):
    name = "estimate"
    method = ESTIMATED
    model = MODEL
    coverage = "cpu_model"  # the CPU package as modelled, not a measured domain
    check_stuck = False  # idle_w may be 0 in a profile; a flat model is not a broken sensor

    def __init__(self, tdp_w: float, idle_w: float, source: str,
                 cpu_times: Callable[[], Any] | None = None,
                 details: tuple[str, ...] = (), figures: dict[str, Any] | None = None):
        super().__init__()
        self.tdp_w, self.idle_w, self.source = tdp_w, idle_w, source
        self.figures = {"tdp_w": tdp_w, "idle_w": idle_w, "source": source,
                        **(figures or {})}
        self._cpu_times = cpu_times or machine_cpu_times()
        self._last = (time.monotonic(), *_busy_total_s(self._cpu_times()))
        self._energy_j = 0.0
        self.utilisation = 0.0
        self.notes.append(f"estimate: power_w = {idle_w:g} + ({tdp_w:g} - {idle_w:g}) x "
                          f"cpu_utilisation; figures from {source}")
        self.notes.extend(details)

    def info(self) -> dict:
        """The sensor's provenance plus the figures used and where each came from."""
        return {**super().info(), "estimate": dict(self.figures)}

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

    def close(self) -> None:
        close = getattr(self._cpu_times, "close", None)
        if close is not None:
            close()


class CpuTimes(NamedTuple):
    """The machine's CPU seconds by state, as /proc/stat's first line (psutil.cpu_times' fields)."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0


def machine_cpu_times() -> Callable[[], Any]:
    """A reader of the machine's CPU times, as cheap as the OS allows.

    The sampler reads it 20 times a second beside the measured work. On Linux one pread of
    /proc/stat (kept open, under HARNESS_SYSFS_ROOT) costs about a third of psutil.cpu_times(),
    which opens and parses the file each call: 15 against 46 us on the 2-core CI VM. The figures
    are the same (the first line, in clock ticks, over SC_CLK_TCK). Elsewhere, psutil.
    """
    try:
        reader = ProcStatTimes(sysfs.path("/proc/stat"))
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        import psutil  # runner dependency; imported here so the energy package imports without it

        return psutil.cpu_times
    return reader


class ProcStatTimes:
    """/proc/stat's cpu line through one open descriptor; a file that does not parse is refused."""

    def __init__(self, path: os.PathLike[str] | str):
        self._tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        self._fd: int | None = os.open(path, os.O_RDONLY)
        try:
            self()
        except Exception:
            self.close()
            raise

    def __call__(self) -> CpuTimes:
        if self._fd is None:
            raise OSError("the /proc/stat reader is closed")
        first = os.pread(self._fd, 512, 0).split(b"\n", 1)[0].split()
        if not first or first[0] != b"cpu":
            raise ValueError("/proc/stat does not start with the cpu line")
        return CpuTimes(*(int(v) * self._tick_s for v in first[1:11]))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _busy_total_s(times: Any) -> tuple[float, float]:
    """Busy and total CPU seconds over all cores; guest time is already inside user time."""
    fields = times._asdict()
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


def create(config: EnergyConfig, estimate_params: dict | None,
           cpu_times: Callable[[], Any] | None = None) -> CpuTdpEstimate:
    f = figures(estimate_params)
    return CpuTdpEstimate(f.tdp_w, f.idle_w, f.source, cpu_times, f.notes, f.figures)


def figures(estimate_params: dict | None) -> cpu_power.CpuPower:
    """The model's figures for a profile's `estimate` block: its own, or looked up (with the
    profile's as a noted fallback). Shared with `devices --detect`, which shows them."""
    p = estimate_params or {}
    lookup = p.get("lookup")
    if lookup is None:
        tdp_w, idle_w = _profile_figures(p)
        return cpu_power.CpuPower(tdp_w, idle_w, str(p["source"]), ())
    if lookup not in LOOKUPS:
        raise SensorProblem(f"unknown estimate lookup '{lookup}'",
                            f"use one of: {', '.join(LOOKUPS)}, or remove `lookup`")
    try:
        return cpu_power.lookup()
    except cpu_power.CpuPowerUnavailable as e:
        return _profile_fallback(p, str(e))


def _profile_figures(p: dict) -> tuple[float, float]:
    missing = [k for k in ("tdp_w", "idle_w", "source") if p.get(k) in (None, "")]
    if missing:
        raise SensorProblem(f"the estimate needs {', '.join(missing)} from the device profile",
                            _FIX)
    tdp_w, idle_w = float(p["tdp_w"]), float(p["idle_w"])
    if not 0 <= idle_w <= tdp_w:
        raise SensorProblem(f"estimate figures must satisfy 0 <= idle_w <= tdp_w "
                            f"(got idle_w={idle_w}, tdp_w={tdp_w})", _FIX)
    return tdp_w, idle_w


def _profile_fallback(p: dict, reason: str) -> cpu_power.CpuPower:
    """codecarbon's data cannot be read: the profile's own figures, never silently."""
    try:
        tdp_w, idle_w = _profile_figures(p)
    except SensorProblem as e:
        raise SensorProblem(f"the estimate cannot look this CPU up ({reason}) and {e.what}",
                            "pip install edgebench[carbon], or " + _FIX) from None
    note = (f"fallback: the profile asks for codecarbon's CPU power data, but {reason}; the "
            f"profile's own figures are used instead (tdp_w {tdp_w:g} W, idle_w {idle_w:g} W)")
    return cpu_power.CpuPower(tdp_w, idle_w, str(p["source"]), (note,),
                              {"lookup": p.get("lookup"), "fallback": note})
