"""This host's CPU power figure from codecarbon's own data, scaled to the CPUs the host has.

Why: a generic Linux profile cannot know the host's CPU, and a fixed 85 W package is wrong by an
order of magnitude on a 2-vCPU virtual machine. codecarbon ships a table of CPU models and TDPs
(`data/hardware/cpu_power.csv`) and a rule for CPUs it does not know (4 W per thread,
`DEFAULT_POWER_PER_CORE` in `core/cpu.py`); both are read here as files, so nothing of codecarbon
is imported (its tracker pulls pandas and can reach the network).

The rules (docs/energy.md, "The estimate's figures"):
- CPU model: the first `model name` of /proc/cpuinfo (what codecarbon's py-cpuinfo reads).
- Matching: codecarbon's `TDP._get_matching_cpu` (non-greedy), re-implemented exactly: a
  case-insensitive exact name, then the same after removing "(R)", " CPU @ ...", " CPU" and
  "@ x.xxGHz", then rapidfuzz's token_set_ratio at its cutoff of 100 (one name's words contain
  the other's), accepted only when exactly one row qualifies.
- Matched row, bare metal: package TDP x host CPUs / threads per package (cpuinfo `siblings`):
  the share of the packages this host has, which is the package TDP x packages on a whole machine.
- Matched row, virtual machine (cpuinfo flag `hypervisor`): the kernel shows the VM's topology,
  not the package's, so the package's thread count is unknown: codecarbon's per-thread rule,
  capped at the matched package TDP x the packages shown.
- No single row (or no model name): codecarbon's per-thread rule x host CPUs.
- Idle: 10% of the scaled TDP, codecarbon's minimum CPU power (`max(tdp x load, 0.1 x tdp)`).
"""
from __future__ import annotations

import ast
import csv
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import sysfs

CPUINFO = "/proc/cpuinfo"
TABLE = Path("data") / "hardware" / "cpu_power.csv"
RULES = Path("core") / "cpu.py"
PER_THREAD_NAME = "DEFAULT_POWER_PER_CORE"
# codecarbon external/hardware.py, CPU._calculate_power_from_cpu_load: "Minimum power consumption
# is 10% of TDP" (max(tdp * load, tdp * 0.1)); an expression, so it cannot be read as a constant.
IDLE_FRACTION = 0.1
_SHOWN_CANDIDATES = 3


class CpuPowerUnavailable(Exception):
    """codecarbon's data (or /proc/cpuinfo) cannot be read: the caller falls back, and says so."""


@dataclass(frozen=True)
class HostCpu:
    """What /proc/cpuinfo says about this host's CPUs."""

    model: str | None  # first `model name`; None where the kernel gives none (most arm64)
    cpus: int  # logical CPUs the kernel lists: the CPUs psutil's utilisation is over
    packages: int  # distinct `physical id` values (1 when the field is absent)
    package_threads: int | None  # `siblings` of the first CPU; None when absent
    virtualised: bool  # `hypervisor` flag: the topology shown is the VM's, not the package's


@dataclass(frozen=True)
class CodecarbonData:
    version: str
    rows: tuple[tuple[str, str], ...]  # (Name, TDP text) in table order, as codecarbon reads it
    per_thread_w: float  # codecarbon's figure for each thread of a CPU it does not know


@dataclass(frozen=True)
class CpuPower:
    """The looked-up figures, their source in one line, and the details for the record."""

    tdp_w: float  # full-load power of the CPUs this host has
    idle_w: float
    source: str
    notes: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)


# -- host -------------------------------------------------------------------------------------
def read_host_cpu() -> HostCpu:
    try:
        text = sysfs.read_text(CPUINFO)
    except OSError as e:
        raise CpuPowerUnavailable(f"cannot read {CPUINFO} ({e.strerror or e})") from None
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> HostCpu:
    cpus: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "processor" and value.isdigit():  # armv7's "Processor" (capital) is a name
            cpus.append({})
        elif cpus:
            cpus[-1].setdefault(key, value)
    if not cpus:
        raise CpuPowerUnavailable(f"{CPUINFO} lists no processor")
    first = cpus[0]
    siblings = first.get("siblings", "")
    return HostCpu(model=first.get("model name") or None, cpus=len(cpus),
                   packages=len({c["physical id"] for c in cpus if "physical id" in c}) or 1,
                   package_threads=int(siblings) if siblings.isdigit() and int(siblings) else None,
                   virtualised="hypervisor" in first.get("flags", "").split())


