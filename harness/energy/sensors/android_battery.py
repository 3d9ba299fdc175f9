"""Battery fuel gauge (`/sys/class/power_supply/<battery>/`): phones, handhelds, laptops.

Only meaningful unplugged: while charging, the battery current is not what the device uses. The
sensor refuses to open unless `status` is `Discharging`, and a reading taken after charging
started raises (the trace is then invalid), never a silent number.

What is read, in order:
- `power_now` (uW, the kernel ABI) when the battery has it: the gauge's own power (a Legion Go S
  reports only `power_now`, no `current_now`).
- an energy-unit battery (`energy_now`/`energy_full`, no `charge_*`) without `power_now`: old
  kernels' ACPI driver put the power (uW) in `current_now` (an IBM battery read 150.6 W as uA x
  uV instead of 13.97 W). Read as uW, and said so in the notes.
- else `current_now` x `voltage_now`. current_now is documented in uA, but some vendor kernels
  report mA, and real uA readings near idle are small (-500, 976, -7011 uA), so one reading
  cannot decide. The unit is judged by plausibility: a value that as mA would exceed
  `max_power_w` at the measured voltage is certainly uA, and so are readings of both signs (a
  current of tens of mA or more does not flip sign while discharging); `current_avg` and a few
  readings at open add evidence. With no such evidence, small values are taken as mA (the
  vendor kernels that use mA). Every later reading is checked again: one that proves uA while
  mA was assumed switches the unit and raises, which invalidates that trace (its earlier
  readings were 1000x high) instead of keeping a wrong number.
voltage_now is uV, on some kernels mV (< 100000). The sign convention also varies (kernel:
negative = discharging; Android API: positive = charging), so the magnitude is used and
`status` decides.
"""
from __future__ import annotations

import time

from ... import sysfs
from ..base import PowerSensor, SensorProblem
from ..config import EnergyConfig
from ..uncertainty import Accuracy

SUPPLIES = "/sys/class/power_supply"
MV_BELOW = 100_000  # voltage_now below this is mV (100 V), above is uV (0.1 V)
OPEN_READS = 5  # current_now readings at open (stop early on certain evidence)
OPEN_READ_GAP_S = 0.05
UA, MA = 1e-6, 1e-3
UNPLUG_FIX = ("unplug the charger (drive the phone over wireless adb, or start the run in Termux "
              "and unplug)")
POWER_FIELDS = ("power_now", "current_now")
# Stated accuracy (harness.energy.uncertainty): none is published per phone.
ACCURACY = Accuracy(
    gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0,
    source="fuel-gauge accuracy is not published per phone, and vendors filter current_now "
           "over their own interval; calibrate against a USB meter on the charging path for a "
           "figure.")


def find_battery() -> str | None:
    """`battery` first, else any supply whose type is Battery (Pixel: maxfg; laptops: BAT0)."""
    preferred = f"{SUPPLIES}/battery"
    if any(sysfs.exists(f"{preferred}/{f}") for f in POWER_FIELDS):
        return preferred
    for supply in sysfs.glob(f"{SUPPLIES}/*"):
        if (any(sysfs.exists(f"{supply}/{f}") for f in POWER_FIELDS)
                and sysfs.exists(f"{supply}/type")
                and sysfs.read_text(f"{supply}/type").strip() == "Battery"):
            return supply
    return None


def voltage_scale(raw: int) -> float:
    return MA if abs(raw) < MV_BELOW else UA


class CurrentUnit:
    """Amps per raw `current_now` unit, judged by plausibility and re-checked at every reading."""

    def __init__(self, max_power_w: float):
        self.max_power_w = max_power_w
        self.scale = MA
        self.certain = False
        self.reason = "no evidence of uA: small values taken as mA"

    def impossible_as_ma(self, raw: int, volts: float) -> bool:
        return abs(raw) * MA * volts > self.max_power_w

    def judge(self, readings: list[int], avg: int | None, volts: float) -> None:
        """Decide at open from a few current_now readings and current_avg."""
        for raw in readings:
            if self.impossible_as_ma(raw, volts):
                return self._set_ua(f"current_now {raw}: as mA it would be over "
                                    f"{self.max_power_w:g} W")
        if avg is not None and self.impossible_as_ma(avg, volts):
            return self._set_ua(f"current_avg {avg}: as mA it would be over "
                                f"{self.max_power_w:g} W")
        if any(r > 0 for r in readings) and any(r < 0 for r in readings):
            return self._set_ua(f"readings of both signs ({min(readings)}, {max(readings)}): "
                                "a current near zero")

    def check(self, raw: int, volts: float) -> None:
        """Raise when a reading contradicts an assumed mA (the unit is switched first)."""
        if self.scale == MA and self.impossible_as_ma(raw, volts):
            self._set_ua(f"current_now {raw} read during the run cannot be mA")
            raise SensorProblem(f"battery current_now unit was assumed mA but reached {raw} "
                                "(only possible in uA): earlier readings of this trace were "
                                "1000x high, so it is invalid; later readings use uA",
                                "rerun; the sensor now reads uA")

    def _set_ua(self, why: str) -> None:
        self.scale, self.certain, self.reason = UA, True, why

    def describe(self) -> str:
        unit = "uA" if self.scale == UA else "mA"
        return f"current_now in {unit} ({self.reason}; re-checked at every reading)"


