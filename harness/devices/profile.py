"""Hardware profiles: one YAML file per device in `devices/`, validated into frozen dataclasses.

Why YAML files and not Python: users add their own board by copying a file, and the harness must
refuse a typo (unknown key, wrong type) with the file and key path rather than silently measuring
the wrong thing.
"""
from __future__ import annotations

import os
import site
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..energy.config import SENSOR_NAMES  # the energy room's registry names, defined once
from ..errors import ConfigError, HarnessError
from ..schema import Node, load_yaml

ESTIMATE_LOOKUPS = ("codecarbon",)  # harness.energy.sensors.estimate.LOOKUPS
THROTTLING_SOURCES = ("vcgencmd", "linux", "none")
RULE_SOURCES = ("file", "exists", "getprop", "cpuinfo", "uname", "sysctl", "battery")
MATCHERS = ("contains", "equals", "regex")
RUNTIME_KEYS = ("n_threads", "n_ctx", "n_batch", "use_mmap", "use_mlock")
ENV_DIR = "HARNESS_DEVICES_DIR"


@dataclass(frozen=True)
class Rule:
    """One detection test, e.g. /proc/device-tree/model contains 'Raspberry Pi 5'.

    `source` says where the value comes from, `key` what to read there (a path, a property, a
    cpuinfo field, `machine`/`system` for uname), `matcher`/`pattern` how to compare it.
    """

    source: str
    key: str
    matcher: str | None = None
    pattern: str | None = None
    expect: bool | None = None  # for `battery: true|false`


@dataclass(frozen=True)
class Estimate:
    """Figures for the `estimate` energy model; None where no trustworthy figure is published."""

    tdp_w: float | None
    idle_w: float | None
    source: str
    lookup: str | None = None  # "codecarbon": look the host CPU up; tdp_w/idle_w are the fallback


@dataclass(frozen=True)
class MemoryBandwidth:
    """The datasheet's peak DRAM bandwidth, shown beside the measured one (harness.devices.
    bandwidth): the gap between them is what the CPU cores can actually stream."""

    datasheet_bytes_per_s: float
    source: str


@dataclass(frozen=True)
class NvpMode:
    id: int
    name: str


@dataclass(frozen=True)
class PowerModes:
    nvpmodel: tuple[NvpMode, ...] = ()
    governors: tuple[str, ...] = ()
    default: str | None = None

    def names(self) -> list[str]:
        return [m.name for m in self.nvpmodel] + list(self.governors)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    file: str
    priority: int
    detect_all: tuple[Rule, ...]
    detect_any: tuple[Rule, ...]
    cores: int | None  # None: the host's (generic profiles)
    threads: int | None  # threads the runtime should use; None: the runtime's default
    memory_bytes: int | None  # None: the host's RAM (generic profiles)
    os_reserved_bytes: int
    accelerator: str | None
    sensors: tuple[str, ...]
    estimate: Estimate
    power_modes: PowerModes
    thermal_zones: tuple[str, ...]  # zone-type patterns; empty: read every zone
    throttling: str
    battery: bool
    runtime_defaults: dict[str, Any] = field(default_factory=dict)
    memory_bandwidth: MemoryBandwidth | None = None  # None: no single datasheet figure
    calibration: str | None = None  # a sensor calibration file (harness.energy.calibration)

    def estimate_params(self) -> dict[str, Any]:
        """The `estimate_params` argument of harness.energy.open_sensor."""
        return {"tdp_w": self.estimate.tdp_w, "idle_w": self.estimate.idle_w,
                "source": self.estimate.source, "lookup": self.estimate.lookup}

    def summary(self) -> dict[str, Any]:
        """Plain dict for JSON output and the run manifest."""
        return {
            "name": self.name, "description": self.description, "file": self.file,
            "cores": self.cores, "threads": self.threads, "memory_bytes": self.memory_bytes,
            "accelerator": self.accelerator, "sensors": list(self.sensors),
            "estimate": {"tdp_w": self.estimate.tdp_w, "idle_w": self.estimate.idle_w,
                         "source": self.estimate.source, "lookup": self.estimate.lookup},
            "power_modes": self.power_modes.names(), "thermal_zones": list(self.thermal_zones),
            "runtime_defaults": dict(self.runtime_defaults),
            "memory_bandwidth": (None if self.memory_bandwidth is None
                                 else asdict(self.memory_bandwidth)),
            "calibration": self.calibration,
        }


# -- locating files ---------------------------------------------------------------------------
def builtin_dir() -> Path:
    """The repository's `devices/` folder, next to the `harness` package."""
    return Path(__file__).resolve().parents[2] / "devices"


def installed_dirs() -> list[Path]:
    """Where a wheel puts the profiles (pyproject `data-files`: share/edgebench/devices)."""
    return [Path(base) / "share" / "edgebench" / "devices" for base in (sys.prefix, site.USER_BASE)
            if base]


def builtin_dirs() -> list[Path]:
    """The repository's devices/ (a checkout or editable install), else the installed copy."""
    if builtin_dir().is_dir():
        return [builtin_dir()]
    return [d for d in installed_dirs() if d.is_dir()][:1]


