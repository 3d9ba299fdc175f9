"""Faults of a fleet run against real OpenSSH servers: a device dropping off mid-cell and coming
back, the controller SIGKILLed and resumed, and devices that cannot start (one line each)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_lab import SSHD, Lab, tiny_fleet_matrix
from fleet_sshd import free_port, make_key

from harness.store import load_run
from tests.conftest import REPO, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.faults,
              pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path).start()
    yield lab
    lab.stop()


def _events(fleet: Path) -> list[dict]:
    path = fleet / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start_fleet(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "fleet", "run", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fleet_dir(out: Path) -> Path | None:
    found = [p for p in out.glob("fleet-*")] if out.exists() else []
    return found[0] if found else None


def _cell_child_running(workdir: Path) -> bool:
    """The device's cell process has started (a .running mark in its run folder)."""
    return any(workdir.glob("runs/*/.running/*"))


def test_device_lost_mid_cell_is_retried_when_it_returns(lab, tmp_path):
    inv = lab.inventory([lab.device("pi5"), lab.device("orin")])
    m = tiny_fleet_matrix(tmp_path, ["raspberry-pi-5", "jetson-orin-nano"])
    proc = _start_fleet(str(inv), str(m), "--output-dir", str(tmp_path / "out"))
    try:
        _wait_for(lambda: _cell_child_running(tmp_path / "device-pi5"), 240, "pi5's cell to start")
        lab.servers["pi5"].kill()  # the device drops off while it measures
        time.sleep(2)
        lab.servers["pi5"].start()  # ... and comes back
        out, err = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    fleet = _fleet_dir(tmp_path / "out")
    ends = [e for e in _events(fleet) if e["event"] == "cell_end"]
    pi5 = [(e["attempt"], e["status"], e["final"]) for e in ends if e["device"] == "pi5"]
    assert pi5 == [(1, "device_lost", False), (2, "ok", True)], pi5
    assert [e["status"] for e in ends if e["device"] == "orin"] == ["ok"]  # the other went on
    assert "[pi5] back" in err
    (pulled,) = (fleet / "runs").glob("*-pi5")
    run = load_run(pulled)
    assert len(run.summaries) == 1 and len(run.repetitions) == 1  # the retried attempt counts


def test_controller_sigkilled_then_resumed_reruns_no_finished_cell(lab, tmp_path):
    inv = lab.inventory([lab.device("orin")])
    m = tiny_fleet_matrix(tmp_path, ["jetson-orin-nano"], workloads=2)
    out = tmp_path / "out"
    proc = _start_fleet(str(inv), str(m), "--output-dir", str(out))
    try:
        def first_done() -> bool:
            fleet = _fleet_dir(out)
            return bool(fleet) and any(e["event"] == "cell_end" and e["status"] == "ok"
                                       for e in _events(fleet))
        _wait_for(first_done, 300, "the first cell to end")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    fleet = _fleet_dir(out)
    (first,) = [e["cell_id"] for e in _events(fleet) if e["event"] == "cell_end"]
    r = run_cli("fleet", "run", "--resume", str(fleet), timeout=480)
    assert r.returncode == 0, r.stderr
    assert "1 already finished" in r.stderr
    events = _events(fleet)
    starts = [e["cell_id"] for e in events if e["event"] == "cell_start"]
    assert starts.count(first) == 1  # never started again
    (pulled,) = (fleet / "runs").glob("*-orin")
    run = load_run(pulled)
    assert len(run.summaries) == 2
    attempts = {r["attempt"] for r in run.repetitions if r["cell_id"] == first}
    all_reps = [x for x in map(json.loads, (pulled / "records.jsonl").read_text().splitlines())
                if x.get("record_type") == "repetition" and x["cell_id"] == first]
    assert len(attempts) == 1 and len(all_reps) == 1  # measured once, pulled once


def _fakes(tmp: Path) -> Path:
    """A sitecustomize for a device's python: an older edgebench, a skewed clock, a full disk."""
    folder = tmp / "fakes"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import os, time, shutil, collections\n"
        "if os.environ.get('FAKE_VERSION'):\n"
        "    import harness; harness.__version__ = os.environ['FAKE_VERSION']\n"
        "if os.environ.get('FAKE_SKEW_S'):\n"
        "    _t = time.time; _s = float(os.environ['FAKE_SKEW_S']); time.time = lambda: _t() + _s\n"
        "if os.environ.get('FAKE_FREE_BYTES'):\n"
        "    _u = collections.namedtuple('usage', 'total used free')\n"
        "    shutil.disk_usage = lambda p: _u(10**9, 10**9, int(os.environ['FAKE_FREE_BYTES']))\n")
    return folder


def test_devices_that_cannot_start_one_line_each_exit_2(tmp_path):
    lab = Lab(tmp_path, names=("pi5",)).start()
    try:
        fakes = str(_fakes(tmp_path))
        other_key = tmp_path / "otherkey"
        make_key(other_key)
        d = lab.device
        devices = [
            d("pi5", name="old", env={"PYTHONPATH": fakes, "FAKE_VERSION": "0.0.9"}),
            d("pi5", name="gone", port=free_port()),
            d("pi5", name="badkey", key=str(other_key)),
            d("pi5", name="nopython", python="/nonexistent/python3"),
            d("pi5", name="skewed", env={"PYTHONPATH": fakes, "FAKE_SKEW_S": "2.5"}),
            d("pi5", name="full", env={"PYTHONPATH": fakes, "FAKE_FREE_BYTES": "1000"}),
        ]
        inv = lab.inventory(devices)
        m = tiny_fleet_matrix(tmp_path, ["raspberry-pi-5"])
        r = run_cli("fleet", "run", str(inv), str(m), "--output-dir", str(tmp_path / "out"), timeout=120)
    finally:
        lab.stop()
    assert r.returncode == 2, r.stderr
    lines = {line.split("]")[0][1:]: line for line in r.stderr.splitlines() if line.startswith("[")}
    assert "edgebench 0.0.9 on the device" in lines["old"] and "fleet setup --install" in lines["old"]
    assert "cannot reach 127.0.0.1" in lines["gone"]
    assert "refused the key" in lines["badkey"]
    assert "python '/nonexistent/python3' not found" in lines["nopython"]
    assert "clock differs" in lines["skewed"] and "+2500 ms" in lines["skewed"]
    assert "disk full" in lines["full"]
    assert all(v.startswith(f"[{k}] cannot start: ") for k, v in lines.items()) and len(lines) == 6
    assert "no device of" in r.stderr and "nothing was run" in r.stderr
    assert not list((tmp_path / "device-pi5").glob("runs/*"))
