"""The matrix's `energy:` block, validated once so the sampler never sees a bad value."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..schema import Node

# The sensor registry's names, defined here once (harness.energy.registry opens
# `sensors/<name>.py`; device profiles list them, validated against this tuple).
SENSOR_NAMES = ("rapl", "ina3221_hwmon", "ina3221_iio", "tegrastats", "rpi5_pmic", "usb_meter",
                "android_battery", "pixel_odpm", "nvml", "powermetrics", "estimate", "scripted")
USB_METER_MODELS = ("UM24C", "UM25C", "UM34C")


@dataclass(frozen=True)
class CarbonConfig:
    """Exactly one of the two, or neither (the documented world average)."""

    country_iso_code: str | None = None
    intensity_g_per_kwh: float | None = None


@dataclass(frozen=True)
class ScriptedParams:
    """power_w(t) = base_w + amplitude_w * sin(2 pi t / period_s), t = time.monotonic()."""

    base_w: float
    amplitude_w: float = 0.0
    period_s: float = 1.0
    mode: str = "power"  # "power" (a power reader) or "counter" (a cumulative energy counter)
    fail_after_s: float | None = None  # reads fail this long after opening (fault tests)


@dataclass(frozen=True)
class UsbMeterParams:
    port: str
    model: str | None = None  # None: recognised from the reply's model id
    baud: int = 9600


@dataclass(frozen=True)
class EnergyConfig:
    sensor: str = "auto"
    rate_hz: float = 20.0
    baseline_s: float = 3.0
    carbon: CarbonConfig = field(default_factory=CarbonConfig)
    scripted: ScriptedParams | None = None
    require_measured: bool = False
    rapl_include_dram: bool = False
    usb_meter: UsbMeterParams | None = None

    @classmethod
    def from_node(cls, node: Node) -> "EnergyConfig":
        if node.value is None:
            return cls()
        node.mapping(["sensor", "rate_hz", "baseline_s", "carbon", "scripted", "require_measured",
                      "rapl", "usb_meter"])
        sensor = node.opt("sensor", "str", "auto", choices=("auto",) + SENSOR_NAMES)
        scripted = _scripted(node.get("scripted")) if node.has("scripted") else None
        if sensor == "scripted" and scripted is None:
            raise node.get("scripted").fail("sensor 'scripted' needs this block, "
                                            "e.g. {base_w: 5, amplitude_w: 2, period_s: 1}")
        usb = _usb_meter(node.get("usb_meter")) if node.has("usb_meter") else None
        return cls(
            sensor=sensor,
            rate_hz=node.opt("rate_hz", "float", 20.0, min=0.5, max=1000.0),
            baseline_s=node.opt("baseline_s", "float", 3.0, min=0.0, max=600.0),
            carbon=_carbon(node.get("carbon")) if node.has("carbon") else CarbonConfig(),
            scripted=scripted,
            require_measured=node.opt("require_measured", "bool", False),
            rapl_include_dram=_rapl_dram(node.get("rapl")) if node.has("rapl") else False,
            usb_meter=usb,
        )


def _carbon(node: Node) -> CarbonConfig:
    node.mapping(["country_iso_code", "intensity_g_per_kwh"])
    if node.has("country_iso_code") == node.has("intensity_g_per_kwh"):
        raise node.fail("give exactly one of country_iso_code (e.g. KEN) or intensity_g_per_kwh")
    if node.has("intensity_g_per_kwh"):
        return CarbonConfig(intensity_g_per_kwh=node.get("intensity_g_per_kwh").float(min=0.0,
                                                                                      max=3000.0))
    code = node.get("country_iso_code").str()
    if len(code) != 3 or not code.isalpha():
        raise node.get("country_iso_code").fail(
            f"'{code}' is not an ISO 3166-1 alpha-3 code (three letters, e.g. KEN, FRA, USA)")
    return CarbonConfig(country_iso_code=code.upper())


def _scripted(node: Node) -> ScriptedParams:
    node.mapping(["base_w", "amplitude_w", "period_s", "mode", "fail_after_s"], required=["base_w"])
    base_w = node.get("base_w").float(min=0.0)
    amplitude_w = node.opt("amplitude_w", "float", 0.0, min=0.0)
    if amplitude_w > base_w:
        raise node.get("amplitude_w").fail("must not exceed base_w (power would go negative)")
    return ScriptedParams(base_w=base_w, amplitude_w=amplitude_w,
                          period_s=node.opt("period_s", "float", 1.0, min=0.001),
                          mode=node.opt("mode", "str", "power", choices=("power", "counter")),
                          fail_after_s=node.opt("fail_after_s", "float", None, min=0.0))


def _usb_meter(node: Node) -> UsbMeterParams:
    node.mapping(["port", "model", "baud"], required=["port"])
    return UsbMeterParams(port=node.get("port").str(),
                          model=node.opt("model", "str", None, choices=USB_METER_MODELS),
                          baud=node.opt("baud", "int", 9600, min=1200))


def _rapl_dram(node: Node) -> bool:
    node.mapping(["include_dram"])
    return node.opt("include_dram", "bool", False)
