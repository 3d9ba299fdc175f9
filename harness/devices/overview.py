"""What `python -m harness devices` shows: the profiles, one profile, or which one this machine is
and what it can measure.

`detect_report` answers the three questions a user has before a first run on a new board: which
profile the harness will use (and the evidence), which power sensors can be read right now (and
for each that cannot: why, and the fix), and what it would fall back to.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..energy import probe_sensor
from ..energy.sensors import jetson_rails
from ..energy.sensors.estimate import figures
from ..errors import HarnessError
from .detect import detect
from .profile import Profile, get_profile, load_profiles
from .state import read_state


@dataclass(frozen=True)
class DevicesOptions:
    """What the `devices` command was asked (see harness.cli.devices)."""

    detect: bool = False
    show: str | None = None
    state: bool = False
    json: bool = False


def show_devices(options: DevicesOptions) -> int:
    """Print the chosen view; 1 when --detect finds no matching profile, else 0."""
    if options.detect:
        report = detect_report(with_state=options.state)
        print(json.dumps(report, indent=2) if options.json else render_detect(report))
        return 0 if report["profile"] else 1
    if options.show:
        profile = get_profile(options.show)
        out = profile.summary()
        if options.state:
            out["state"] = read_state(profile)
        print(json.dumps(out, indent=2) if options.json else _render_show(out))
        return 0
    profiles = load_profiles()
    if options.json:
        print(json.dumps([p.summary() for p in profiles.values()], indent=2))
    else:
        print(render_table(profiles))
    return 0


# -- listing --------------------------------------------------------------------------------
def render_table(profiles: dict[str, Profile]) -> str:
    rows = [("NAME", "CORES", "THREADS", "MEMORY", "SENSORS", "POWER MODES")]
    for p in sorted(profiles.values(), key=lambda p: p.name):
        rows.append((p.name, _host(p.cores), _host(p.threads),
                     "host" if p.memory_bytes is None else f"{p.memory_bytes / 2**30:.0f} GiB",
                     ",".join(p.sensors), ",".join(p.power_modes.names()) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("")
    lines += [f"{p.name}: {p.description}" for p in sorted(profiles.values(), key=lambda p: p.name)]
    return "\n".join(lines)


def _host(v: int | None) -> str:
    return "host" if v is None else str(v)


def _render_show(out: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in out.items())


# -- detection --------------------------------------------------------------------------------
def detect_report(with_state: bool = False) -> dict[str, Any]:
    profiles = load_profiles()
    det = detect(profiles)
    report: dict[str, Any] = {"profile": det.profile, "detection": det.as_dict(),
                              "rails": None, "sensors": [], "fallback": None,
                              "probe_error": None}
    if det.profile is None:
        return report
    profile = profiles[det.profile]
    report["rails"] = rail_plan(profile.name)
    report["sensors"], report["probe_error"] = probe_sensors(profile)
    report["fallback"] = _fallback(report["sensors"], profile)
    if with_state:
        report["state"] = read_state(profile)
    return report


def rail_plan(profile_name: str) -> dict[str, Any] | None:
    """The board's documented rail rule (Jetsons): which rails are summed, which are left out and
    why. Read from the energy room's table; boards without one leave the field empty."""
    plan = jetson_rails.plan_for_profile(profile_name)
    if plan is None:
        return None
    return {"board": plan.board, "summed": list(plan.summed), "coverage": plan.coverage,
            "left_out": [{"rail": r, "reason": why} for r, why in plan.left_out],
            "source": plan.source}


def probe_sensors(profile: Profile) -> tuple[list[dict[str, Any]], str | None]:
    """Each sensor's probe. Measuring sensors ask the energy room's prober; `estimate` is judged
    from the profile's own figures, which the prober cannot see. The second value is kept for the
    report's shape (`probe_error`); probing itself no longer has an optional part."""
    names = [n for n in profile.sensors if n != "estimate"]
    out, error = [_probe_one(n) for n in names], None
    if "estimate" in profile.sensors:
        out.append(_estimate_probe(profile))
    return out, error


def _probe_one(name: str) -> dict[str, Any]:
    try:
        pr = probe_sensor(name)
    except HarnessError as e:
        return {"name": name, "ok": False, "detail": str(e), "fix": None}
    return {"name": name, "ok": bool(pr.ok), "detail": pr.detail, "fix": pr.fix}


def _estimate_probe(profile: Profile) -> dict[str, Any]:
    est = profile.estimate
    if est.lookup:
        return _lookup_probe(profile)
    if est.tdp_w is None or est.idle_w is None:
        return {"name": "estimate", "ok": False,
                "detail": f"profile has no complete estimate figures ({est.source})",
                "fix": f"put tdp_w and idle_w with their source in {profile.file}"}
    return {"name": "estimate", "ok": True,
            "detail": (f"estimated, never measured: tdp_w {est.tdp_w:g} W, idle_w {est.idle_w:g} W "
                       f"({est.source})"), "fix": None}


def _lookup_probe(profile: Profile) -> dict[str, Any]:
    """`lookup: codecarbon`: the figures this host gets, with the table row and the rule used."""
    try:
        f = figures(profile.estimate_params())
    except HarnessError as e:
        return {"name": "estimate", "ok": False, "detail": str(e), "fix": None}
    return {"name": "estimate", "ok": True,
            "detail": "; ".join([f"estimated, never measured: tdp_w {f.tdp_w:g} W, idle_w "
                                 f"{f.idle_w:g} W ({f.source})", *f.notes]), "fix": None}


def _fallback(sensors: list[dict[str, Any]], profile: Profile) -> str | None:
    """What `energy.sensor: auto` would use: the first readable measuring sensor, else estimate."""
    for s in sensors:
        if s["ok"] and s["name"] != "estimate":
            return s["name"]
    est = [s for s in sensors if s["name"] == "estimate" and s["ok"]]
    return "estimate (a labelled estimate, not a measurement)" if est else None


def _render_rails(rails: dict[str, Any] | None) -> list[str]:
    if not rails:
        return []
    lines = [f"Power rails ({rails['board']}): sums {' + '.join(rails['summed'])} "
             f"(coverage {rails['coverage']})"]
    lines += [f"  leaves out {r['rail']}: {r['reason']}" for r in rails["left_out"]]
    return lines + [f"  rule: {rails['source']}"]


def render_detect(report: dict[str, Any]) -> str:
    det = report["detection"]
    if report["profile"] is None:
        return "No profile matches this machine.\n  " + "\n  ".join(det["evidence"])
    lines = [f"This machine: {report['profile']}", "  because:"]
    lines += [f"    - {e}" for e in det["evidence"]]
    if det["candidates"]:
        lines.append("  also matching (lower priority): "
                     + ", ".join(c["name"] for c in det["candidates"]))
    lines += _render_rails(report.get("rails"))
    lines.append("Power sensors (profile order of preference):")
    if report["probe_error"]:
        lines.append(f"  {report['probe_error']}")
    for s in report["sensors"]:
        mark = {True: "ok  ", False: "no  ", None: "?   "}[s["ok"]]
        lines.append(f"  {mark}{s['name']}: {s['detail']}")
        if s["fix"] and not s["ok"]:
            lines.append(f"        fix: {s['fix']}")
    fb = report["fallback"]
    lines.append(f"Energy would come from: {fb}" if fb else
                 "Energy would come from: nothing readable; fix a sensor above or add estimate "
                 "figures (tdp_w, idle_w, source) to the profile")
    if "state" in report:
        lines.append("Device state now:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in report["state"].items()]
    return "\n".join(lines)