def profile_dirs() -> list[Path]:
    """Built-in folder first, then HARNESS_DEVICES_DIR entries (later ones override by name)."""
    dirs = builtin_dirs()
    extra = os.environ.get(ENV_DIR, "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


def load_profiles() -> dict[str, Profile]:
    """Every profile by name; a user folder's profile replaces a built-in of the same name."""
    out: dict[str, Profile] = {}
    for d in profile_dirs():
        if not d.is_dir():  # built-in folders are only listed when they exist
            raise HarnessError(f"{ENV_DIR}: {d} is not a folder; point it at a folder of "
                               "device profile .yaml files")
        seen: dict[str, str] = {}
        for f in sorted(d.glob("*.yaml")):
            p = load_profile_file(f)
            if p.name in seen:
                raise ConfigError(str(f), "name", f"duplicate profile name, also in {seen[p.name]}")
            seen[p.name] = str(f)
            out[p.name] = p
    if not out:
        looked = [builtin_dir(), *installed_dirs(), *profile_dirs()]
        raise HarnessError(f"no device profiles found (looked in "
                           f"{', '.join(dict.fromkeys(str(d) for d in looked))}); reinstall "
                           f"edgebench (its wheel ships them in share/edgebench/devices) or set "
                           f"{ENV_DIR} to a folder of profiles")
    return out


def get_profile(name: str) -> Profile:
    profiles = load_profiles()
    if name not in profiles:
        raise HarnessError(f"unknown device profile '{name}'; valid names: "
                           f"{', '.join(sorted(profiles))} (see `python -m harness devices`)")
    return profiles[name]


# -- validation -------------------------------------------------------------------------------
_TOP_KEYS = ("name", "description", "detect", "cpu", "memory_bytes", "os_reserved_bytes",
             "accelerator", "energy", "power_modes", "thermal_zones", "throttling", "battery",
             "runtime_defaults", "memory_bandwidth", "calibration")


def load_profile_file(file: str | Path) -> Profile:
    node = Node(load_yaml(file), str(file))
    return parse_profile(node, expected_name=Path(file).stem)


def parse_profile(node: Node, expected_name: str | None = None) -> Profile:
    node.mapping(_TOP_KEYS, required=("name", "description", "detect", "cpu", "energy"))
    name = node.get("name").str()
    if expected_name is not None and name != expected_name:
        raise node.get("name").fail(f"must equal the file name '{expected_name}' so that "
                                    "`--device NAME` finds the file")
    detect = node.get("detect").mapping(("priority", "all", "any"), required=("priority",))
    cpu = node.get("cpu").mapping(("cores", "threads"), required=("cores", "threads"))
    cores = _opt_int(cpu.get("cores"), 1)
    threads = _opt_int(cpu.get("threads"), 1)
    if cores is not None and threads is not None and threads > cores:
        raise cpu.get("threads").fail(f"must be <= cores ({cores})")
    rt = _runtime_defaults(node.get("runtime_defaults"), threads)
    sensors = _sensors(node.get("energy"))
    return Profile(
        name=name,
        description=node.get("description").str(),
        file=node.file,
        priority=detect.get("priority").int(min=0, max=1000),
        detect_all=tuple(_rule(n) for n in _opt_list(detect.get("all"))),
        detect_any=tuple(_rule(n) for n in _opt_list(detect.get("any"))),
        cores=cores,
        threads=threads,
        memory_bytes=_opt_int(node.get("memory_bytes"), 1) if node.has("memory_bytes") else None,
        os_reserved_bytes=node.opt("os_reserved_bytes", "int", 0, min=0),
        accelerator=node.get("accelerator").str() if node.has("accelerator") else None,
        sensors=sensors,
        estimate=_estimate(node.get("energy")),
        power_modes=_power_modes(node.get("power_modes")),
        thermal_zones=_thermal_zones(node.get("thermal_zones")),
        throttling=node.opt("throttling", "str", "linux", choices=THROTTLING_SOURCES),
        battery=node.opt("battery", "bool", False),
        runtime_defaults=rt,
        memory_bandwidth=_memory_bandwidth(node.get("memory_bandwidth")),
        calibration=_calibration(node.get("calibration"), sensors),
    )


def _opt_int(n: Node, min_value: int) -> int | None:
    return None if n.value is None else n.int(min=min_value)


def _opt_list(n: Node) -> list[Node]:
    return [] if n.value is None else n.list()


def _rule(n: Node) -> Rule:
    if not isinstance(n.value, dict):
        raise n.fail("expected a mapping such as {file: /proc/device-tree/model, contains: 'Pi 5'}")
    sources = [k for k in n.value if k in RULE_SOURCES]
    if len(sources) != 1:
        raise n.fail(f"a rule needs exactly one of: {', '.join(RULE_SOURCES)}")
    src = sources[0]
    if src == "exists":
        n.mapping(("exists",))
        return Rule("exists", n.get("exists").str())
    if src == "battery":
        n.mapping(("battery",))
        return Rule("battery", "", expect=n.get("battery").bool())
    n.mapping((src, *MATCHERS))
    matchers = [k for k in n.value if k in MATCHERS]
    if len(matchers) != 1:
        raise n.fail(f"a '{src}' rule needs exactly one of: {', '.join(MATCHERS)}")
    key = n.get(src).str(choices=("machine", "system") if src == "uname" else None)
    if src == "file" and not key.startswith("/"):
        raise n.get(src).fail("must be an absolute device path such as /proc/device-tree/model")
    pattern = n.get(matchers[0]).str()
    if matchers[0] == "regex":
        _check_regex(n.get("regex"), pattern)
    return Rule(src, key, matchers[0], pattern)


def _check_regex(n: Node, pattern: str) -> None:
    import re
    try:
        re.compile(pattern)
    except re.error as e:
        raise n.fail(f"invalid regular expression: {e}") from None


def _thermal_zones(n: Node) -> tuple[str, ...]:
    """Zone-type patterns (case-insensitive full match: JetPack 5 says CPU-therm, 6 cpu-thermal)."""
    if n.value is None or n.value == []:
        return ()
    pats = n.str_list()
    for i, p in enumerate(pats):
        _check_regex(Node(p, n.file, f"{n.path}[{i}]"), p)
    return tuple(pats)


def _sensors(energy: Node) -> tuple[str, ...]:
    energy.mapping(("sensors", "estimate"), required=("sensors", "estimate"))
    names = energy.get("sensors").str_list(choices=SENSOR_NAMES)
    if len(set(names)) != len(names):
        raise energy.get("sensors").fail("lists a sensor twice")
    return tuple(names)


def _estimate(energy: Node) -> Estimate:
    est = energy.get("estimate").mapping(("tdp_w", "idle_w", "source", "lookup"),
                                         required=("tdp_w", "idle_w", "source"))
    tdp = None if est.get("tdp_w").value is None else est.get("tdp_w").float(min=0.1)
    idle = None if est.get("idle_w").value is None else est.get("idle_w").float(min=0.0)
    if tdp is not None and idle is not None and idle > tdp:
        raise est.get("idle_w").fail(f"must be <= tdp_w ({tdp})")
    return Estimate(tdp, idle, est.get("source").str(),
                    est.opt("lookup", "str", None, choices=ESTIMATE_LOOKUPS))


def _memory_bandwidth(n: Node) -> MemoryBandwidth | None:
    """`memory_bandwidth: {datasheet_bytes_per_s: 12800000000, source: "..."}`, null or absent."""
    if n.value is None:
        return None
    n.mapping(("datasheet_bytes_per_s", "source"), required=("datasheet_bytes_per_s", "source"))
    return MemoryBandwidth(n.get("datasheet_bytes_per_s").float(min=1.0), n.get("source").str())


def _calibration(n: Node, sensors: tuple[str, ...]) -> str | None:
    """`calibration: <file>` (relative to the profile's folder): read and checked here, so a
    missing file or one for a sensor the profile does not list fails when the profile loads."""
    if n.value is None:
        return None
    from ..energy.calibration import load_calibration

    path = Path(n.str())
    if not path.is_absolute():
        path = Path(n.file).resolve().parent / path
    try:
        cal = load_calibration(path)
    except HarnessError as e:
        raise n.fail(str(e)) from None
    if cal.sensor not in sensors:
        raise n.fail(f"{path} calibrates sensor '{cal.sensor}', which this profile's "
                     f"energy.sensors ({', '.join(sensors)}) does not list")
    return str(path)


def _power_modes(n: Node) -> PowerModes:
    if n.value is None:
        return PowerModes()
    n.mapping(("nvpmodel", "governors", "default"))
    modes = []
    for m in _opt_list(n.get("nvpmodel")):
        m.mapping(("id", "name"), required=("id", "name"))
        modes.append(NvpMode(m.get("id").int(min=0), m.get("name").str()))
    governors = tuple(n.get("governors").str_list()) if n.has("governors") else ()
    pm = PowerModes(tuple(modes), governors, None)
    names = pm.names()
    if len({x.lower() for x in names}) != len(names):
        raise n.fail("mode names must be unique (nvpmodel names and governors share one namespace)")
    if n.has("default"):
        default = n.get("default").str(choices=names)
        pm = PowerModes(pm.nvpmodel, pm.governors, default)
    return pm


def _runtime_defaults(n: Node, threads: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"n_threads": threads}
    if n.value is None:
        return out
    n.mapping(RUNTIME_KEYS)
    if n.has("n_threads"):
        out["n_threads"] = n.get("n_threads").int(min=1)
    for key, kind, lo in (("n_ctx", "int", 16), ("n_batch", "int", 1)):
        if n.has(key):
            out[key] = getattr(n.get(key), kind)(min=lo)
    for key in ("use_mmap", "use_mlock"):
        if n.has(key):
            out[key] = n.get(key).bool()
    return out
