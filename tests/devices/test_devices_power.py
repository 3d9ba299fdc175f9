"""Power modes: nvpmodel (ids from /etc/nvpmodel.conf) and CPU governors, set and read back."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import devices, sysfs
from harness.errors import HarnessError

ORIN_SUPER = {0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}


def test_modes_come_from_the_devices_nvpmodel_conf(root):
    root("jetson-orin-nano")
    modes = devices.nvpmodel_modes(devices.get_profile("jetson-orin-nano"))
    assert [(m.id, m.name) for m in modes] == sorted(ORIN_SUPER.items())


def test_profile_modes_used_without_conf(root):
    root("jetson-agx-orin")
    modes = devices.nvpmodel_modes(devices.get_profile("jetson-agx-orin"))
    assert [(m.id, m.name) for m in modes] == [(0, "MAXN"), (1, "15W"), (2, "30W"), (3, "50W")]


def test_read_power_mode_nvpmodel(root, tools, tmp_path):
    root("jetson-orin-nano")
    tools.nvpmodel(ORIN_SUPER, 2, tmp_path)
    assert devices.read_power_mode(devices.get_profile("jetson-orin-nano")) == "MAXN_SUPER"


def test_set_power_mode_uses_conf_id_and_reads_back(root, tools, tmp_path):
    root("jetson-orin-nano")
    tools.nvpmodel(ORIN_SUPER, 2, tmp_path)
    p = devices.get_profile("jetson-orin-nano")
    devices.set_power_mode(p, "25w")  # names are case-insensitive; 25W exists only in the conf
    assert (tmp_path / "nvpmodel_mode").read_text() == "1"
    assert devices.read_power_mode(p) == "25W"
    devices.set_power_mode(p, "3")  # an id works too
    assert devices.read_power_mode(p) == "7W"


def test_set_power_mode_refused_when_not_root(root, tools, tmp_path):
    root("jetson-orin-nano")
    tools.nvpmodel(ORIN_SUPER, 2, tmp_path, set_rc=1,
                   set_stderr="NVPM ERROR: failed to write: Permission denied")
    with pytest.raises(HarnessError) as e:
        devices.set_power_mode(devices.get_profile("jetson-orin-nano"), "15W")
    assert "sudo nvpmodel -m 0" in str(e.value)


def test_set_power_mode_detects_a_mode_that_did_not_take(root, tools, tmp_path):
    root("jetson-orin-nano")
    tools.output("nvpmodel", "NV Power Mode: MAXN_SUPER\n2\n")  # accepts -m but never changes
    with pytest.raises(HarnessError, match="reports 'MAXN_SUPER'.*reboot"):
        devices.set_power_mode(devices.get_profile("jetson-orin-nano"), "7W")


def test_set_power_mode_without_nvpmodel_tool(root, tools):
    root("jetson-agx-orin")
    with pytest.raises(HarnessError, match="nvpmodel not found on PATH"):
        devices.set_power_mode(devices.get_profile("jetson-agx-orin"), "MAXN")


def test_unknown_mode_lists_the_valid_ones(root):
    root("jetson-orin-nano")
    with pytest.raises(HarnessError) as e:
        devices.set_power_mode(devices.get_profile("jetson-orin-nano"), "turbo")
    msg = str(e.value)
    assert "'turbo' is not available on 'jetson-orin-nano'" in msg
    assert "15W, 25W, MAXN_SUPER, 7W, schedutil" in msg


def test_profile_without_modes(root):
    root("android")
    with pytest.raises(HarnessError, match="has no power modes"):
        devices.set_power_mode(devices.get_profile("pixel"), "performance")
    assert devices.read_power_mode(devices.get_profile("pixel")) is None


def _governors(root_dir: Path) -> list[str]:
    return [(root_dir / "sys/devices/system/cpu/cpufreq" / p / "scaling_governor").read_text().strip()
            for p in ("policy0", "policy4")]


def test_set_governor_writes_every_policy(tree):
    root_dir = tree("jetson-orin-nano")
    p = devices.get_profile("jetson-orin-nano")
    devices.set_power_mode(p, "performance")
    assert _governors(root_dir) == ["performance", "performance"]
    assert devices.read_power_mode(p, "performance") == "performance"


def test_mixed_governors_read_back_as_mixed(tree):
    root_dir = tree("jetson-orin-nano")
    (root_dir / "sys/devices/system/cpu/cpufreq/policy4/scaling_governor").write_text("powersave\n")
    assert devices.read_power_mode(devices.get_profile("jetson-orin-nano"), "schedutil") == "mixed"


def test_governor_not_offered_by_the_driver(tree):
    tree("laptop-intel")  # intel_pstate: performance powersave only
    p = devices.get_profile("laptop-x86-intel")
    from dataclasses import replace
    p2 = replace(p, power_modes=devices.PowerModes(governors=("schedutil",)))
    with pytest.raises(HarnessError, match="'schedutil' is not available.*performance, powersave"):
        devices.set_power_mode(p2, "schedutil")


def test_governor_permission_denied_says_how_to_fix(tree, monkeypatch):
    tree("raspberry-pi-5")
    real_path = sysfs.path

    class ReadOnly(type(real_path("/"))):
        def write_text(self, *a, **k):
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sysfs, "path", lambda p: ReadOnly(real_path(p)))
    with pytest.raises(HarnessError) as e:
        devices.set_power_mode(devices.get_profile("raspberry-pi-5"), "performance")
    assert "needs root" in str(e.value) and "sudo tee" in str(e.value)


def test_governor_on_a_machine_without_cpufreq(root):
    root("server-amd")
    p = devices.get_profile("laptop-x86-amd")
    with pytest.raises(HarnessError, match="no cpufreq driver"):
        devices.set_power_mode(p, "performance")
