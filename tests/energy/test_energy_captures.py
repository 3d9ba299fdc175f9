"""The sensor parsers against outputs captured on real devices by others (sources: each
captures/<folder>/SOURCES.md). Expected figures are typed in from the captures, not computed by
the code under test."""
from __future__ import annotations

import shutil

import pytest

from energy_testkit import FIXTURES, set_file, write_tree
from harness.energy import EnergyConfig
from harness.energy.base import SensorProblem
from harness.energy.sensors import (android_battery, ina3221_hwmon, ina3221_iio, jetson_rails,
                                    pixel_odpm, powermetrics, tegrastats)

CAPTURES = FIXTURES / "captures"


def tegrastats_lines() -> dict[str, str]:
    rows = (CAPTURES / "tegrastats" / "lines.tsv").read_text().splitlines()
    return {r.split("\t")[0]: r.split("\t")[3] for r in rows if r.strip()}


LINES = tegrastats_lines()

# (line id, total W, coverage, rails added) from the captured values and each board's rule
TEGRASTATS_TOTALS = [
    ("nano_jp4_jtop_emul", 0.933, "module_input", ("POM_5V_IN",)),
    ("nano_jp461_go", 1.750, "module_input", ("POM_5V_IN",)),
    ("tx2_beszel1631", 5.297, "module_input", ("VDD_IN",)),
    ("tx2_jtop_extra", 14.025, "module_input", ("VDD_IN",)),
    ("agx_xavier_jtop", 1.155 + 0.385 + 2.502 + 0 + 0.192 + 2.692, "module_rails",
     ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")),
    # NVIDIA: VDDQ_VDD2_1V8AO is already inside VIN_SYS_5V0 -> 6.708 W, not 7.009 W
    ("agx_orin_jp5_jtop", 2.390 + 0.796 + 3.522, "module_rails",
     ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")),
    ("agx_orin_3val", 3.034 + 1.137 + 4.939, "module_rails",
     ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")),
    ("agx_orin_jp7_jtop", 5.139 + 3.268 + 5.500, "module_rails",
     ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")),
    ("orin_nano_beszel286", 12.479, "module_input", ("VDD_IN",)),
    ("orin_nano_doc_trailing", 4.761, "module_input", ("VDD_IN",)),
    ("orin_nx_3val", 7.280, "module_input", ("VDD_IN",)),
    # Thor: VIN alone (87.4 W, not 162.2 W; 16.8 W idle, not 27.4 W)
    ("thor_load_3val", 87.426, "board", ("VIN",)),
    ("thor_idle_rust", 16.802, "board", ("VIN",)),
    ("thor_doc", 19.780, "board", ("VIN",)),
    ("thor_negative_gpu", 15.004, "board", ("VIN",)),
]


@pytest.mark.parametrize("line_id,total,coverage,summed", TEGRASTATS_TOTALS)
def test_tegrastats_real_lines_use_the_board_rule(line_id, total, coverage, summed):
    watts, plan = tegrastats.total_w(tegrastats.parse_rails_w(LINES[line_id]))
    assert watts == pytest.approx(total)
    assert (plan.coverage, plan.summed) == (coverage, summed)


def test_agx_orin_leaves_out_vddq_with_nvidias_reason():
    _, plan = tegrastats.total_w(tegrastats.parse_rails_w(LINES["agx_orin_jp5_jtop"]))
    assert dict(plan.left_out)["VDDQ_VDD2_1V8AO"].startswith("already included in VIN_SYS_5V0")
    assert dict(plan.left_out)["NC"] == "unconnected channel"
    assert any("VDDQ_VDD2_1V8AO power is also included in VIN_SYS_5V0" in n for n in plan.notes())


def test_thor_negative_reading_is_parsed_not_dropped():
    rails = tegrastats.parse_rails_w(LINES["thor_negative_gpu"])
    assert rails == pytest.approx({"VDD_GPU": -0.392, "VDD_CPU_SOC_MSS": 3.924,
                                   "VIN_SYS_5V0": 5.064, "VIN": 15.004})


def test_thor_rails_inside_vin_are_named_with_the_reason():
    _, plan = tegrastats.total_w(tegrastats.parse_rails_w(LINES["thor_load_3val"]))
    assert [label for label, _ in plan.left_out] == ["VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0"]
    assert all(why.startswith("inside VIN") for _, why in plan.left_out)


def test_tegrastats_lines_without_rails_are_not_read_as_rails():
    rails = tegrastats.parse_rails_w(LINES["tx2_jtop_extra"])  # RAM x/yMB, NVENC 716, APE 150
    assert set(rails) == {"VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"}


def use_tree(monkeypatch, name):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(CAPTURES / name))


def test_hwmon_agx_orin_tree(monkeypatch):
    use_tree(monkeypatch, "jetson-agx-orin")
    sensor = ina3221_hwmon.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(5.000 * 0.478 + 4.975 * 0.160 + 5.031 * 0.700)
    assert sensor.coverage == "module_rails"


def test_hwmon_orin_nx_tree_uses_vdd_in(monkeypatch):
    use_tree(monkeypatch, "jetson-orin-nx")
    sensor = ina3221_hwmon.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(5.040 * 1.444)
    assert sensor.coverage == "module_input"


def test_hwmon_thor_reads_vin_from_the_ina238(monkeypatch):
    use_tree(monkeypatch, "jetson-agx-thor")
    sensor = ina3221_hwmon.create(EnergyConfig(), None)
    assert [r.label for r in sensor.rails] == ["VIN"]
    assert sensor.read_power_w() == pytest.approx(19.780)  # power1_input, uW
    assert sensor.coverage == "board"
    assert "leaves out VDD_GPU: inside VIN (a module rail)" in sensor.notes


def test_hwmon_thor_ina238_without_power_file_uses_v_times_i(tmp_path, monkeypatch):
    shutil.copytree(CAPTURES / "jetson-agx-thor", tmp_path, dirs_exist_ok=True)
    hw = "sys/bus/i2c/drivers/ina238/2-0044/hwmon/hwmon5"
    (tmp_path / hw / "power1_input").unlink()
    write_tree(tmp_path, {f"/{hw}/label": "VIN"})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    assert ina3221_hwmon.create(EnergyConfig(), None).read_power_w() == pytest.approx(
        48.120 * 0.411)


def test_hwmon_thor_without_ina238_is_refused_not_summed_short(tmp_path, monkeypatch):
    shutil.copytree(CAPTURES / "jetson-agx-thor", tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / "sys/bus/i2c/drivers/ina238")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="Jetson AGX Thor: rail VIN not found") as e:
        ina3221_hwmon.create(EnergyConfig(), None)
    assert "ina238" in e.value.fix and "tegrastats" in e.value.fix


def test_iio_nano_tree(monkeypatch):
    use_tree(monkeypatch, "jetson-nano")
    sensor = ina3221_iio.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(0.933) and sensor.coverage == "module_input"


def test_every_profile_named_in_the_rail_table_exists():
    from harness import devices
    names = set(devices.load_profiles())
    for board in jetson_rails.BOARDS:
        assert set(board.profiles) <= names, board.name


# -- powermetrics -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,watts,coverage,model", [
    ("backend_src_test_resources_sonoma-m1max.txt", [0.359], "cpu_gpu_ane", "apple-powermetrics"),
    ("backend_src_test_resources_tahoe-m4-summary.txt", [0.519], "cpu_gpu_ane",
     "apple-powermetrics"),
    ("mac14_2_macos26_two_blocks.txt", [1.172, 0.445], "cpu_gpu_ane", "apple-powermetrics"),
    ("backend_src_test_resources_monterey-m2.txt", [0.025], "package", "apple-powermetrics"),
    ("backend_src_test_resources_sonoma-intel.txt", [8.53], "package", "apple-intel-energy-model"),
])
def test_powermetrics_real_outputs(name, watts, coverage, model):
    samples = powermetrics.parse_samples((CAPTURES / "powermetrics" / name).read_text())
    assert [w for w, _ in samples] == pytest.approx(watts)
    assert {(k.coverage, k.model) for _, k in samples} == {(coverage, model)}


