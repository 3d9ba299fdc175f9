"""State readers against fixture trees and fake tools; throttling judgement; wait_cool."""
from __future__ import annotations

import pytest

from harness import devices
from harness.devices.state import parse_nvpmodel_q, read_battery, ReadError
from harness.errors import HarnessError


def test_decode_throttled_0x50005():
    d = devices.decode_throttled(0x50005)
    assert d == {"raw": "0x50005", "now": ["under_voltage", "throttled"],
                 "since_boot": ["under_voltage", "throttled"]}


def test_decode_throttled_every_bit():
    d = devices.decode_throttled(0xF000F)
    assert d["now"] == ["under_voltage", "arm_freq_capped", "throttled", "soft_temp_limit"]
    assert d["since_boot"] == d["now"]
    assert devices.decode_throttled(0) == {"raw": "0x0", "now": [], "since_boot": []}
    assert devices.decode_throttled(0x80000)["since_boot"] == ["soft_temp_limit"]


def test_pi5_state(root, tools):
    root("raspberry-pi-5")
    tools.output("vcgencmd", "throttled=0x50005\n")
    st = devices.read_state(devices.get_profile("raspberry-pi-5"))
    assert st["errors"] == []
    assert st["temperatures_c"] == {"cpu-thermal": pytest.approx(52.35)}
    assert st["max_temp_c"] == pytest.approx(52.35)
    assert st["cpufreq"] == [{"policy": 0, "cpus": [0, 1, 2, 3], "freq_hz": 2_400_000_000,
                              "min_freq_hz": 1_500_000_000, "max_freq_hz": 2_400_000_000,
                              "hw_max_freq_hz": 2_400_000_000, "governor": "ondemand"}]
    vc = st["throttling"]["vcgencmd"]
    assert vc["raw"] == "0x50005" and vc["now"] == ["under_voltage", "throttled"]
    assert st["throttling"]["cooling_devices"] == []  # the fan is not throttling
    assert "battery" not in st and "nvpmodel" not in st


def test_vcgencmd_nul_separated_output(root, tools):
    root("raspberry-pi-5")
    tools.output("vcgencmd", "throttled=0x0\x00")
    st = devices.read_state(devices.get_profile("raspberry-pi-5"))
    assert st["throttling"]["vcgencmd"]["raw"] == "0x0"


def test_missing_vcgencmd_is_an_error_entry_not_a_crash(root, tools):
    root("raspberry-pi-4")
    st = devices.read_state(devices.get_profile("raspberry-pi-4"))
    assert st["throttling"]["vcgencmd"] is None
    assert st["errors"] == ["throttling: 'vcgencmd' not found on PATH"]
    assert st["temperatures_c"] == {"cpu-thermal": pytest.approx(61.998)}


def test_garbled_vcgencmd_output(root, tools):
    root("raspberry-pi-4")
    tools.output("vcgencmd", 'error=1 error_msg="Command not registered"\n')
    st = devices.read_state(devices.get_profile("raspberry-pi-4"))
    assert st["throttling"]["vcgencmd"] is None
    assert "expected throttled=0x" in st["errors"][0]


def test_jetson_orin_nano_state(root, tools, tmp_path):
    root("jetson-orin-nano")
    tools.nvpmodel({0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}, 2, tmp_path)
    st = devices.read_state(devices.get_profile("jetson-orin-nano"))
    assert st["errors"] == []
    assert st["nvpmodel"] == {"name": "MAXN_SUPER", "id": 2}
    assert set(st["temperatures_c"]) == {"cpu-thermal", "gpu-thermal", "tj-thermal"}
    assert st["max_temp_c"] == pytest.approx(48.031)
    assert [p["cpus"] for p in st["cpufreq"]] == [[0, 1, 2, 3], [4, 5]]
    assert st["devfreq_hz"] == {"17000000.gpu": 306_000_000}
    # the fan (pwm-fan, state 3) is left out; the idle cpufreq clamp is kept
    assert st["throttling"]["cooling_devices"] == [{"type": "cpufreq-cpu0", "cur_state": 0}]