# -- codecarbon's data ------------------------------------------------------------------------
def codecarbon_dir() -> Path:
    """The installed codecarbon package's folder, found without running any of its code."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise CpuPowerUnavailable("codecarbon is not installed (pip install edgebench[carbon])")
    return Path(list(spec.submodule_search_locations)[0])


def load_codecarbon(package_dir: Path | None = None) -> CodecarbonData:
    """Read codecarbon's CPU table and per-thread rule from its installed files (no import)."""
    package_dir = package_dir or codecarbon_dir()
    version = _version()
    try:
        with open(package_dir / TABLE, newline="") as f:
            rows = tuple((r["Name"], r["TDP"]) for r in csv.DictReader(f) if r.get("Name"))
        rules = (package_dir / RULES).read_text()
    except (OSError, KeyError) as e:
        raise CpuPowerUnavailable(f"codecarbon {version}'s CPU data is unreadable: {e}") from None
    per_thread = _module_constant(rules, PER_THREAD_NAME)
    if not rows or per_thread is None or per_thread <= 0:
        raise CpuPowerUnavailable(f"codecarbon {version} has no CPU table rows or no "
                                  f"{PER_THREAD_NAME} in {RULES} (older releases had no "
                                  "per-thread rule: upgrade codecarbon)")
    return CodecarbonData(version, rows, per_thread)


def _version() -> str:
    try:
        return importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _module_constant(source: str, name: str) -> float | None:
    """A module-level `NAME = <number>` of a Python source, read without running it."""
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, (int, float))):
            return float(node.value.value)
    return None


# -- codecarbon's matching --------------------------------------------------------------------
def match_cpu(model_raw: str, names: list[str]) -> tuple[str | None, list[str]]:
    """(the row codecarbon would match or None, the rows that tied when none was chosen)."""
    exact = _exact(model_raw, names)
    if exact is not None:
        return exact, []
    cleaned = _clean(model_raw)
    exact = _exact(cleaned, names)
    if exact is not None:
        return exact, []
    words = set(_default_process(cleaned).split())
    hits = [n for n in names if _token_set_full(words, set(_default_process(n).split()))]
    return (hits[0], []) if len(hits) == 1 else (None, hits)


def _exact(model: str, names: list[str]) -> str | None:
    """fuzz.ratio on lower-cased strings scores 100 only for identical strings."""
    low = model.lower()
    return next((n for n in names if n.lower() == low), None)


def _clean(model: str) -> str:
    """codecarbon's clean-up before its second try (TDP._get_matching_cpu)."""
    model = model.replace("(R)", "")
    start = model.find(" CPU @ ")
    if start > 0:
        model = model[:start]
    model = model.replace(" CPU", "")
    return re.sub(r" @\s*\d+\.\d+GHz", "", model)


def _default_process(s: str) -> str:
    """rapidfuzz.utils.default_process: non-alphanumerics to spaces, lower case, trimmed."""
    return "".join(c if c.isalnum() else " " for c in s).lower().strip()


def _token_set_full(a: set[str], b: set[str]) -> bool:
    """token_set_ratio == 100: the word sets share a word and one contains the other."""
    return bool(a & b) and (a <= b or b <= a)


# -- the figures ------------------------------------------------------------------------------
def lookup() -> CpuPower:
    """This host's figures; raises CpuPowerUnavailable when codecarbon or cpuinfo is missing."""
    return cpu_power(read_host_cpu(), load_codecarbon())


def cpu_power(host: HostCpu, data: CodecarbonData) -> CpuPower:
    names = [n for n, _ in data.rows]
    row, ties = match_cpu(host.model, names) if host.model else (None, [])
    package_tdp_w = _tdp(data, row)
    per_thread_w = data.per_thread_w * host.cpus
    if package_tdp_w is None:
        tdp_w, rule, tdp_note = per_thread_w, "per-thread", _unmatched_note(host, data, row, ties)
    elif host.virtualised:
        tdp_w, rule, tdp_note = _capped_per_thread(host, data, row, package_tdp_w)
    else:
        tdp_w, rule, tdp_note = _share_of_package(host, data, row, package_tdp_w)
    idle_w = IDLE_FRACTION * tdp_w
    notes = (_host_note(host), tdp_note,
             f"idle: idle_w = {IDLE_FRACTION:.0%} of tdp_w = {idle_w:g} W (codecarbon's minimum "
             f"CPU power, max(tdp x load, {IDLE_FRACTION:g} x tdp))")
    figures = {"lookup": "codecarbon", "codecarbon_version": data.version,
               "cpu_model": host.model, "matched_row": row, "package_tdp_w": package_tdp_w,
               "package_threads": host.package_threads, "packages": host.packages,
               "host_cpus": host.cpus, "virtualised": host.virtualised, "rule": rule,
               "per_thread_w": data.per_thread_w, "tdp_w": tdp_w, "idle_w": idle_w}
    source = (f"codecarbon {data.version} CPU power data ({_rule_words(rule, row)}), scaled to "
              f"this host's {host.cpus} CPUs")
    return CpuPower(tdp_w, idle_w, source, notes, figures)


