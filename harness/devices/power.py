"""Power modes: Jetson nvpmodel modes and Linux CPU governors, set and read back.

A cell records the mode read back from the device, not the mode asked for, because nvpmodel can
refuse a mode, need a reboot, or be changed by another user between cells.
"""
from __future__ import annotations

import re

from .. import sysfs
from ..errors import HarnessError
from .profile import NvpMode, Profile
from .state import CPUFREQ, ReadError, read_cpufreq, read_nvpmodel
from .tools import ToolError, run_tool

NVPMODEL_CONF = "/etc/nvpmodel.conf"
_CONF_LINE = re.compile(r"<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)", re.IGNORECASE)


def nvpmodel_modes(profile: Profile) -> tuple[NvpMode, ...]:
    """Modes from the device's /etc/nvpmodel.conf when present (ids differ between JetPack
    releases and carrier boards), else the profile's documented list."""
    try:
        text = sysfs.read_text(NVPMODEL_CONF)
    except OSError:
        return profile.power_modes.nvpmodel
    found = tuple(NvpMode(int(i), n) for i, n in _CONF_LINE.findall(text))
    return found or profile.power_modes.nvpmodel


def _find_nvp(profile: Profile, mode: str) -> NvpMode | None:
    for m in nvpmodel_modes(profile):
        if m.name.lower() == mode.lower() or str(m.id) == mode:
            return m
    return None


def _is_governor(profile: Profile, mode: str) -> bool:
    return mode.lower() in (g.lower() for g in profile.power_modes.governors)


def read_power_mode(profile: Profile, mode: str | None = None) -> str | None:
    """The mode the device is in now, of the same kind as `mode` (nvpmodel name or governor).

    Without `mode`: the nvpmodel mode on profiles that have them, else the CPU governor
    ('mixed' when policies differ). None when the profile has no power modes or it cannot be read.
    """
    use_governor = _is_governor(profile, mode) if mode else not profile.power_modes.nvpmodel
    try:
        if not use_governor:
            return read_nvpmodel()["name"]
        if not profile.power_modes.governors:
            return None
        governors = {p["governor"] for p in read_cpufreq() if "governor" in p}
    except ReadError:
        return None
    if not governors:
        return None
    return governors.pop() if len(governors) == 1 else "mixed"


def set_power_mode(profile: Profile, mode: str) -> None:
    """Put the device in `mode`; a clear HarnessError says why not (unknown mode, not root...)."""
    nvp = _find_nvp(profile, mode) if profile.power_modes.nvpmodel else None
    if nvp is not None:
        _set_nvpmodel(nvp)
        actual = read_power_mode(profile, nvp.name)
        if actual is None or actual.lower() != nvp.name.lower():
            raise HarnessError(f"asked nvpmodel for mode {nvp.id} ({nvp.name}) but the device "
                               f"reports {actual!r}; some modes need a reboot (`sudo nvpmodel -m "
                               f"{nvp.id}` then reboot), then run again")
        return
    if _is_governor(profile, mode):
        _set_governor(mode.lower())
        return
    valid = [m.name for m in nvpmodel_modes(profile)] + list(profile.power_modes.governors)
    if not valid:
        raise HarnessError(f"device profile '{profile.name}' has no power modes; remove "
                           "power_mode from the matrix for this device")
    raise HarnessError(f"power mode '{mode}' is not available on '{profile.name}'; "
                       f"valid modes: {', '.join(valid)}")


def _set_nvpmodel(m: NvpMode) -> None:
    try:
        run_tool("nvpmodel", ["-m", str(m.id)], timeout_s=60)
    except ToolError as e:
        if e.missing:
            raise HarnessError("nvpmodel not found on PATH: it ships with JetPack "
                               "(nvidia-l4t-tools); power modes need a Jetson") from None
        fix = (f"run `sudo nvpmodel -m {m.id}` before the run and drop power_mode from the "
               "matrix, or run the harness with sudo") if e.permission else "see the message above"
        raise HarnessError(f"cannot set nvpmodel mode {m.id} ({m.name}): {e}; {fix}") from None


def _set_governor(governor: str) -> None:
    policies = sysfs.glob(f"{CPUFREQ}/policy*")
    if not policies:
        raise HarnessError(f"cannot set CPU governor '{governor}': {CPUFREQ} has no policies "
                           "(no cpufreq driver on this machine)")
    for d in policies:
        avail_path = f"{d}/scaling_available_governors"
        if sysfs.exists(avail_path):
            avail = sysfs.read_text(avail_path).split()
            if governor not in avail:
                raise HarnessError(f"CPU governor '{governor}' is not available on {d}; "
                                   f"available: {', '.join(avail)}")
        try:
            sysfs.path(f"{d}/scaling_governor").write_text(governor + "\n")
        except PermissionError:
            raise HarnessError(
                f"cannot set CPU governor '{governor}': writing {d}/scaling_governor needs root; "
                f"run `echo {governor} | sudo tee {CPUFREQ}/policy*/scaling_governor` before "
                "the run and drop power_mode from the matrix, or run the harness with sudo") from None
        except OSError as e:
            raise HarnessError(f"cannot set CPU governor '{governor}' on {d}: "
                               f"{e.strerror or e}") from None
