"""`meter serve`: rolling samples of the scripted sensor, window energies over HTTP, clock checks."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.energy.config import EnergyConfig, ScriptedParams
from harness.energy.sensors.scripted import create, true_energy_j
from harness.errors import HarnessError
from harness.meter.client import MeterClient
from harness.meter.rolling import RollingSampler
from harness.meter.server import MeterServer
from tests.conftest import REPO

PARAMS = ScriptedParams(base_w=5.0, amplitude_w=2.0, period_s=0.37)


def sampler(mode: str = "power", rate_hz: float = 50.0, retention_s: float = 60.0) -> RollingSampler:
    sensor = create(EnergyConfig(sensor="scripted", scripted=ScriptedParams(
        PARAMS.base_w, PARAMS.amplitude_w, PARAMS.period_s, mode=mode)), None)
    return RollingSampler(sensor, rate_hz, retention_s).start()


@pytest.mark.parametrize("mode", ["power", "counter"])
def test_a_past_window_is_within_1_percent_of_the_truth(mode):
    s = sampler(mode)
    try:
        t0 = time.monotonic()
        time.sleep(0.6)
        t1 = time.monotonic()
        w = s.energy(t0, t1)  # asked right away: waits for the sample past t1
    finally:
        s.stop()
    assert w.valid and w.sensor["method"] == "scripted"
    assert w.energy_j == pytest.approx(true_energy_j(PARAMS, t0, t1), rel=0.01)


def test_windows_the_meter_cannot_cover_are_invalid_with_a_reason():
    s = sampler(retention_s=0.5)
    try:
        time.sleep(0.8)
        now = time.monotonic()
        future = s.energy(now + 5, now + 6)
        old = s.energy(now - 0.75, now - 0.6)
    finally:
        s.stop()
    assert not future.valid and "future" in future.invalid_reason and future.energy_j is None
    assert not old.valid and "oldest sample" in old.invalid_reason


def test_a_failing_sensor_invalidates_the_windows_it_touches():
    sensor = create(EnergyConfig(sensor="scripted", scripted=ScriptedParams(
        5.0, fail_after_s=0.3)), None)
    s = RollingSampler(sensor, 50.0).start()
    try:
        t0 = time.monotonic()
        time.sleep(0.6)
        w = s.energy(t0 + 0.1, time.monotonic())
    finally:
        s.stop()
    assert not w.valid and w.energy_j is None


def test_the_device_gets_server_energy_for_its_monotonic_window_over_http():
    server = MeterServer(sampler(), "127.0.0.1", 0).start()
    try:
        client = MeterClient(server.url)
        offset = client.check_clock()
        t0 = time.monotonic()
        time.sleep(0.5)
        t1 = time.monotonic()
        fields = client.window_energy(t0, t1)
        prov = client.provenance()
    finally:
        server.close()
    # one host: the same monotonic clock, so the device can compute the truth itself
    assert abs(offset.offset_s) < 0.05 and offset.samples == 8
    assert fields["server_energy_valid"] is True
    assert fields["server_energy_j"] == pytest.approx(true_energy_j(PARAMS, t0, t1), rel=0.01)
    assert fields["server_energy_scripted_true_j"] == pytest.approx(true_energy_j(PARAMS, t0, t1),
                                                                   rel=0.01)
    assert prov["method"] == "scripted" and prov["clock_offset"]["offset_s"] == offset.offset_s


def test_a_meter_that_goes_away_gives_null_server_energy_not_a_failure():
    server = MeterServer(sampler(), "127.0.0.1", 0).start()
    client = MeterClient(server.url, timeout_s=2.0)
    client.check_clock()
    server.close()
    fields = client.window_energy(time.monotonic() - 1, time.monotonic())
    assert fields["server_energy_j"] is None and fields["server_energy_valid"] is False
    assert "meter serve" in fields["server_energy_invalid_reason"]


def test_an_unreachable_meter_is_refused_with_the_fix():
    with pytest.raises(HarnessError, match="meter serve"):
        MeterClient("http://127.0.0.1:9", timeout_s=1.0).check_clock()


def test_bad_window_queries_get_400():
    server = MeterServer(sampler(), "127.0.0.1", 0).start()
    try:
        for q in ("t0_s=5", "t0_s=10&t1_s=5", "t0_s=nan&t1_s=1"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"{server.url}/energy?{q}", timeout=5)
            assert e.value.code == 400
    finally:
        server.close()


def test_meter_serve_command_runs_and_stops(tmp_path):
    cfg = tmp_path / "energy.yaml"
    cfg.write_text("energy: {sensor: scripted, rate_hz: 20, scripted: {base_w: 7}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "harness", "meter", "serve", "--port", "0",
                             "--energy-config", str(cfg)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "scripted (scripted" in line and "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        info = json.loads(urllib.request.urlopen(f"{url}/info", timeout=5).read())
        assert info["sensor"]["method"] == "scripted" and info["rate_hz"] == 20
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_meter_serve_refuses_a_bad_sensor_with_exit_2():
    r = subprocess.run([sys.executable, "-m", "harness", "meter", "serve", "--sensor", "bogus"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--sensor bogus" in r.stderr


@pytest.mark.parametrize("ahead_s", [0.3, -0.25])
def test_a_server_clock_off_by_a_known_amount_still_gets_the_right_window(ahead_s):
    """The device's monotonic window goes out as the meter's wall-clock time (offset measured)."""
    server = MeterServer(sampler(), "127.0.0.1", 0, wall_clock=lambda: time.time() + ahead_s).start()
    try:
        client = MeterClient(server.url)
        offset = client.check_clock()
        t0 = time.monotonic()
        time.sleep(0.4)
        t1 = time.monotonic()
        fields = client.window_energy(t0, t1)
    finally:
        server.close()
    assert offset.offset_s == pytest.approx(ahead_s, abs=0.02)
    assert fields["server_energy_j"] == pytest.approx(true_energy_j(PARAMS, t0, t1), rel=0.01)


def test_a_server_clock_beyond_the_limit_is_refused():
    server = MeterServer(sampler(), "127.0.0.1", 0, wall_clock=lambda: time.time() + 2.0).start()
    try:
        with pytest.raises(HarnessError, match="over the 400 ms limit"):
            MeterClient(server.url).check_clock()
    finally:
        server.close()
