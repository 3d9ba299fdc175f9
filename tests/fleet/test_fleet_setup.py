"""`fleet setup`: one line per device; --install puts this controller's wheel on a device that
lacks edgebench, with the device's own pip, after which the device is ready."""
from __future__ import annotations

import subprocess
import sys
import sysconfig

import pytest
from fleet_lab import SSHD, Lab

from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")]


def test_setup_installs_the_controllers_wheel_where_edgebench_is_missing(tmp_path):
    # a "device" python without edgebench: a fresh venv that sees this one's dependencies only
    venv = tmp_path / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import harness"], capture_output=True, cwd=tmp_path).returncode != 0
    lab = Lab(tmp_path, names=("pi5",)).start()
    try:
        inv = lab.inventory([lab.device("pi5", python=python)])
        before = run_cli("fleet", "setup", str(inv))
        after_install = run_cli("fleet", "setup", str(inv), "--install", timeout=600)
        again = run_cli("fleet", "setup", str(inv))
    finally:
        lab.stop()
    assert before.returncode == 2 and "[pi5] not ready: " in before.stdout
    assert "edgebench is not installed there" in before.stdout
    assert after_install.returncode == 0, after_install.stdout + after_install.stderr
    assert "[pi5] installing edgebench-" in after_install.stdout
    assert again.returncode == 0 and "[pi5] ready: edgebench" in again.stdout
    assert list(tmp_path.glob("device-pi5/wheels/edgebench-*.whl"))