def _tdp(data: CodecarbonData, row: str | None) -> float | None:
    """The row's TDP in W; None without a row or where the table's text is not a number."""
    if row is None:
        return None
    text = dict(data.rows)[row]
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _share_of_package(host: HostCpu, data: CodecarbonData, row: str,
                      package_tdp_w: float) -> tuple[float, str, str]:
    head = (f"tdp: codecarbon {data.version} cpu_power.csv row '{row}' "
            f"({package_tdp_w:g} W per package)")
    if host.package_threads is None:
        tdp_w = package_tdp_w * host.packages
        return tdp_w, "package", (f"{head} x {host.packages} package(s) (the kernel shows no "
                                  f"threads per package: whole packages assumed) = {tdp_w:g} W")
    tdp_w = package_tdp_w * host.cpus / host.package_threads
    return tdp_w, "package-share", (f"{head} x {host.cpus} host CPUs / {host.package_threads} "
                                    f"threads per package = {tdp_w:g} W")


def _capped_per_thread(host: HostCpu, data: CodecarbonData, row: str,
                       package_tdp_w: float) -> tuple[float, str, str]:
    """A known CPU seen from inside a VM: its package's thread count is not visible."""
    per_thread_w = data.per_thread_w * host.cpus
    tdp_w = min(per_thread_w, package_tdp_w * host.packages)
    return tdp_w, "per-thread-capped", (
        f"tdp: codecarbon {data.version} cpu_power.csv row '{row}' is {package_tdp_w:g} W per "
        f"package, but in a virtual machine the package's thread count is hidden (the kernel "
        f"shows the VM's topology), so codecarbon's per-thread rule: {data.per_thread_w:g} W x "
        f"{host.cpus} host CPUs = {per_thread_w:g} W, capped at {package_tdp_w:g} W x "
        f"{host.packages} package(s): tdp_w {tdp_w:g} W")


def _unmatched_note(host: HostCpu, data: CodecarbonData, row: str | None,
                    ties: list[str]) -> str:
    rule = (f"codecarbon's rule for a CPU it does not know: {data.per_thread_w:g} W per thread x "
            f"{host.cpus} host CPUs = {data.per_thread_w * host.cpus:g} W")
    if row is not None:
        why = f"row '{row}' has no numeric TDP ('{dict(data.rows)[row]}')"
    elif host.model is None:
        why = f"{CPUINFO} gives no model name"
    elif ties:
        shown = ", ".join(f"'{t}'" for t in ties[:_SHOWN_CANDIDATES])
        more = ", ..." if len(ties) > _SHOWN_CANDIDATES else ""
        why = (f"'{host.model}' matches {len(ties)} rows equally ({shown}{more}), and codecarbon "
               f"picks none")
    else:
        why = f"'{host.model}' matches no row"
    return f"tdp: codecarbon {data.version} cpu_power.csv: {why}; {rule}"


def _host_note(host: HostCpu) -> str:
    model = f"'{host.model}'" if host.model else "no model name"
    threads = (f"{host.package_threads} threads per package" if host.package_threads
               else "no threads-per-package figure")
    where = ("virtual machine (cpuinfo flag hypervisor)" if host.virtualised
             else "no hypervisor flag")
    return (f"cpu: {model} from {CPUINFO}; {host.cpus} host CPUs in {host.packages} package(s), "
            f"{threads} as the kernel shows them; {where}")


def _rule_words(rule: str, row: str | None) -> str:
    return {"per-thread": "its rule for unknown CPUs",
            "per-thread-capped": f"row '{row}', per-thread rule in a VM",
            "package": f"row '{row}'", "package-share": f"row '{row}'"}[rule]
