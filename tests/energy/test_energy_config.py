"""The matrix's energy: block, carbon intensity, and sensor selection (auto / named / fallback)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from harness.energy import EnergyConfig, MEASURED, carbon_intensity, open_sensor
from harness.energy import carbon as carbon_mod
from harness.energy.base import SensorProblem
from harness.energy.config import CarbonConfig
from harness.errors import ConfigError, HarnessError
from harness.schema import Node

ESTIMATE = {"tdp_w": 15.0, "idle_w": 3.0, "source": "test datasheet"}


def cfg(value) -> EnergyConfig:
    return EnergyConfig.from_node(Node(value, "matrix.yaml", "energy"))


def test_defaults_when_block_is_absent():
    c = cfg(None)
    assert (c.sensor, c.rate_hz, c.baseline_s, c.require_measured) == ("auto", 20.0, 3.0, False)
    assert c.carbon == CarbonConfig()


def test_full_block_is_parsed():
    c = cfg({"sensor": "scripted", "rate_hz": 10, "baseline_s": 1.5, "require_measured": False,
             "carbon": {"country_iso_code": "ken"},
             "scripted": {"base_w": 5, "amplitude_w": 2, "period_s": 0.5, "mode": "counter"},
             "rapl": {"include_dram": True}, "usb_meter": {"port": "/dev/rfcomm0"}})
    assert c.rate_hz == 10.0 and c.carbon.country_iso_code == "KEN"
    assert c.scripted.mode == "counter" and c.scripted.amplitude_w == 2.0
    assert c.rapl_include_dram is True and c.usb_meter.port == "/dev/rfcomm0"


@pytest.mark.parametrize("value,where", [
    ({"sensor": "thermometer"}, "energy.sensor"),
    ({"rate_hz": 0}, "energy.rate_hz"),
    ({"rate": 10}, "energy.rate"),
    ({"carbon": {"country_iso_code": "KEN", "intensity_g_per_kwh": 3}}, "energy.carbon"),
    ({"carbon": {"country_iso_code": "KE"}}, "energy.carbon.country_iso_code"),
    ({"sensor": "scripted"}, "energy.scripted"),
    ({"scripted": {"base_w": 1, "amplitude_w": 2}}, "energy.scripted.amplitude_w"),
    ({"usb_meter": {"port": "/dev/x", "model": "UM99"}}, "energy.usb_meter.model"),
])
def test_bad_values_name_the_key(value, where):
    with pytest.raises(ConfigError) as e:
        cfg(value)
    assert e.value.key_path == where and e.value.file == "matrix.yaml"


def test_carbon_explicit_and_world_default():
    assert carbon_intensity(cfg({"carbon": {"intensity_g_per_kwh": 450}})) == (
        450.0, "matrix energy.carbon.intensity_g_per_kwh")
    g, source = carbon_intensity(cfg(None))
    assert g == carbon_mod.WORLD_AVERAGE_G_PER_KWH and "world average" in source


@pytest.mark.skipif(importlib.util.find_spec("codecarbon") is None, reason="needs [carbon]")
def test_carbon_country_from_codecarbon_data():
    g, source = carbon_intensity(cfg({"carbon": {"country_iso_code": "KEN"}}))
    data = json.loads((carbon_mod._codecarbon_dir() / carbon_mod.MIX_FILE).read_text())
    assert g == float(data["KEN"]["carbon_intensity"]) and "Kenya" in source
    with pytest.raises(HarnessError, match="not in codecarbon"):
        carbon_intensity(cfg({"carbon": {"country_iso_code": "XXX"}}))


def test_country_without_direct_intensity_uses_the_mix(tmp_path):
    d = tmp_path / "data" / "private_infra"
    d.mkdir(parents=True)
    (d / "global_energy_mix.json").write_text(json.dumps({"ZZZ": {
        "country_name": "Testland", "year": 2023, "total_TWh": 10.0,
        "coal_TWh": 2.5, "wind_TWh": 7.5}}))
    (d / "carbon_intensity_per_source.json").write_text(json.dumps({"coal": 1000, "wind": 20}))
    g, source = carbon_mod.country_intensity("ZZZ", data_dir=tmp_path)
    assert g == pytest.approx(0.25 * 1000 + 0.75 * 20) and "generation mix" in source


def test_country_without_codecarbon_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(carbon_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HarnessError, match=r"pip install edgebench\[carbon\]"):
        carbon_intensity(cfg({"carbon": {"country_iso_code": "KEN"}}))


def test_auto_falls_back_to_estimate_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))  # an empty machine: no sensors
    sensor = open_sensor(cfg(None), ["rapl", "ina3221_hwmon"], ESTIMATE)
    assert sensor.name == "estimate" and sensor.method == "estimated"
    assert sensor.model == "cpu-tdp-linear"
    assert "rapl" in sensor.fallback_reason and "ina3221_hwmon" in sensor.fallback_reason


def test_auto_uses_the_first_readable_sensor(monkeypatch, tmp_path):
    from energy_testkit import write_tree
    write_tree(tmp_path, {"/sys/class/powercap/intel-rapl:0/name": "package-0",
                          "/sys/class/powercap/intel-rapl:0/energy_uj": 1000,
                          "/sys/class/powercap/intel-rapl:0/max_energy_range_uj": 262143328850})
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = open_sensor(cfg({"require_measured": True}), ["ina3221_hwmon", "rapl", "estimate"],
                         ESTIMATE)
    assert sensor.name == "rapl" and sensor.method == MEASURED and sensor.fallback_reason is None


def test_require_measured_refuses_to_estimate(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="no measured energy sensor.*rapl"):
        open_sensor(cfg({"require_measured": True}), ["rapl", "estimate"], ESTIMATE)


def test_named_sensor_that_cannot_be_read_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="RAPL package zone") as e:
        open_sensor(cfg({"sensor": "rapl"}), ["estimate"], ESTIMATE)
    assert "modprobe" in e.value.fix


def test_fallback_without_estimate_figures_explains_both(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="rapl.*estimate cannot be used") as e:
        open_sensor(cfg(None), ["rapl"], None)
    assert "device profile" in e.value.fix


def test_scripted_selectable_from_the_matrix():
    c = cfg({"sensor": "scripted", "scripted": {"base_w": 4, "mode": "counter"}})
    sensor = open_sensor(c, [], None)
    assert sensor.name == "scripted" and sensor.method == "scripted" and sensor.kind == "counter"
    with pytest.raises(SensorProblem, match="require_measured"):
        open_sensor(cfg({"sensor": "scripted", "scripted": {"base_w": 4},
                         "require_measured": True}), [], None)


def test_probe_reports_ok_and_fix(monkeypatch, tmp_path):
    from energy_testkit import write_tree
    from harness.energy import probe_sensor
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    missing = probe_sensor("rapl")
    assert not missing.ok and "modprobe" in missing.fix
    write_tree(tmp_path, {"/sys/class/powercap/intel-rapl:0/name": "package-0",
                          "/sys/class/powercap/intel-rapl:0/energy_uj": 1})
    found = probe_sensor("rapl")
    assert found.ok and "measured" in found.detail and "package" in found.detail
    assert not probe_sensor("scripted").ok
