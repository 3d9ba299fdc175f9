"""Raspberry Pi 5 PMIC via a fake vcgencmd; Android battery and Pixel ODPM fixture trees."""
from __future__ import annotations

import time

import pytest

from energy_testkit import FIXTURES, fake_tool, fixture_text, path_with, set_file, write_tree
from harness.energy import EnergyConfig, Sampler
from harness.energy.base import SensorProblem
from harness.energy.sensors import android_battery, pixel_odpm, rpi5_pmic

# (A, V) pairs from the fixture, typed in independently of the parser
PI5_PAIRS = {"3V7_WL_SW": (0.09368929, 3.69977600), "3V3_SYS": (0.08783370, 3.30402000),
             "1V8_SYS": (0.18054710, 1.79816800), "DDR_VDD2": (0.22543980, 1.10622000),
             "DDR_VDDQ": (0.06666720, 0.60439560), "1V1_SYS": (0.17566740, 1.10622000),
             "0V8_SW": (0.37670900, 0.80219760), "VDD_CORE": (6.22421000, 0.86173300),
             "3V3_DAC": (0.00006105, 3.31257600), "3V3_ADC": (0.00036630, 3.30769200),
             "0V8_AON": (0.00305250, 0.80097600), "HDMI": (0.02417580, 5.08664000)}
PI5_TOTAL_W = sum(a * v for a, v in PI5_PAIRS.values())


@pytest.mark.parametrize("fixture", ["pmic_read_adc_pi5.txt", "pmic_read_adc_pi5_nul.bin"])
def test_pmic_pairs_by_name_and_sums(fixture):
    text = (FIXTURES / fixture).read_bytes().decode()
    rails = rpi5_pmic.parse_rails(text)
    assert rails.keys() == PI5_PAIRS.keys()  # EXT5V_V and BATT_V have no current: skipped
    for rail, (amps, volts) in PI5_PAIRS.items():
        assert rails[rail] == (pytest.approx(amps), pytest.approx(volts)), rail
    assert rpi5_pmic.total_w(rails) == pytest.approx(PI5_TOTAL_W)


def test_pmic_pairs_by_name_not_channel_order():
    text = "  VDD_CORE_V volt(15)=0.8V\n X_A current(1)=2.0A\n VDD_CORE_A current(7)=5.0A\n"
    assert rpi5_pmic.parse_rails(text) == {"VDD_CORE": (5.0, 0.8)}


def test_pmic_sensor_through_fake_vcgencmd(tmp_path, monkeypatch):
    fixture = FIXTURES / "pmic_read_adc_pi5_nul.bin"
    fake_tool(tmp_path / "bin", "vcgencmd",
              f'[ "$1" = "pmic_read_adc" ] || exit 2\ncat "{fixture}"\n')
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    sensor = rpi5_pmic.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(PI5_TOTAL_W)
    assert sensor.coverage == "pmic_rails"
    assert any("under-estimates" in n for n in sensor.notes)


def test_pmic_on_a_pi4_says_command_not_registered(tmp_path, monkeypatch):
    fixture = FIXTURES / "pmic_read_adc_pi4.txt"
    fake_tool(tmp_path / "bin", "vcgencmd", f'cat "{fixture}"\nexit 255\n')
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    with pytest.raises(SensorProblem, match="Command not registered") as e:
        rpi5_pmic.create(EnergyConfig(), None)
    assert "usb_meter" in e.value.fix


BAT = "/sys/class/power_supply/battery"


def battery(root, current, voltage, status="Discharging", base=BAT):
    write_tree(root, {f"{base}/current_now": current, f"{base}/voltage_now": voltage,
                      f"{base}/status": status, f"{base}/type": "Battery"})


@pytest.mark.parametrize("current,voltage", [
    (-1_250_000, 3_900_000),  # kernel canonical: uA, negative while discharging
    (1_250_000, 3_900_000),   # vendors that report discharge as positive uA
    (-1250, 3_900_000),       # mA
    (1250, 3900),             # mA and mV
])
def test_android_units_and_signs_normalised(tmp_path, monkeypatch, current, voltage):
    battery(tmp_path, current, voltage)
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(1.25 * 3.9)
    assert sensor.coverage == "battery" and sensor.method == "measured"


def test_android_pixel_maxfg_supply(tmp_path, monkeypatch):
    battery(tmp_path, -500_000, 4_000_000, base="/sys/class/power_supply/maxfg")
    write_tree(tmp_path, {"/sys/class/power_supply/usb/type": "USB"})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    assert android_battery.create(EnergyConfig(), None).read_power_w() == pytest.approx(2.0)


@pytest.mark.parametrize("status", ["Charging", "Full", "Not charging"])
def test_android_charging_phone_is_refused(tmp_path, monkeypatch, status):
    battery(tmp_path, 900_000, 4_200_000, status=status)
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match=f"'{status}'") as e:
        android_battery.create(EnergyConfig(), None)
    assert "unplug" in e.value.fix


def test_android_plugged_in_mid_trace_invalidates(tmp_path, monkeypatch):
    battery(tmp_path, -800_000, 3_800_000)
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = android_battery.create(EnergyConfig(), None)
    sampler = Sampler(sensor, 50).start()
    time.sleep(0.1)
    set_file(tmp_path, f"{BAT}/status", "Charging")
    time.sleep(0.1)
    trace = sampler.stop()
    assert not trace.valid and "Charging" in trace.invalid_reason


ODPM0 = "/sys/bus/iio/devices/iio:device0/energy_value"
ODPM1 = "/sys/bus/iio/devices/iio:device1/energy_value"


def odpm_text(t_ms, values):
    lines = [f"t={t_ms}"] + [f"CH{i}(T={t_ms})[RAIL_{i}], {v}" for i, v in enumerate(values)]
    return "\n".join(lines)


def test_odpm_parses_recorded_file():
    rails = pixel_odpm.parse_energy_value(fixture_text("pixel_odpm_device0.txt"))
    assert rails["S10M_VDD_TPU"] == 5578756 and rails["S1M_VDD_MIF"] == 21091363
    assert len(rails) == 8


def test_odpm_counter_sums_both_monitors(tmp_path, monkeypatch):
    write_tree(tmp_path, {ODPM0: fixture_text("pixel_odpm_device0.txt").strip(),
                          ODPM1: odpm_text(349894, [1_000_000, 2_000_000])})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = pixel_odpm.create(EnergyConfig(), None)
    first = sensor.read_energy_j()
    fixture_total = sum(pixel_odpm.parse_energy_value(fixture_text("pixel_odpm_device0.txt"))
                        .values())
    assert first == pytest.approx((fixture_total + 3_000_000) / 1e6)
    set_file(tmp_path, ODPM1, odpm_text(350894, [1_500_000, 2_250_000]))  # +0.75 J (uWs)
    assert sensor.read_energy_j() - first == pytest.approx(0.75)
    # device0 is a Pixel 6's: Tensor, Cellular, CPU, SoC and Memory rails; RAIL_n are unknown
    assert sensor.kind == "counter"
    assert sensor.coverage == "odpm:CPU+Cellular+Memory+SoC+Tensor+other"


def test_odpm_permission_denied(tmp_path, monkeypatch):
    from harness import sysfs
    write_tree(tmp_path, {ODPM0: fixture_text("pixel_odpm_device0.txt").strip()})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))

    def denied(p):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(sysfs, "read_text", denied)
    with pytest.raises(SensorProblem, match="permission denied") as e:
        pixel_odpm.create(EnergyConfig(), None)
    assert "root" in e.value.fix
