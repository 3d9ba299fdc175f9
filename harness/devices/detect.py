"""Which profile describes this machine, and the evidence for it.

A profile matches when every `detect.all` rule holds and, if it has `detect.any` rules, at least
one of those holds. Among matching profiles the highest `detect.priority` wins (specific boards
over families over `linux-generic`); ties go to the one with more matching rules, then by name.
All file reads go through harness.sysfs so fixture trees can stand in for real devices.
"""
from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from typing import Any

from .. import sysfs
from .profile import Profile, Rule, load_profiles
from .tools import ToolError, run_tool


@dataclass(frozen=True)
class Candidate:
    name: str
    priority: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Detection:
    """The best-matching profile (None when no profile matches) and how we know."""

    profile: str | None
    evidence: tuple[str, ...]
    candidates: tuple[Candidate, ...]  # other matching profiles, best first
    facts: dict[str, Any] = field(default_factory=dict)  # what was read, for the manifest

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "evidence": list(self.evidence),
                "candidates": [{"name": c.name, "priority": c.priority,
                                "evidence": list(c.evidence)} for c in self.candidates],
                "facts": dict(self.facts)}


class Facts:
    """Reads facts about the machine once per detection pass (getprop and cpuinfo are not free)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str | None] = {}

    def value(self, source: str, key: str) -> str | None:
        ck = (source, key)
        if ck not in self._cache:
            self._cache[ck] = _READERS[source](key)
        return self._cache[ck]

    def as_dict(self) -> dict[str, dict[str, str]]:
        """What was read, as {source: {key: value}} (unreadable values left out)."""
        out: dict[str, dict[str, str]] = {}
        for (source, key), v in sorted(self._cache.items()):
            if v is not None:
                out.setdefault(source, {})[key or source] = v
        return out


def _read_file(path: str) -> str | None:
    try:
        raw = sysfs.read_text(path)
    except OSError:
        return None
    return raw.replace("\x00", " ").strip()  # device-tree strings end in NUL


def _read_exists(path: str) -> str | None:
    return "yes" if sysfs.exists(path) else None


def _read_getprop(prop: str) -> str | None:
    try:
        out = run_tool("getprop", [prop]).stdout.strip()
    except ToolError:
        return None
    return out or None


def _read_sysctl(name: str) -> str | None:
    try:
        out = run_tool("sysctl", ["-n", name]).stdout.strip()
    except ToolError:
        return None
    return out or None


def _read_cpuinfo(field_name: str) -> str | None:
    text = _read_file("/proc/cpuinfo")
    if text is None:
        return None
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == field_name.lower():
            return v.strip()
    return None


def _read_uname(part: str) -> str | None:
    """Kernel-reported machine/system; /proc first so fixture trees can fake another host."""
    proc = {"machine": "/proc/sys/kernel/arch", "system": "/proc/sys/kernel/ostype"}[part]
    v = _read_file(proc)
    if v:
        return v
    u = platform.uname()
    return (u.machine if part == "machine" else u.system) or None


def battery_supplies() -> list[str]:
    """Power-supply folders whose `type` is Battery (laptops: BAT0, Android: battery)."""
    out = []
    for d in sysfs.glob("/sys/class/power_supply/*"):
        t = _read_file(f"{d}/type")
        if t is not None and t.lower() == "battery":
            out.append(d)
    return out


def _read_battery(_: str) -> str | None:
    found = battery_supplies()
    return ", ".join(found) if found else None


_READERS = {"file": _read_file, "exists": _read_exists, "getprop": _read_getprop,
            "sysctl": _read_sysctl, "cpuinfo": _read_cpuinfo, "uname": _read_uname,
            "battery": _read_battery}


def check_rule(rule: Rule, facts: Facts) -> tuple[bool, str]:
    """(holds, evidence sentence)."""
    value = facts.value(rule.source, rule.key)
    if rule.source == "exists":
        return value is not None, f"{rule.key} {'exists' if value else 'is missing'}"
    if rule.source == "battery":
        present = value is not None
        said = f"battery present ({value})" if present else "no battery under /sys/class/power_supply"
        return present == rule.expect, said
    where = _describe_source(rule)
    if value is None:
        return False, f"{where} unavailable"
    ok = _match(rule.matcher or "", rule.pattern or "", value)
    verb = "matches" if ok else "does not match"
    lines = value.splitlines() or [""]
    shown = lines[0] + (" ..." if len(lines) > 1 else "")  # the full text is in the facts
    return ok, f"{where} = {shown!r} {verb} {rule.matcher} {rule.pattern!r}"


def _describe_source(rule: Rule) -> str:
    return {"file": rule.key, "getprop": f"getprop {rule.key}", "sysctl": f"sysctl {rule.key}",
            "cpuinfo": f"/proc/cpuinfo {rule.key}", "uname": f"uname {rule.key}"}[rule.source]


def _match(matcher: str, pattern: str, value: str) -> bool:
    if matcher == "contains":
        return pattern.lower() in value.lower()
    if matcher == "equals":
        return pattern.lower() == value.strip().lower()
    return re.search(pattern, value, re.IGNORECASE) is not None


def evaluate(profile: Profile, facts: Facts) -> tuple[bool, list[str]]:
    """Whether the profile matches, and the evidence. Stops at the first failing `all` rule so a
    Linux box does not run macOS or Android tools for profiles that already failed."""
    evidence = []
    for rule in profile.detect_all:
        ok, said = check_rule(rule, facts)
        evidence.append(said)
        if not ok:
            return False, evidence
    any_hits = [check_rule(r, facts) for r in profile.detect_any]
    if any_hits and not any(ok for ok, _ in any_hits):
        return False, evidence + [said for _, said in any_hits]
    return True, evidence + [said for ok, said in any_hits if ok]


def detect(profiles: dict[str, Profile] | None = None) -> Detection:
    profiles = load_profiles() if profiles is None else profiles
    facts = Facts()
    hits = []
    for p in profiles.values():
        ok, evidence = evaluate(p, facts)
        if ok:
            hits.append(Candidate(p.name, p.priority, tuple(evidence)))
    hits.sort(key=lambda c: (-c.priority, -len(c.evidence), c.name))
    if not hits:
        return Detection(None, ("no profile's detection rules match this machine; pass "
                                "--device NAME (and --emulate) to choose one",),
                         (), facts.as_dict())
    best = hits[0]
    return Detection(best.name, best.evidence, tuple(hits[1:]), facts.as_dict())


def matches(profile: Profile) -> bool:
    """Whether this machine satisfies the profile's detection rules (refuse to run otherwise)."""
    return evaluate(profile, Facts())[0]


def mismatch_reasons(profile: Profile) -> list[str]:
    """The failing rules, to tell the user why `--device` was refused."""
    facts = Facts()
    out = [said for r in profile.detect_all for ok, said in [check_rule(r, facts)] if not ok]
    anys = [check_rule(r, facts) for r in profile.detect_any]
    if anys and not any(ok for ok, _ in anys):
        out.append("none of: " + "; ".join(said for _, said in anys))
    return out
