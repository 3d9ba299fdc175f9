"""`python -m harness devices`: list profiles, or say which one this machine is and what it can measure.

`--detect` answers the three questions a user has before a first run on a new board: which profile
the harness will use (and the evidence), which power sensors can be read right now (and for each
that cannot: why, and the fix), and what it would fall back to.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from .. import devices
from ..errors import HarnessError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detect", action="store_true",
                        help="say which profile matches this machine, and which sensors work")
    parser.add_argument("--show", metavar="NAME", help="print one profile in full")
    parser.add_argument("--state", action="store_true",
                        help="with --detect (or --show NAME): also read the device state now")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if args.detect:
        report = detect_report(with_state=args.state)
        print(json.dumps(report, indent=2) if args.json else render_detect(report))
        return 0 if report["profile"] else 1
    if args.show:
        profile = devices.get_profile(args.show)
        out = profile.summary()
        if args.state:
            out["state"] = devices.read_state(profile)
        print(json.dumps(out, indent=2) if args.json else _render_show(out))
        return 0
    profiles = devices.load_profiles()
    if args.json:
        print(json.dumps([p.summary() for p in profiles.values()], indent=2))
    else:
        print(render_table(profiles))
    return 0


# -- listing --------------------------------------------------------------------------------
def render_table(profiles: dict[str, devices.Profile]) -> str:
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
    profiles = devices.load_profiles()
    det = devices.detect(profiles)
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
        report["state"] = devices.read_state(profile)
    return report


def rail_plan(profile_name: str) -> dict[str, Any] | None:
    """The board's documented rail rule (Jetsons): which rails are summed, which are left out and
    why. Read from the energy room's table; its absence leaves the field empty."""
    try:
        from ..energy.sensors import jetson_rails
    except ImportError:
        return None
    plan = jetson_rails.plan_for_profile(profile_name)
    if plan is None:
        return None
    return {"board": plan.board, "summed": list(plan.summed), "coverage": plan.coverage,
            "left_out": [{"rail": r, "reason": why} for r, why in plan.left_out],
            "source": plan.source}


def probe_sensors(profile: devices.Profile) -> tuple[list[dict[str, Any]], str | None]:
    """Each sensor's probe. Measuring sensors ask the energy room's prober (imported only here;
    its absence is reported instead of crashing `devices`); `estimate` is judged from the
    profile's own figures, which the prober cannot see."""
    names = [n for n in profile.sensors if n != "estimate"]
    try:
        from ..energy import probe_sensor
    except ImportError as e:
        out = [{"name": n, "ok": None, "detail": "not probed", "fix": None} for n in names]
        error: str | None = f"sensor probing unavailable (harness.energy.probe_sensor: {e})"
    else:
        out, error = [_probe_one(probe_sensor, n) for n in names], None
    if "estimate" in profile.sensors:
        out.append(_estimate_probe(profile))
    return out, error


def _probe_one(probe_sensor: Any, name: str) -> dict[str, Any]:
    try:
        pr = probe_sensor(name)
    except HarnessError as e:
        return {"name": name, "ok": False, "detail": str(e), "fix": None}
    return {"name": name, "ok": bool(pr.ok), "detail": pr.detail, "fix": pr.fix}


def _estimate_probe(profile: devices.Profile) -> dict[str, Any]:
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


def _lookup_probe(profile: devices.Profile) -> dict[str, Any]:
    """`lookup: codecarbon`: the figures this host gets, with the table row and the rule used."""
    from ..energy.sensors.estimate import figures
    try:
        f = figures(profile.estimate_params())
    except HarnessError as e:
        return {"name": "estimate", "ok": False, "detail": str(e), "fix": None}
    return {"name": "estimate", "ok": True,
            "detail": "; ".join([f"estimated, never measured: tdp_w {f.tdp_w:g} W, idle_w "
                                 f"{f.idle_w:g} W ({f.source})", *f.notes]), "fix": None}


def _fallback(sensors: list[dict[str, Any]], profile: devices.Profile) -> str | None:
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