def test_powermetrics_macos12_value_comes_with_its_block_not_the_next():
    parser = powermetrics.BlockParser()
    text = (CAPTURES / "powermetrics" / "backend_src_test_resources_monterey-m2.txt").read_text()
    values = [v for v in map(parser.feed, text.splitlines()) if v is not None]
    assert values == [pytest.approx(0.025)]  # no later header needed
    assert "DRAM" in parser.kind.note


def test_powermetrics_parts_emitted_when_the_next_section_starts():
    parser = powermetrics.BlockParser()
    lines = ["*** Sampled system activity (x) ***", "CPU Power: 1500 mW", "GPU Power: 300 mW",
             "ANE Power: 0 mW", "", "**** GPU usage ****"]
    values = [v for v in map(parser.feed, lines) if v is not None]
    assert values == [pytest.approx(1.8)] and parser.kind is powermetrics.PARTS


# -- Pixel ODPM -------------------------------------------------------------------------------
ODPM = "/sys/bus/iio/devices/iio:device{}/"


def odpm_tree(tmp_path, capture, enabled=True):
    src = CAPTURES / "pixel-odpm" / capture
    files = {ODPM.format(i) + "energy_value": (src / f"device{i}").read_text().strip()
             for i in (0, 1)}
    if enabled and (src / "enabled_rails_device0").exists():
        files[ODPM.format(0) + "enabled_rails"] = (src / "enabled_rails_device0").read_text()
    return write_tree(tmp_path, files)