def test_jetpack5_upper_case_zone_names_match_the_same_profile(root, tools, tmp_path):
    root("jetson-agx-orin")
    tools.nvpmodel({0: "MAXN"}, 0, tmp_path)
    st = devices.read_state(devices.get_profile("jetson-agx-orin"))
    assert set(st["temperatures_c"]) == {"CPU-therm", "GPU-therm", "Tj-therm"}
    assert st["errors"] == []


def test_missing_thermal_zone_is_named(root, tools):
    root("jetson-nano")  # has CPU-therm and GPU-therm; ask for one it lacks
    p = devices.get_profile("jetson-nano")
    from dataclasses import replace
    p2 = replace(p, thermal_zones=("CPU-therm", "tj-therm"))
    st = devices.read_state(p2)
    assert st["temperatures_c"] == {"CPU-therm": pytest.approx(36.5)}
    assert any("no zone type matches 'tj-therm'" in e and "PMIC-Die" in e for e in st["errors"])
    assert any(e.startswith("nvpmodel: 'nvpmodel' not found") for e in st["errors"])


def test_parse_nvpmodel_q_variants():
    assert parse_nvpmodel_q("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel_q("NV Fan Mode:quiet\nNV Power Mode: 15W\n1\n") == {"name": "15W", "id": 1}
    with pytest.raises(ReadError):
        parse_nvpmodel_q("nvpmodel: command failed\n")


def test_laptop_battery_discharging(root, tools):
    root("laptop-intel")
    st = devices.read_state(devices.get_profile("laptop-x86-intel"))
    assert st["battery"] == {"source": "/sys/class/power_supply/BAT0", "level_pct": 87,
                             "status": "Discharging", "charging": False,
                             "on_external_power": False}
    assert st["temperatures_c"] == {"x86_pkg_temp": 55.0}
    assert [p["freq_hz"] for p in st["cpufreq"]] == [1_900_000_000, 2_100_000_000]


def test_laptop_battery_charging(root, tools):
    root("laptop-amd")
    b = read_battery()
    assert b["charging"] is True and b["level_pct"] == 42 and b["on_external_power"] is True


def test_termux_battery_fallback(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))  # sysfs hidden, as on Android 10+
    tools.output("termux-battery-status", '{"health": "GOOD", "percentage": 71, "plugged": '
                 '"PLUGGED_USB", "status": "CHARGING", "temperature": 29.1, "current": 420000}')
    b = read_battery()
    assert b == {"source": "termux-battery-status", "level_pct": 71, "status": "Charging",
                 "charging": True, "on_external_power": True}


