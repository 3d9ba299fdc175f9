"""Intel/AMD RAPL through Linux powercap: cumulative package counters (uJ), read as files.

Only top-level package zones (plus dram if asked) are summed: psys contains the packages and
core/uncore sit inside them, so adding those would count the same joules twice. The
intel-rapl-mmio zones duplicate the package zone and are never globbed.
"""
from __future__ import annotations

from ... import sysfs
from ..base import CounterSensor, SensorProblem, WrapCounter
from ..config import EnergyConfig
from ..uncertainty import Accuracy

POWERCAP = "/sys/class/powercap"
PERMISSION_FIX = ("energy_uj is root-only since CVE-2020-8694: run "
                  "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or "
                  "install a udev rule, e.g. /etc/udev/rules.d/70-rapl.rules with "
                  "ACTION==\"add\", SUBSYSTEM==\"powercap\", KERNEL==\"intel-rapl:*\", "
                  "RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"")
# Stated accuracy (harness.energy.uncertainty): none is published for the energy itself.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.001,
    source="Intel and AMD publish no accuracy for RAPL energy. Known behaviour: measured since "
           "Haswell (Hackenberg et al. 2015, 'An Energy Efficiency Feature Survey of the Intel "
           "Haswell Processor'), modelled before it and on AMD Zen (Schoene et al. 2021, "
           "'Energy Efficiency Aspects of the AMD Zen 2 Architecture'); counter unit 2^-16 J, "
           "updated about every 1 ms (Intel SDM vol. 3B, RAPL interfaces). Calibrate against a "
           "meter for a figure.")


class Zone:
    def __init__(self, path: str, name: str):
        self.path = path
        self.name = name
        self.counter = WrapCounter(self.read_raw(), _max_range(path))

    def read_raw(self) -> int:
        try:
            return sysfs.read_int(f"{self.path}/energy_uj")
        except PermissionError:
            raise SensorProblem(f"cannot read {self.path}/energy_uj (permission denied)",
                                PERMISSION_FIX) from None


class Rapl(CounterSensor):
    name = "rapl"
    max_power_w = 1500.0

    def __init__(self, zones: list[Zone]):
        super().__init__()
        self.zones = zones
        names = [z.name for z in zones]
        self.coverage = "package+dram" if any(n == "dram" for n in names) else "package"
        self.notes.append("RAPL zones: " + ", ".join(f"{z.path.rsplit('/', 1)[-1]} ({z.name})"
                                                     for z in zones))

    def read_energy_j(self) -> float:
        return sum(z.counter.update(z.read_raw()) for z in self.zones) / 1e6


def _max_range(path: str) -> int | None:
    try:
        return sysfs.read_int(f"{path}/max_energy_range_uj")
    except (FileNotFoundError, ValueError):
        return None


def find_zones(include_dram: bool) -> list[tuple[str, str]]:
    """(device path, name) of the zones to sum, without overlapping domains."""
    chosen = []
    for path in sysfs.glob(f"{POWERCAP}/intel-rapl:*"):
        zone_id = path.rsplit("/", 1)[-1]  # intel-rapl:0 (package) or intel-rapl:0:2 (subzone)
        try:
            name = sysfs.read_text(f"{path}/name").strip()
        except OSError:
            continue
        top_level = zone_id.count(":") == 1
        if (top_level and name.startswith("package")) or (include_dram and name == "dram"):
            chosen.append((path, name))
    return chosen


def create(config: EnergyConfig, estimate_params: dict | None) -> Rapl:
    found = find_zones(config.rapl_include_dram)
    if not any(name.startswith("package") for _, name in found):
        raise SensorProblem(f"no RAPL package zone under {POWERCAP}",
                            "RAPL needs an x86 CPU (Intel, or AMD family 17h+) with the "
                            "intel_rapl_common kernel module loaded (`sudo modprobe "
                            "intel_rapl_msr`); virtual machines usually have none")
    return Rapl([Zone(path, name) for path, name in found])