def test_odpm_pixel6_coverage_includes_display_and_radios(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(odpm_tree(tmp_path, "p6_philburk")))
    sensor = pixel_odpm.create(EnergyConfig(), None)
    assert sensor.coverage == "odpm:CPU+Cellular+Display+GPU+Memory+SoC+Tensor+WLAN/BT"
    assert sensor.subsystems["S10M_VDD_TPU"] == "Tensor"  # from enabled_rails
    assert sensor.subsystems["VSYS_PWR_DISPLAY"] == "Display"  # from the rail name
    total_uws = (5578756 + 29110940 + 3166046 + 30203502 + 23377533 + 46356942 + 10771876
                 + 21091363 + 45993209 + 2822928 + 6923706 + 4658202 + 5506273 + 14254574
                 + 5315420 + 81221665)
    assert sensor.read_energy_j() == pytest.approx(total_uws / 1e6)


def test_odpm_other_device_has_gnss_and_no_tpu(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(odpm_tree(tmp_path, "angle")))
    sensor = pixel_odpm.create(EnergyConfig(), None)
    assert sensor.coverage == "odpm:CPU+Cellular+Display+GNSS+GPU+Memory+SoC+WLAN/BT"


# -- batteries --------------------------------------------------------------------------------
def test_power_now_only_battery_is_read_directly(monkeypatch):
    use_tree(monkeypatch, "battery/legion-go-s")
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(22.543)
    assert any("power_now in uW" in n for n in sensor.notes)


def test_old_acpi_battery_with_microwatts_in_current_now(monkeypatch):
    use_tree(monkeypatch, "battery/ibm-92p1060-old-acpi")
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.read_power_w() == pytest.approx(13.97)  # not 150.6 W (uA x uV)
    assert any("current_now read as uW" in n for n in sensor.notes)


BAT = "/sys/class/power_supply/battery"


def phone(root, current, voltage=3_870_000, avg=None):
    files = {f"{BAT}/current_now": current, f"{BAT}/voltage_now": voltage,
             f"{BAT}/status": "Discharging", f"{BAT}/type": "Battery"}
    if avg is not None:
        files[f"{BAT}/current_avg"] = avg
    return write_tree(root, files)


@pytest.mark.parametrize("idle_ua", [-500, 976, -7011])
def test_idle_phone_with_current_avg_in_ua_is_read_as_ua(tmp_path, monkeypatch, idle_ua):
    phone(tmp_path, idle_ua, avg=-152_000)  # current_avg -152 mA: as mA it would be 588 W
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.unit.scale == 1e-6 and sensor.unit.certain
    assert sensor.read_power_w() == pytest.approx(abs(idle_ua) * 1e-6 * 3.87)


def test_idle_readings_of_both_signs_are_ua(tmp_path, monkeypatch):
    phone(tmp_path, -500)
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    reads = iter([-500, 976, -300, 400, -200])
    real_read = android_battery.AndroidBattery._raw

    def raw(self, field):
        return next(reads) if field == "current_now" else real_read(self, field)

    monkeypatch.setattr(android_battery.AndroidBattery, "_raw", raw)
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.unit.scale == 1e-6 and "both signs" in sensor.unit.reason


def test_assumed_ma_contradicted_later_invalidates_and_switches(tmp_path, monkeypatch):
    phone(tmp_path, -7011)  # idle at open, nothing else to go on: taken as mA
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = android_battery.create(EnergyConfig(), None)
    assert sensor.unit.scale == 1e-3 and not sensor.unit.certain
    set_file(tmp_path, f"{BAT}/current_now", -850_000)  # a model starts: only possible in uA
    with pytest.raises(SensorProblem, match="1000x high"):
        sensor.read_power_w()
    assert sensor.read_power_w() == pytest.approx(0.85 * 3.87)
    assert any("switched to uA" in n for n in sensor.notes)
