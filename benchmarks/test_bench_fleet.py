"""What the fleet controller costs (issue 18), against a real OpenSSH server on 127.0.0.1.

- Per-cell controller overhead: a fleet run of real cells on one device over ssh; per cell, the
  controller's time (command start to the end of the pull after it) minus the device process's
  own life (interpreter start to exit, reported by the device). That difference is the
  controller's share: starting the command over ssh, reading the progress lines, pulling the
  records, writing the journal. Target < 1 s. The device's own start (python + imports before
  the run begins) is reported beside it: it is device work, paid per cell. Marked e2e (real model).
- Pulling a run of 10,000 records (a fresh mirror) over SFTP; target < 5 s. A second pull with
  nothing new is timed too (it only lists and compares).
Run: `pytest benchmarks/test_bench_fleet.py -s` (`-m "not e2e"` for the pull alone). Figures in
docs/fleet.md.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pytest

from benchmarks.conftest import write_results_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fleet"))
from fleet_lab import SSHD, Lab, tiny_fleet_matrix  # noqa: E402

pytestmark = pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")

PULL_TARGET_S = 5.0
CELL_OVERHEAD_TARGET_S = 1.0


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path, names=("pi5",)).start()
    yield lab
    lab.stop()


def _session(lab: Lab):
    from harness.fleet.inventory import load_inventory
    from harness.fleet.session import DeviceSession

    inv = load_inventory(lab.inventory([lab.device("pi5")]))
    session = DeviceSession(inv.devices[0], "bench", {})
    session.transport.connect()
    return session


def test_pull_10000_records_over_sftp(lab, tmp_path):
    from harness.fleet.pull import pull_run
    from harness.store import load_run

    remote = write_results_table(tmp_path / "device-pi5" / "runs", 5, 5, 10, repetitions=4)
    n_records = sum(1 for _ in open(remote / "records.jsonl"))
    assert n_records == 10_000
    session = _session(lab)
    try:
        t0 = time.perf_counter()
        first = pull_run(session.transport, str(remote), tmp_path / "mirror")
        pull_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = pull_run(session.transport, str(remote), tmp_path / "mirror")
        repull_s = time.perf_counter() - t0
    finally:
        session.close()
    assert (tmp_path / "mirror" / "records.jsonl").read_bytes() == (remote / "records.jsonl").read_bytes()
    assert len(load_run(tmp_path / "mirror", expand=False).records) > 0 and again.bytes == 0
    print(f"\npull of {n_records} records ({first.bytes / 2**20:.1f} MiB) over SFTP: {pull_s:.2f} s; "
          f"pull with nothing new: {repull_s:.3f} s")
    assert pull_s < PULL_TARGET_S


def _command_round_trip_s(lab: Lab) -> float:
    """The median time to run `true` on the device: what any command costs before it starts."""
    session = _session(lab)
    times = []
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            proc = session.transport.start(["true"], session.spec.workdir, {})
            proc.close()
            list(proc.lines())
            proc.wait(30)
            times.append(time.perf_counter() - t0)
    finally:
        session.close()
    return statistics.median(times)


@pytest.mark.e2e
def test_per_cell_controller_overhead(lab, tmp_path):
    from tests.conftest import run_cli

    shell_s = _command_round_trip_s(lab)
    inv = lab.inventory([lab.device("pi5")])
    m = tiny_fleet_matrix(tmp_path, ["raspberry-pi-5"], workloads=3)
    r = run_cli("fleet", "run", str(inv), str(m), "--output-dir", str(tmp_path / "out"), "--no-report")
    assert r.returncode == 0, r.stderr
    (fleet,) = (tmp_path / "out").glob("fleet-*")
    ends = [e for e in map(json.loads, (fleet / "journal.jsonl").read_text().splitlines())
            if e["event"] == "cell_end"]
    overhead = [e["controller_s"] - e["device_process_s"] for e in ends]
    startup = [e["device_process_s"] - e["device_wall_s"] for e in ends]
    cell_s = [e["elapsed_s"] for e in ends]
    print(f"\nper-cell controller overhead over ssh on localhost: median {statistics.median(overhead):.3f} s "
          f"(each: {', '.join(f'{x:.3f}' for x in overhead)}); device-side start (python + imports) "
          f"median {statistics.median(startup):.2f} s; cells {', '.join(f'{x:.1f}' for x in cell_s)} s; "
          f"of the overhead, starting any command (sshd session + the login shell's rc files): "
          f"{shell_s:.3f} s")
    assert statistics.median(overhead) < CELL_OVERHEAD_TARGET_S
