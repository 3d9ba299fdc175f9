"""Device state recorded before and after every cell: clocks, temperatures, throttling, battery.

Each reader fails soft: a missing file, a denied permission or an absent tool becomes one line in
`errors` instead of an exception, because losing a cell to a thermal-zone permission on Android
would be worse than recording that the temperature was unknown.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Callable

from .. import sysfs
from ..errors import HarnessError
from .detect import battery_supplies
from .profile import Profile
from .tools import ToolError, run_tool

CPUFREQ = "/sys/devices/system/cpu/cpufreq"
THERMAL = "/sys/class/thermal"

# vcgencmd get_throttled bits (Raspberry Pi firmware documentation).
THROTTLE_BITS_NOW = {0: "under_voltage", 1: "arm_freq_capped", 2: "throttled", 3: "soft_temp_limit"}
THROTTLE_BITS_SINCE_BOOT = {16: "under_voltage", 17: "arm_freq_capped", 18: "throttled",
                            19: "soft_temp_limit"}
_FAN_WORDS = ("fan", "pwm")


class ReadError(Exception):
    """A state reader could not read something; the message names what and why."""


def _text(path: str) -> str:
    try:
        return sysfs.read_text(path).strip()
    except FileNotFoundError:
        raise ReadError(f"{path} missing") from None
    except PermissionError:
        raise ReadError(f"{path} not readable (permission denied)") from None
    except OSError as e:
        raise ReadError(f"{path}: {e.strerror or e}") from None


def _int(path: str) -> int:
    raw = _text(path)
    try:
        return int(raw)
    except ValueError:
        raise ReadError(f"{path}: expected an integer, got {raw!r}") from None


# -- readers --------------------------------------------------------------------------------
def read_cpufreq() -> list[dict[str, Any]]:
    """One entry per cpufreq policy (a cluster of cores sharing a clock)."""
    policies = sysfs.glob(f"{CPUFREQ}/policy*")
    if not policies:
        raise ReadError(f"{CPUFREQ} has no policies (no cpufreq driver, e.g. in a VM)")
    out = []
    for d in policies:
        entry: dict[str, Any] = {"policy": int(d.rsplit("policy", 1)[1])}
        cpus = _text(f"{d}/related_cpus") if sysfs.exists(f"{d}/related_cpus") else ""
        entry["cpus"] = [int(c) for c in cpus.split()]
        for name, fname in (("freq_hz", "scaling_cur_freq"), ("min_freq_hz", "scaling_min_freq"),
                            ("max_freq_hz", "scaling_max_freq"),
                            ("hw_max_freq_hz", "cpuinfo_max_freq")):
            if sysfs.exists(f"{d}/{fname}"):
                entry[name] = _int(f"{d}/{fname}") * 1000  # cpufreq reports kHz
        if sysfs.exists(f"{d}/scaling_governor"):
            entry["governor"] = _text(f"{d}/scaling_governor")
        out.append(entry)
    return out


def thermal_zones() -> dict[str, tuple[str, str]]:
    """Record key -> (device folder, zone type); a repeated type gets its zone index appended."""
    zones: dict[str, tuple[str, str]] = {}
    for d in sysfs.glob(f"{THERMAL}/thermal_zone*"):
        try:
            t = _text(f"{d}/type")
        except ReadError:
            continue
        key = t if t not in zones else f"{t}_{d.rsplit('thermal_zone', 1)[1]}"
        zones[key] = (d, t)
    return zones


def read_temperatures(wanted: tuple[str, ...], errors: list[str]) -> dict[str, float]:
    """Zone -> degrees C for zones whose type fully matches one of `wanted` (regex, any case);
    every zone when `wanted` is empty. A pattern that matches no zone adds an `errors` line."""
    zones = thermal_zones()
    if not zones:
        raise ReadError(f"no thermal zones under {THERMAL}")
    out: dict[str, float] = {}
    for key in _select_zones(zones, wanted, errors):
        try:
            out[key] = _int(f"{zones[key][0]}/temp") / 1000.0  # millidegrees C
        except ReadError as e:
            errors.append(f"thermal: {e}")
    return out


def _select_zones(zones: dict[str, tuple[str, str]], wanted: tuple[str, ...],
                  errors: list[str]) -> list[str]:
    if not wanted:
        return list(zones)
    chosen: list[str] = []
    for pat in wanted:
        hits = [k for k, (_, t) in zones.items() if re.fullmatch(pat, t, re.IGNORECASE)]
        if not hits:
            errors.append(f"thermal: no zone type matches '{pat}'; zones here: "
                          f"{', '.join(t for _, t in zones.values())}")
        chosen += [k for k in hits if k not in chosen]
    return chosen


def decode_throttled(value: int) -> dict[str, Any]:
    return {
        "raw": hex(value),
        "now": [n for b, n in THROTTLE_BITS_NOW.items() if value >> b & 1],
        "since_boot": [n for b, n in THROTTLE_BITS_SINCE_BOOT.items() if value >> b & 1],
    }


def read_vcgencmd_throttled() -> dict[str, Any]:
    try:
        out = run_tool("vcgencmd", ["get_throttled"]).stdout.strip()
    except ToolError as e:
        raise ReadError(str(e)) from None
    _, _, raw = out.partition("=")
    try:
        value = int(raw.strip().rstrip("\x00"), 16)
    except ValueError:
        raise ReadError(f"vcgencmd get_throttled printed {out!r}, expected throttled=0x...") from None
    return {"source": "vcgencmd get_throttled", **decode_throttled(value)}


def read_cooling_devices() -> list[dict[str, Any]]:
    """Active non-fan cooling devices (cpufreq/devfreq clamps): the kernel throttling us."""
    out = []
    for d in sysfs.glob(f"{THERMAL}/cooling_device*"):
        try:
            kind = _text(f"{d}/type")
            cur = _int(f"{d}/cur_state")
        except ReadError:
            continue
        if any(w in kind.lower() for w in _FAN_WORDS):
            continue
        out.append({"type": kind, "cur_state": cur})
    return out


def parse_nvpmodel_q(text: str) -> dict[str, Any]:
    """`nvpmodel -q` prints 'NV Power Mode: MAXN' and the mode id on the next line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.lower().startswith("nv power mode"):
            name = ln.split(":", 1)[1].strip()
            mode_id = int(lines[i + 1]) if i + 1 < len(lines) and lines[i + 1].isdigit() else None
            return {"name": name, "id": mode_id}
    raise ReadError(f"nvpmodel -q printed no 'NV Power Mode:' line: {text.strip()[:120]!r}")


