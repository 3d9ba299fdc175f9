"""`python -m harness devices` on fixture roots."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "devices"


def test_list_shows_every_profile(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "CORES", "THREADS", "MEMORY", "SENSORS", "POWER", "MODES"]
    for name in ("jetson-orin-nano", "raspberry-pi-5", "pixel", "linux-generic", "apple-silicon"):
        assert any(line.startswith(name + " ") for line in lines), name
    pi4 = next(line for line in lines if line.startswith("raspberry-pi-4 "))
    assert pi4.split()[1:5] == ["4", "4", "4", "GiB"]


def test_list_json(capsys):
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {d["name"]: d for d in data}
    assert by_name["jetson-nano"]["sensors"] == ["ina3221_iio", "tegrastats", "estimate"]
    assert by_name["linux-generic"]["memory_bytes"] is None


def test_detect_on_a_pi5_tree(root, tools, capsys):
    root("raspberry-pi-5")
    tools.output("vcgencmd", "throttled=0x0\n")
    assert main(["devices", "--detect"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("This machine: raspberry-pi-5\n")
    assert "Raspberry Pi 5 Model B Rev 1.0" in out
    assert "also matching (lower priority): linux-generic" in out
    # each sensor in the profile's order, with a verdict
    sensor_lines = [ln.strip() for ln in out.splitlines()
                    if ln.startswith("  ") and ln.strip()[:4] in ("ok  ", "no  ", "?   ")]
    assert [ln.split()[1].rstrip(":") for ln in sensor_lines] == ["usb_meter", "rpi5_pmic",
                                                                 "estimate"]
    assert sensor_lines[2].startswith("no  estimate: profile has no complete estimate figures")


def test_detect_json_with_state(root, tools, capsys, tmp_path):
    root("jetson-orin-nano")
    tools.nvpmodel({0: "15W", 2: "MAXN_SUPER"}, 2, tmp_path)
    assert main(["devices", "--detect", "--state", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["profile"] == "jetson-orin-nano"
    assert [s["name"] for s in rep["sensors"]] == ["ina3221_hwmon", "tegrastats", "estimate"]
    est = rep["sensors"][-1]
    assert est["ok"] is True and "estimated, never measured: tdp_w 15 W" in est["detail"]
    for s in rep["sensors"][:2]:  # no INA3221 in the tree, no tegrastats on PATH
        assert s["ok"] is False and s["detail"]
    assert rep["fallback"] == "estimate (a labelled estimate, not a measurement)"
    assert rep["state"]["nvpmodel"] == {"name": "MAXN_SUPER", "id": 2}


def test_detect_when_nothing_matches(tmp_path, monkeypatch, tools, capsys):
    import importlib
    import platform
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    det_mod = importlib.import_module("harness.devices.detect")
    fake = platform.uname_result("Windows", "pc", "10", "10.0", "AMD64")
    monkeypatch.setattr(det_mod.platform, "uname", lambda: fake)
    assert main(["devices", "--detect"]) == 1
    assert "No profile matches this machine" in capsys.readouterr().out


def test_show_unknown_profile_exits_2(capsys):
    assert main(["devices", "--show", "toaster"]) == 2
    err = capsys.readouterr().err
    assert "unknown device profile 'toaster'" in err and "raspberry-pi-5" in err


def test_show_with_state(root, tools, capsys):
    root("laptop-amd")
    assert main(["devices", "--show", "laptop-x86-amd", "--state", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"]["battery"]["charging"] is True


def test_module_entry_point_on_fixture_root(tmp_path):
    """The real command line in a subprocess, as a user on an Orin Nano would run it."""
    env = dict(os.environ, HARNESS_SYSFS_ROOT=str(FIXTURES / "jetson-orin-nano"),
               PATH=str(tmp_path))  # no device tools at all
    cp = subprocess.run([sys.executable, "-m", "harness", "devices", "--detect", "--json"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    rep = json.loads(cp.stdout)
    assert rep["profile"] == "jetson-orin-nano"
    assert rep["detection"]["facts"]["file"]["/etc/nv_tegra_release"].startswith("# R36")


def test_detect_names_the_rails_summed_and_left_out_on_agx_orin(root, tools, capsys):
    root("jetson-agx-orin")
    assert main(["devices", "--detect"]) == 0
    out = capsys.readouterr().out
    assert ("Power rails (Jetson AGX Orin): sums VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 "
            "(coverage module_rails)") in out
    assert ("  leaves out VDDQ_VDD2_1V8AO: already included in VIN_SYS_5V0 (NVIDIA's AGX Orin "
            "rail notes)") in out
    # the fixture tree has the INA3221 hwmon files: the reader opens and reads the three rails
    hwmon = next(ln for ln in out.splitlines() if "ina3221_hwmon:" in ln)
    assert hwmon.strip().startswith("ok  ") and "covers module_rails" in hwmon


def test_detect_json_rails_on_thor(root, tools, capsys):
    root("jetson-agx-thor")
    assert main(["devices", "--detect", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["profile"] == "jetson-agx-thor"
    assert rep["rails"]["summed"] == ["VIN"]
    assert [r["rail"] for r in rep["rails"]["left_out"]] == ["VDD_GPU", "VDD_CPU_SOC_MSS",
                                                             "VIN_SYS_5V0"]
    assert rep["fallback"] == "ina3221_hwmon"


def test_detect_has_no_rails_for_boards_without_a_rail_rule(root, tools, capsys):
    root("raspberry-pi-5")
    tools.output("vcgencmd", "throttled=0x0\n")
    main(["devices", "--detect", "--json"])
    assert json.loads(capsys.readouterr().out)["rails"] is None
