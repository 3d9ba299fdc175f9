"""Jetson: INA3221 hwmon and IIO fixture trees, tegrastats parser variants and the tool reader."""
from __future__ import annotations

import time

import pytest

from energy_testkit import fake_tool, fixture_text, path_with, set_file, write_tree
from harness.energy import EnergyConfig
from harness.energy.base import SensorProblem
from harness.energy.sensors import ina3221_hwmon, ina3221_iio, tegrastats

HW = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"


def hwmon_channel(n, label, mv, ma, hw=HW):
    return {f"{hw}/in{n}_label": label, f"{hw}/in{n}_input": mv, f"{hw}/curr{n}_input": ma}


@pytest.fixture
def orin_nx(tmp_path, monkeypatch):
    write_tree(tmp_path, {**hwmon_channel(1, "VDD_IN", 5072, 1012),
                          **hwmon_channel(2, "VDD_CPU_GPU_CV", 5048, 153),
                          **hwmon_channel(3, "VDD_SOC", 5056, 282),
                          f"{HW}/in7_label": "sum of shunt voltages", f"{HW}/in7_input": 1560})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    return tmp_path


def test_hwmon_uses_the_input_rail_alone(orin_nx):
    sensor = ina3221_hwmon.create(EnergyConfig(), None)
    assert [c.label for c in sensor.rails] == ["VDD_IN"]
    assert sensor.coverage == "module_input"
    assert sensor.read_power_w() == pytest.approx(5.072 * 1.012)
    set_file(orin_nx, f"{HW}/curr1_input", 2000)
    assert sensor.read_power_w() == pytest.approx(5.072 * 2.0)


def test_hwmon_agx_sums_module_rails_but_not_the_one_inside_vin_sys(tmp_path, monkeypatch):
    hw2 = "/sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4"
    write_tree(tmp_path, {**hwmon_channel(1, "VDD_GPU_SOC", 5000, 641),
                          **hwmon_channel(2, "VDD_CPU_CV", 5000, 881),
                          **hwmon_channel(3, "VIN_SYS_5V0", 5000, 953),
                          **hwmon_channel(1, "VDDQ_VDD2_1V8AO", 5000, 100, hw=hw2),
                          **hwmon_channel(2, "NC", 0, 0, hw=hw2)})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = ina3221_hwmon.create(EnergyConfig(), None)
    assert sensor.coverage == "module_rails"
    assert sorted(c.label for c in sensor.rails) == ["VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"]
    assert sensor.read_power_w() == pytest.approx(5.0 * (0.641 + 0.881 + 0.953))
    assert any(n.startswith("leaves out VDDQ_VDD2_1V8AO: already included in VIN_SYS_5V0")
               for n in sensor.notes)
    assert "leaves out NC: unconnected channel" in sensor.notes


def test_hwmon_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="no INA3221/INA238 hwmon rails"):
        ina3221_hwmon.create(EnergyConfig(), None)


def test_iio_nano_layout(tmp_path, monkeypatch):
    dev = "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    write_tree(tmp_path, {f"{dev}/rail_name_0": "POM_5V_IN", f"{dev}/in_power0_input": 2345,
                          f"{dev}/rail_name_1": "POM_5V_GPU", f"{dev}/in_power1_input": 120,
                          f"{dev}/rail_name_2": "POM_5V_CPU", f"{dev}/in_power2_input": 800})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = ina3221_iio.create(EnergyConfig(), None)
    assert sensor.coverage == "module_input"
    assert sensor.read_power_w() == pytest.approx(2.345)  # GPU/CPU rails are inside POM_5V_IN


def test_iio_agx_xavier_sums_its_six_rails(tmp_path, monkeypatch):
    d1 = "/sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    d2 = "/sys/bus/i2c/drivers/ina3221x/1-0041/iio:device1"
    # rail powers of the jetson_stats AGX Xavier capture line (mW)
    rails = {d1: [("GPU", 1155), ("CPU", 385), ("SOC", 2502)],
             d2: [("CV", 0), ("VDDRQ", 192), ("SYS5V", 2692)]}
    write_tree(tmp_path, {f"{d}/{f}{n}{sfx}": v for d, rs in rails.items()
                          for n, (label, mw) in enumerate(rs)
                          for f, sfx, v in (("rail_name_", "", label),
                                            ("in_power", "_input", mw))})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = ina3221_iio.create(EnergyConfig(), None)
    assert sensor.coverage == "module_rails" and sensor.read_power_w() == pytest.approx(6.926)