def read_nvpmodel() -> dict[str, Any]:
    try:
        return parse_nvpmodel_q(run_tool("nvpmodel", ["-q"]).stdout)
    except ToolError as e:
        raise ReadError(str(e)) from None


def read_devfreq() -> dict[str, int]:
    """GPU/memory-controller clocks (Jetson GPU, EMC, Mali...) in Hz; empty when none exist."""
    out = {}
    for d in sysfs.glob("/sys/class/devfreq/*"):
        try:
            out[d.rsplit("/", 1)[1]] = _int(f"{d}/cur_freq")
        except ReadError:
            continue
    return out


def read_battery() -> dict[str, Any]:
    supplies = battery_supplies()
    if supplies:
        d = supplies[0]
        status = _text(f"{d}/status") if sysfs.exists(f"{d}/status") else None
        level = _int(f"{d}/capacity") if sysfs.exists(f"{d}/capacity") else None
        return {"source": d, "level_pct": level, "status": status,
                "charging": status.lower() == "charging" if status else None,
                "on_external_power": _external_power_online()}
    return _termux_battery()


def read_battery_gauge() -> dict[str, Any]:
    """The battery level as finely as the gauge gives it, for a soak's battery figures.

    `capacity` is whole percent; a charge or energy counter with its full value (`charge_now` or
    Android's `charge_counter` over `charge_full`, `energy_now` over `energy_full`) resolves far
    less than 1%, so it is preferred; `source` says which was used. Termux without sysfs access:
    termux-battery-status's whole percent.
    """
    supplies = battery_supplies()
    if not supplies:
        b = _termux_battery()
        return {"level_pct": float(b["level_pct"]), "status": b["status"],
                "source": "termux-battery-status percentage"}
    d = supplies[0]
    status = _text(f"{d}/status") if sysfs.exists(f"{d}/status") else None
    for now, full in (("charge_now", "charge_full"), ("charge_counter", "charge_full"),
                      ("energy_now", "energy_full")):
        if sysfs.exists(f"{d}/{now}") and sysfs.exists(f"{d}/{full}"):
            full_value = _int(f"{d}/{full}")
            if full_value > 0:
                return {"level_pct": 100.0 * _int(f"{d}/{now}") / full_value, "status": status,
                        "source": f"{d}/{now} / {full}"}
    return {"level_pct": float(_int(f"{d}/capacity")), "status": status,
            "source": f"{d}/capacity"}


def _external_power_online() -> bool | None:
    seen = None
    for d in sysfs.glob("/sys/class/power_supply/*"):
        try:
            kind = _text(f"{d}/type").lower()
            if kind in ("mains", "usb", "usb_c", "usb_pd", "wireless"):
                seen = bool(seen) or _int(f"{d}/online") == 1
        except ReadError:
            continue
    return seen


def _termux_battery() -> dict[str, Any]:
    """Termux cannot read /sys/class/power_supply on recent Android; Termux:API can."""
    try:
        out = run_tool("termux-battery-status", [], timeout_s=10).stdout
    except ToolError as e:
        raise ReadError("no battery under /sys/class/power_supply and "
                        f"termux-battery-status unavailable ({e})") from None
    try:
        data = json.loads(out)
        status = str(data["status"])
        return {"source": "termux-battery-status", "level_pct": int(data["percentage"]),
                "status": status.capitalize(), "charging": status.upper() == "CHARGING",
                "on_external_power": str(data.get("plugged", "")).upper() not in ("", "UNPLUGGED")}
    except (ValueError, KeyError, TypeError) as e:
        raise ReadError(f"termux-battery-status printed unexpected output ({e})") from None


