"""Android battery gauge (`/sys/class/power_supply/<battery>/current_now`, `voltage_now`).

Only meaningful unplugged: while charging, the battery current is not what the phone uses. The
sensor refuses to open unless `status` is `Discharging`, and a reading taken after the phone
started charging raises (the trace is then invalid), never a silent number.
Units vary by vendor: current_now is documented in uA but some kernels report mA; voltage_now in
uV, some in mV. The unit is decided once at open from the magnitude (a phone running a model draws
tens of mA to a few A; a battery is 3-5 V). The sign convention also varies (kernel: negative =
discharging; Android API: positive = charging), so the magnitude is used and `status` decides.
"""
from __future__ import annotations

from ... import sysfs
from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig

SUPPLIES = "/sys/class/power_supply"
MA_BELOW = 10_000  # |current_now| below this is taken as mA (10 A), above as uA (10 mA)
MV_BELOW = 100_000  # voltage_now below this is mV (100 V), above is uV (0.1 V)
UNPLUG_FIX = ("unplug the charger (drive the phone over wireless adb, or start the run in Termux "
              "and unplug)")


def find_battery() -> str | None:
    """`battery` first, else any supply whose type is Battery (Pixel: maxfg)."""
    preferred = f"{SUPPLIES}/battery"
    if sysfs.exists(f"{preferred}/current_now"):
        return preferred
    for supply in sysfs.glob(f"{SUPPLIES}/*"):
        if (sysfs.exists(f"{supply}/current_now") and sysfs.exists(f"{supply}/type")
                and sysfs.read_text(f"{supply}/type").strip() == "Battery"):
            return supply
    return None


def current_scale(raw: int) -> float:
    """Amps per raw unit."""
    return 1e-3 if abs(raw) < MA_BELOW else 1e-6


def voltage_scale(raw: int) -> float:
    return 1e-3 if abs(raw) < MV_BELOW else 1e-6


class AndroidBattery(PowerSensor):
    name = "android_battery"
    coverage = "battery"
    max_power_w = 40.0

    def __init__(self, supply: str):
        super().__init__()
        self.supply = supply
        self._check_discharging()
        self.a_per_unit = current_scale(self._raw("current_now"))
        self.v_per_unit = voltage_scale(self._raw("voltage_now"))
        unit_a = "mA" if self.a_per_unit == 1e-3 else "uA"
        unit_v = "mV" if self.v_per_unit == 1e-3 else "uV"
        self.notes.append(f"{supply}: current_now in {unit_a}, voltage_now in {unit_v} "
                          "(decided from magnitude at open); whole phone, from the battery")

    def _raw(self, field: str) -> int:
        return sysfs.read_int(f"{self.supply}/{field}")

    def _check_discharging(self) -> None:
        status = sysfs.read_text(f"{self.supply}/status").strip()
        if status != "Discharging":
            raise SensorProblem(f"battery status is '{status}': battery power is only valid "
                                "while discharging (phone unplugged)", UNPLUG_FIX)

    def read_power_w(self) -> float:
        self._check_discharging()
        amps = abs(self._raw("current_now")) * self.a_per_unit
        return amps * self._raw("voltage_now") * self.v_per_unit


def create(config: EnergyConfig, estimate_params: dict | None) -> AndroidBattery:
    supply = find_battery()
    if supply is None:
        raise SensorProblem(f"no battery with current_now under {SUPPLIES}",
                            "run on an Android phone (Termux) or a laptop with a battery gauge")
    try:
        return AndroidBattery(supply)
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)",
                            "newer Android blocks these files for apps: run over `adb shell` "
                            "or as root") from None