def test_iio_agx_xavier_missing_rail_is_refused(tmp_path, monkeypatch):
    d1 = "/sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    write_tree(tmp_path, {f"{d1}/rail_name_0": "GPU", f"{d1}/in_power0_input": 1000,
                          f"{d1}/rail_name_1": "CPU", f"{d1}/in_power1_input": 2000})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="rail SOC, CV, VDDRQ, SYS5V not found"):
        ina3221_iio.create(EnergyConfig(), None)


def test_iio_unknown_rails_are_refused_not_summed(tmp_path, monkeypatch):
    dev = "/sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    write_tree(tmp_path, {f"{dev}/rail_name_0": "VDD_FOO", f"{dev}/in_power0_input": 1000,
                          f"{dev}/rail_name_1": "VDD_BAR", f"{dev}/in_power1_input": 2000})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="match no documented Jetson board") as e:
        ina3221_iio.create(EnergyConfig(), None)
    assert "jetson_rails.py" in e.value.fix


@pytest.mark.parametrize("fixture,rails,total,coverage", [
    ("tegrastats_nano.txt", {"POM_5V_IN": 1.022, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.204},
     1.022, "module_input"),
    ("tegrastats_orin_nx.txt", {"VDD_IN": 5.299, "VDD_CPU_GPU_CV": 0.773, "VDD_SOC": 1.424},
     5.299, "module_input"),
    ("tegrastats_agx_orin.txt",
     {"VDD_GPU_SOC": 3.205, "VDD_CPU_CV": 4.405, "VIN_SYS_5V0": 4.767},
     3.205 + 4.405 + 4.767, "module_rails"),
    ("tegrastats_agx_orin_3values.txt",
     {"VDD_GPU_SOC": 5.139, "VDD_CPU_CV": 3.268, "VIN_SYS_5V0": 5.5}, 5.139 + 3.268 + 5.5,
     "module_rails"),
])
def test_tegrastats_parser_variants(fixture, rails, total, coverage):
    line = fixture_text(fixture).strip()
    parsed = tegrastats.parse_rails_w(line)
    assert parsed == pytest.approx(rails)  # RAM 1546/3964MB and SWAP are not rails
    watts, plan = tegrastats.total_w(parsed)
    assert watts == pytest.approx(total) and plan.coverage == coverage


def test_tegrastats_takes_the_first_value_not_the_average():
    parsed = tegrastats.parse_rails_w("VDD_IN 7000mW/5000mW VDD_SOC 1000/900/800")
    assert parsed == {"VDD_IN": 7.0, "VDD_SOC": 1.0}


def test_tegrastats_tool_reader(tmp_path, monkeypatch):
    line = fixture_text("tegrastats_orin_nx.txt").strip()
    fake_tool(tmp_path / "bin", "tegrastats",
              f'[ "$1" = "--interval" ] || exit 3\nwhile true; do echo "{line}"; sleep 0.05; done\n')
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    sensor = tegrastats.create(EnergyConfig(rate_hz=20), None)
    try:
        assert sensor.read_power_w() == pytest.approx(5.299)
        assert sensor.coverage == "module_input" and sensor.interval_ms == 100
    finally:
        sensor.close()


def test_tegrastats_that_dies_is_an_error(tmp_path, monkeypatch):
    line = fixture_text("tegrastats_nano.txt").strip()
    fake_tool(tmp_path / "bin", "tegrastats", f'echo "{line}"\n')  # one line, then exits
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    sensor = tegrastats.create(EnergyConfig(rate_hz=20), None)
    assert sensor.read_power_w() == pytest.approx(1.022)
    sensor.stream.max_age_s = 0.2
    time.sleep(0.3)
    with pytest.raises(SensorProblem, match="exited"):
        sensor.read_power_w()
    sensor.close()


def test_tegrastats_missing_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SensorProblem, match="not on PATH"):
        tegrastats.create(EnergyConfig(), None)
