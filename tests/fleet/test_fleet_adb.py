"""The adb transport against a stand-in `adb` (first on PATH) that forwards to a real OpenSSH
server playing the phone's Termux sshd: a run through it, the battery warning, the subset of adb
used, and the forward removed at the end."""
from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from fleet_lab import SSHD, Lab, tiny_fleet_matrix

from harness.fleet.transports.adb import parse_dumpsys_battery
from harness.store import load_run
from tests.conftest import run_cli

FAKE = Path(__file__).with_name("fake_adb.py")


def test_dumpsys_battery_is_read_as_charging_or_not():
    charging = parse_dumpsys_battery("  AC powered: false\n  USB powered: true\n  status: 2\n  level: 55\n")
    assert charging == {"source": "adb dumpsys battery", "status": "Charging", "charging": True,
                        "on_external_power": True, "level_pct": 55}
    unplugged = parse_dumpsys_battery("  AC powered: false\n  USB powered: false\n  status: 3\n")
    assert unplugged["charging"] is False and unplugged["on_external_power"] is False


@pytest.mark.e2e
@pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")
def test_a_phone_over_adb_forward_to_termux_sshd(tmp_path):
    lab = Lab(tmp_path, names=("pi5",)).start()
    server = lab.servers["pi5"]
    bin_dir, state = tmp_path / "bin", tmp_path / "adb-state"
    bin_dir.mkdir()
    state.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    serial = "192.168.1.30:5555"
    # the key of Termux's sshd is known under its alias: the forwarded port changes every time
    host_line = server.known_hosts.read_text().split(" ", 1)[1]
    known = tmp_path / "known_hosts_termux"
    known.write_text(f"termux-{serial} {host_line}")
    phone = lab.device("pi5", name="pixel-01", profile="android-generic")
    for k in ("host", "port"):
        phone.pop(k)
    phone.update(transport="adb", serial=serial, termux_port=8022, known_hosts=str(known))
    inv = lab.inventory([phone])
    m = tiny_fleet_matrix(tmp_path, ["android-generic"], energy="{sensor: auto, rate_hz: 20, baseline_s: 0.1}")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_ADB_DIR": str(state),
           "FAKE_ADB_SSHD_PORT": str(server.port), "FAKE_ADB_BATTERY": "charging"}
    try:
        r = run_cli("fleet", "run", str(inv), str(m), "--output-dir", str(tmp_path / "out"), env=env)
    finally:
        for pid_file in state.glob("forward-*.pid"):  # stop any relay left behind, by its pid
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
        lab.stop()
    assert r.returncode == 0, r.stderr
    assert "[pixel-01] warning: reports charging (Charging)" in r.stderr
    (fleet,) = (tmp_path / "out").glob("fleet-*")
    (pulled,) = (fleet / "runs").glob("*-pixel-01")
    run = load_run(pulled)
    assert len(run.summaries) == 1
    assert run.manifest["fleet"]["transport"] == {"transport": "adb", "serial": serial, "termux_port": 8022,
                                                  "user": "root", "wifi": True}
    calls = (state / "adb.log").read_text().splitlines()
    used = {" ".join(c.split()[2:4]) if c.startswith("-s") else c.split()[0] for c in calls}
    assert used == {"connect", "get-state", "shell dumpsys", "forward tcp:0", "forward --remove"}
    assert not list(state.glob("forward-*.pid"))  # the forward was removed when the run ended