class AndroidBattery(PowerSensor):
    name = "android_battery"
    coverage = "battery"
    max_power_w = 40.0

    def __init__(self, supply: str):
        super().__init__()
        self.supply = supply
        self._check_discharging()
        self.mode = self._mode()
        self.unit = CurrentUnit(self.max_power_w)
        self.v_per_unit = 1.0
        if self.mode == "current":
            self.v_per_unit = voltage_scale(self._raw("voltage_now"))
            self.unit.judge(self._open_readings(), self._optional("current_avg"),
                            self._raw("voltage_now") * self.v_per_unit)
        self.notes.append(f"{supply}: {self._describe()}; whole device, from the battery")

    def _mode(self) -> str:
        if sysfs.exists(f"{self.supply}/power_now"):
            return "power_now"
        if self._has_any("energy_now", "energy_full") and not self._has_any("charge_now",
                                                                              "charge_full"):
            return "old_acpi_uw"
        if not sysfs.exists(f"{self.supply}/voltage_now"):
            raise SensorProblem(f"{self.supply} has current_now but no voltage_now or power_now",
                                "this battery gauge cannot give a power; use an external meter")
        return "current"

    def _has_any(self, *fields: str) -> bool:
        return any(sysfs.exists(f"{self.supply}/{f}") for f in fields)

    def _describe(self) -> str:
        if self.mode == "power_now":
            return "power_now in uW (the gauge's own power)"
        if self.mode == "old_acpi_uw":
            return ("energy-unit battery without power_now: current_now read as uW (the old "
                    "kernels' ACPI layout; newer kernels report power_now)")
        unit_v = "mV" if self.v_per_unit == MA else "uV"
        return f"{self.unit.describe()}, voltage_now in {unit_v}"

    def _raw(self, field: str) -> int:
        return sysfs.read_int(f"{self.supply}/{field}")

    def _optional(self, field: str) -> int | None:
        return self._raw(field) if sysfs.exists(f"{self.supply}/{field}") else None

    def _open_readings(self) -> list[int]:
        volts = self._raw("voltage_now") * self.v_per_unit
        out = [self._raw("current_now")]
        while len(out) < OPEN_READS and not self.unit.impossible_as_ma(out[-1], volts):
            time.sleep(OPEN_READ_GAP_S)
            out.append(self._raw("current_now"))
        return out

    def _check_discharging(self) -> None:
        status = sysfs.read_text(f"{self.supply}/status").strip()
        if status != "Discharging":
            raise SensorProblem(f"battery status is '{status}': battery power is only valid "
                                "while discharging (unplugged)", UNPLUG_FIX)

    def read_power_w(self) -> float:
        self._check_discharging()
        if self.mode == "power_now":
            return abs(self._raw("power_now")) * UA
        if self.mode == "old_acpi_uw":
            return abs(self._raw("current_now")) * UA
        raw = self._raw("current_now")
        volts = self._raw("voltage_now") * self.v_per_unit
        try:
            self.unit.check(raw, volts)
        except SensorProblem:
            self.notes.append(f"current_now unit switched to uA during the run ({raw})")
            raise
        return abs(raw) * self.unit.scale * volts


def create(config: EnergyConfig, estimate_params: dict | None) -> AndroidBattery:
    supply = find_battery()
    if supply is None:
        raise SensorProblem(f"no battery with power_now or current_now under {SUPPLIES}",
                            "run on an Android phone (Termux) or a laptop with a battery gauge")
    try:
        return AndroidBattery(supply)
    except PermissionError as e:
        raise SensorProblem(f"cannot read {e.filename} (permission denied)",
                            "newer Android blocks these files for apps: run over `adb shell` "
                            "or as root") from None
