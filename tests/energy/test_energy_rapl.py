"""RAPL through a fixture powercap tree (HARNESS_SYSFS_ROOT)."""
from __future__ import annotations

import pytest

from energy_testkit import set_file, write_tree
from harness import sysfs
from harness.energy import EnergyConfig, Sampler
from harness.energy.base import SensorProblem
from harness.energy.sensors import rapl

PC = "/sys/class/powercap"
MAX = 262143328850


@pytest.fixture
def laptop(tmp_path, monkeypatch):
    """Package, its core/uncore subzones, dram, psys (contains the package) and the mmio dup."""
    write_tree(tmp_path, {
        f"{PC}/intel-rapl:0/name": "package-0",
        f"{PC}/intel-rapl:0/energy_uj": 123456789,
        f"{PC}/intel-rapl:0/max_energy_range_uj": MAX,
        f"{PC}/intel-rapl:0:0/name": "core", f"{PC}/intel-rapl:0:0/energy_uj": 5,
        f"{PC}/intel-rapl:0:1/name": "uncore", f"{PC}/intel-rapl:0:1/energy_uj": 7,
        f"{PC}/intel-rapl:0:2/name": "dram", f"{PC}/intel-rapl:0:2/energy_uj": 1000000,
        f"{PC}/intel-rapl:0:2/max_energy_range_uj": 65532610987,
        f"{PC}/intel-rapl:1/name": "psys", f"{PC}/intel-rapl:1/energy_uj": 999999999,
        f"{PC}/intel-rapl:1/max_energy_range_uj": MAX,
        f"{PC}/intel-rapl-mmio:0/name": "package-0", f"{PC}/intel-rapl-mmio:0/energy_uj": 4242,
    })
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    return tmp_path


def test_only_package_zones_by_default(laptop):
    sensor = rapl.create(EnergyConfig(), None)
    assert [z.name for z in sensor.zones] == ["package-0"]
    assert sensor.coverage == "package" and sensor.method == "measured"
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", 123456789 + 2_500_000)
    set_file(laptop, f"{PC}/intel-rapl:1/energy_uj", 999999999 + 9_000_000)  # psys: ignored
    set_file(laptop, f"{PC}/intel-rapl-mmio:0/energy_uj", 4242 + 9_000_000)  # duplicate: ignored
    assert sensor.read_energy_j() == pytest.approx(2.5)


def test_dram_is_optional_and_added(laptop):
    sensor = rapl.create(EnergyConfig(rapl_include_dram=True), None)
    assert sorted(z.name for z in sensor.zones) == ["dram", "package-0"]
    assert sensor.coverage == "package+dram"
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", 123456789 + 1_000_000)
    set_file(laptop, f"{PC}/intel-rapl:0:2/energy_uj", 1000000 + 500_000)
    assert sensor.read_energy_j() == pytest.approx(1.5)


def test_wraparound_adds_max_energy_range(laptop):
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", MAX - 1_000_000)
    sensor = rapl.create(EnergyConfig(), None)
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", 3_000_000)  # wrapped past the range
    assert sensor.read_energy_j() == pytest.approx(4.0)
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", 4_000_000)
    assert sensor.read_energy_j() == pytest.approx(5.0)


def test_two_packages_are_summed(laptop):
    write_tree(laptop, {f"{PC}/intel-rapl:2/name": "package-1",
                        f"{PC}/intel-rapl:2/energy_uj": 10,
                        f"{PC}/intel-rapl:2/max_energy_range_uj": MAX})
    sensor = rapl.create(EnergyConfig(), None)
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", 123456789 + 1_000_000)
    set_file(laptop, f"{PC}/intel-rapl:2/energy_uj", 10 + 2_000_000)
    assert sensor.read_energy_j() == pytest.approx(3.0)


def test_permission_denied_gives_the_fix(laptop, monkeypatch):
    real = sysfs.read_text

    def root_only(p):  # chmod 000 does not stop root, so deny like the kernel does for users
        if str(p).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(sysfs.path(p)))
        return real(p)

    monkeypatch.setattr(sysfs, "read_text", root_only)
    with pytest.raises(SensorProblem, match="permission denied") as e:
        rapl.create(EnergyConfig(), None)
    assert "chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in e.value.fix
    assert "udev" in e.value.fix


def test_sampler_over_a_wrapping_counter_stays_valid(laptop):
    """A counter that wraps during a trace still integrates to the true joules."""
    set_file(laptop, f"{PC}/intel-rapl:0/energy_uj", MAX - 100_000)
    sensor = rapl.create(EnergyConfig(), None)
    values = iter([MAX - 50_000, 50_000, 150_000])
    orig = rapl.Zone.read_raw
    rapl.Zone.read_raw = lambda self: next(values)
    try:
        sampler = Sampler(sensor, rate_hz=0.5).start()  # slow: only the start/stop reads happen
        trace = sampler.stop()
    finally:
        rapl.Zone.read_raw = orig
    assert trace.valid, trace.invalid_reason
    assert trace.values[-1] == pytest.approx((50_000 + 50_000) / 1e6)


def test_no_powercap_means_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    with pytest.raises(SensorProblem, match="no RAPL package zone"):
        rapl.create(EnergyConfig(), None)
