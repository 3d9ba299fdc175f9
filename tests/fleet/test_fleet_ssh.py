"""A real run across two devices, each behind its own OpenSSH server on 127.0.0.1."""
from __future__ import annotations

import json

import pytest
from fleet_lab import SSHD, Lab, tiny_fleet_matrix

from harness.store import load_run
from tests.conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SSHD is None, reason="openssh-server not installed")]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path).start()
    yield lab
    lab.stop()


def _fleet_dir(out):
    (d,) = [p for p in out.iterdir() if p.name.startswith("fleet-")]
    return d


def test_two_devices_over_ssh_one_merged_report(lab, tmp_path):
    inv = lab.inventory([lab.device("pi5"), lab.device("orin")])
    m = tiny_fleet_matrix(tmp_path, ["raspberry-pi-5", "jetson-orin-nano"])
    r = run_cli("fleet", "run", str(inv), str(m), "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    fleet = _fleet_dir(tmp_path / "out")
    assert "[pi5] ready: profile raspberry-pi-5" in r.stderr and "[orin] ready" in r.stderr
    for name, profile in (("pi5", "raspberry-pi-5"), ("orin", "jetson-orin-nano")):
        (pulled,) = (fleet / "runs").glob(f"*-{name}")
        device_copy = tmp_path / f"device-{name}" / "runs" / pulled.name
        # the pulled copy is the device's run folder byte for byte
        assert (pulled / "records.jsonl").read_bytes() == (device_copy / "records.jsonl").read_bytes()
        run = load_run(pulled)
        assert [s["device"] for s in run.summaries] == [profile] and len(run.repetitions) == 1
        meta = run.manifest["fleet"]
        assert meta["device"] == name and meta["transport"]["transport"] == "ssh"
        assert meta["transport"]["port"] == lab.servers[name].port
        assert meta["controller"]["engine"] == "local" and meta["controller"]["hostname"]
        assert meta["device_identity"]["harness_version"] and meta["profile"] == profile
        off = meta["clock_offset"]
        assert abs(off["offset_s"]) < 0.4 and off["samples"] == 8 and off["round_trip_s"] > 0
    assert (fleet / "report.html").exists()
    csv = (fleet / "report.csv").read_text()
    assert "raspberry-pi-5" in csv and "jetson-orin-nano" in csv
    events = [json.loads(line) for line in (fleet / "journal.jsonl").read_text().splitlines() if line]
    ends = [e for e in events if e["event"] == "cell_end"]
    assert sorted(e["device"] for e in ends) == ["orin", "pi5"] and all(e["status"] == "ok" for e in ends)
    # status reads the journal
    s = run_cli("fleet", "status", str(fleet))
    assert s.returncode == 0 and "pi5" in s.stdout and "1 ok" in s.stdout