# -- the record -----------------------------------------------------------------------------
def read_state(profile: Profile) -> dict[str, Any]:
    """Everything a cell records before and after itself; never raises for a device reason."""
    errors: list[str] = []
    state: dict[str, Any] = {"t_monotonic_s": time.monotonic(), "profile": profile.name}
    state["cpufreq"] = _soft("cpufreq", read_cpufreq, errors)
    state["temperatures_c"] = _soft("thermal", lambda: read_temperatures(profile.thermal_zones,
                                                                          errors), errors)
    temps = state["temperatures_c"] or {}
    state["max_temp_c"] = max(temps.values()) if temps else None
    state["devfreq_hz"] = _soft("devfreq", read_devfreq, errors)
    state["throttling"] = _read_throttling(profile, errors)
    if profile.power_modes.nvpmodel:
        state["nvpmodel"] = _soft("nvpmodel", read_nvpmodel, errors)
    if profile.battery:
        state["battery"] = _soft("battery", read_battery, errors)
    state["errors"] = errors
    return state


def _read_throttling(profile: Profile, errors: list[str]) -> dict[str, Any] | None:
    if profile.throttling == "none":
        return None
    out: dict[str, Any] = {}
    if profile.throttling == "vcgencmd":
        out["vcgencmd"] = _soft("throttling", read_vcgencmd_throttled, errors)
    out["cooling_devices"] = _soft("throttling", read_cooling_devices, errors)
    return out


def _soft(what: str, fn: Callable[[], Any], errors: list[str]) -> Any:
    try:
        return fn()
    except ReadError as e:
        errors.append(f"{what}: {e}")
    except Exception as e:  # a reader bug must not lose the cell; it is recorded, not hidden
        errors.append(f"{what}: unexpected {type(e).__name__}: {e}")
    return None


soft_read = _soft  # the same fail-soft call for other pollers (harness.workloads.soak)


# -- judgement ------------------------------------------------------------------------------
def throttle_reasons(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Why a cell counts as throttled (empty: it did not, as far as the device tells us).

    Rules: a Pi 'now' bit set before or after, or a 'since boot' bit that appeared during the
    cell; a non-fan cooling device active before or after; a cpufreq policy whose max frequency
    dropped during the cell below the hardware maximum.
    """
    reasons = []
    vb, va = _vc(before), _vc(after)
    for when, v in (("before", vb), ("after", va)):
        if v and v.get("now"):
            reasons.append(f"vcgencmd reports {', '.join(v['now'])} {when} the cell ({v['raw']})")
    if va:
        new = sorted(set(va.get("since_boot", [])) - set((vb or {}).get("since_boot", [])))
        if new and vb is not None:
            reasons.append(f"vcgencmd: {', '.join(new)} occurred during the cell ({va['raw']})")
    for when, st in (("before", before), ("after", after)):
        for c in ((st.get("throttling") or {}).get("cooling_devices") or []):
            if c.get("cur_state", 0) > 0:
                reasons.append(f"cooling device {c['type']} active {when} the cell "
                               f"(state {c['cur_state']})")
    reasons += _freq_cap_reasons(before.get("cpufreq") or [], after.get("cpufreq") or [])
    return reasons


def _vc(state: dict[str, Any]) -> dict[str, Any] | None:
    return (state.get("throttling") or {}).get("vcgencmd")


def _freq_cap_reasons(before: list[dict], after: list[dict]) -> list[str]:
    prev = {p["policy"]: p for p in before}
    out = []
    for p in after:
        b = prev.get(p["policy"])
        if not b or "max_freq_hz" not in p or "max_freq_hz" not in b:
            continue
        hw = p.get("hw_max_freq_hz")
        if p["max_freq_hz"] < b["max_freq_hz"] and (hw is None or p["max_freq_hz"] < hw):
            out.append(f"cpufreq policy{p['policy']} max frequency fell from "
                       f"{b['max_freq_hz'] / 1e6:.0f} MHz to {p['max_freq_hz'] / 1e6:.0f} MHz")
    return out


def was_throttled(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return bool(throttle_reasons(before, after))


def wait_cool(profile: Profile, max_temp_c: float, timeout_s: float, poll_s: float = 1.0,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until every profile thermal zone is at or below max_temp_c; returns seconds waited.

    Returning a value >= timeout_s means the device did not cool in time: the caller records a
    warning and runs the cell anyway. Unreadable temperatures are a configuration problem (the
    cool-down was asked for but cannot be honoured), so they raise.
    """
    start = clock()
    while True:
        errors: list[str] = []
        try:
            temps = read_temperatures(profile.thermal_zones, errors)
        except ReadError as e:
            raise HarnessError(f"cannot wait for the device to cool: {e}; remove the cool-down "
                               "setting or fix the profile's thermal_zones") from None
        if not temps:
            raise HarnessError("cannot wait for the device to cool: " + "; ".join(errors))
        waited = clock() - start
        if max(temps.values()) <= max_temp_c or waited >= timeout_s:
            return waited
        sleep(min(poll_s, max(timeout_s - waited, 0.0)))