def test_battery_unreadable_everywhere_is_an_error_entry(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    st = devices.read_state(devices.get_profile("android-generic"))
    assert st["battery"] is None
    assert any(e.startswith("battery: no battery under /sys/class/power_supply and "
                            "termux-battery-status unavailable") for e in st["errors"])


def test_vm_without_cpufreq_or_thermal(root, tools):
    root("server-amd")
    st = devices.read_state(devices.get_profile("linux-generic"))
    assert st["cpufreq"] is None and st["temperatures_c"] is None and st["max_temp_c"] is None
    assert len(st["errors"]) == 2


# -- throttling judgement -------------------------------------------------------------------
def _vc_state(raw: int) -> dict:
    return {"throttling": {"vcgencmd": devices.decode_throttled(raw), "cooling_devices": []}}


def test_not_throttled_when_clean():
    assert not devices.was_throttled(_vc_state(0), _vc_state(0))
    assert devices.throttle_reasons({}, {}) == []


def test_sticky_bit_that_appeared_during_the_cell():
    reasons = devices.throttle_reasons(_vc_state(0x0), _vc_state(0x40000))
    assert reasons == ["vcgencmd: throttled occurred during the cell (0x40000)"]


def test_sticky_bit_already_set_before_is_not_blamed_on_the_cell():
    assert not devices.was_throttled(_vc_state(0x50000), _vc_state(0x50000))


def test_throttled_now_bits():
    reasons = devices.throttle_reasons(_vc_state(0x0), _vc_state(0x50005))
    assert reasons[0] == "vcgencmd reports under_voltage, throttled after the cell (0x50005)"
    assert devices.was_throttled(_vc_state(0x0), _vc_state(0x50005))


def test_active_cooling_device():
    before = {"throttling": {"cooling_devices": [{"type": "cpufreq-cpu0", "cur_state": 0}]}}
    after = {"throttling": {"cooling_devices": [{"type": "cpufreq-cpu0", "cur_state": 2}]}}
    assert devices.throttle_reasons(before, after) == [
        "cooling device cpufreq-cpu0 active after the cell (state 2)"]


def _freq(max_hz: int) -> dict:
    return {"cpufreq": [{"policy": 0, "max_freq_hz": max_hz, "hw_max_freq_hz": 2_400_000_000}]}


def test_cpufreq_cap_dropping_during_the_cell():
    assert devices.throttle_reasons(_freq(2_400_000_000), _freq(1_500_000_000)) == [
        "cpufreq policy0 max frequency fell from 2400 MHz to 1500 MHz"]
    assert not devices.was_throttled(_freq(1_500_000_000), _freq(1_500_000_000))  # a user cap
    assert not devices.was_throttled(_freq(1_500_000_000), _freq(2_400_000_000))


def test_read_state_round_trip_flags_cpufreq_clamp(tree, tools):
    root_dir = tree("raspberry-pi-5")
    tools.output("vcgencmd", "throttled=0x0\n")
    p = devices.get_profile("raspberry-pi-5")
    before = devices.read_state(p)
    (root_dir / "sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq").write_text("1800000\n")
    after = devices.read_state(p)
    assert devices.was_throttled(before, after)
    assert not devices.was_throttled(before, before)


# -- wait_cool ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self, on_sleep=None):
        self.t = 100.0
        self.on_sleep = on_sleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s
        if self.on_sleep:
            self.on_sleep(self.t)


def test_wait_cool_waits_until_below_threshold(tree):
    root_dir = tree("raspberry-pi-5")
    temp = root_dir / "sys/class/thermal/thermal_zone0/temp"
    temp.write_text("70000\n")
    clock = FakeClock(on_sleep=lambda t: temp.write_text(f"{int(70000 - (t - 100) * 2000)}\n"))
    waited = devices.wait_cool(devices.get_profile("raspberry-pi-5"), 60.0, 30.0, poll_s=1.0,
                               clock=clock, sleep=clock.sleep)
    assert waited == pytest.approx(5.0)  # 70 C falling 2 C/s reaches 60 C after 5 s
    assert clock.sleeps == [1.0] * 5


def test_wait_cool_returns_at_timeout_when_still_hot(root):
    root("raspberry-pi-5")  # 52.35 C, never changes
    clock = FakeClock()
    waited = devices.wait_cool(devices.get_profile("raspberry-pi-5"), 40.0, 3.5, poll_s=1.0,
                               clock=clock, sleep=clock.sleep)
    assert waited == pytest.approx(3.5)
    assert clock.sleeps == [1.0, 1.0, 1.0, 0.5]


def test_wait_cool_already_cool_returns_zero(root):
    root("raspberry-pi-5")
    clock = FakeClock()
    assert devices.wait_cool(devices.get_profile("raspberry-pi-5"), 80.0, 10.0, clock=clock,
                             sleep=clock.sleep) == 0.0


def test_wait_cool_without_thermal_zones_is_a_clear_error(root):
    root("server-amd")
    with pytest.raises(HarnessError, match="cannot wait for the device to cool"):
        devices.wait_cool(devices.get_profile("linux-generic"), 50.0, 1.0)
