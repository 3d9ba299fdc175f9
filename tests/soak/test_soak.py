"""The soak workload on a scripted device: throttle onset, slow-down, drift, battery figures."""
from __future__ import annotations

import pytest

from harness.errors import ConfigError, HarnessError
from harness.schema import Node
from harness.workloads import default_counts, is_speed, soak

from soak_fakes import MHZ_FAST, MHZ_SLOW, ClockedBackend, Ctx, FakeClock, ScriptedDevice, ScriptedSampler

T0 = 1000.0


def config(**kw) -> soak.Config:
    return soak.Config.from_node(Node({"name": "soak", "kind": "soak", **kw}, "matrix.yaml",
                                      "workloads[0]"))


@pytest.fixture
def sysroot(tmp_path, monkeypatch):
    root = tmp_path / "sys-root"
    root.mkdir()
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(root))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # no real vcgencmd / termux tool leaks in
    return root


def soak_run(device: ScriptedDevice, cfg: soak.Config, power=None, **backend_kw):
    clock = FakeClock(T0, device)
    sampler = ScriptedSampler(clock, T0 - 0.5, power) if power else None
    backend = ClockedBackend(clock, **backend_kw)
    return soak.run(backend, cfg, Ctx(sampler=sampler), clock=clock)


def windows(result):
    return [s for s in result.samples if s["kind"] == "soak_window"]


def test_throttle_onset_at_the_scripted_time(sysroot):
    dev = ScriptedDevice(sysroot, T0, throttle_at_s=3.1)
    res = soak_run(dev, config(duration_s=8, window_s=1, state_poll_s=0.25))
    onset = res.metrics["soak_time_to_throttle_s"]
    assert 3.1 <= onset < 3.1 + 0.25  # the first poll after the scripted step
    assert onset == pytest.approx(3.25)
    w = windows(res)
    assert [x["throttled"] for x in w[:3]] == [False] * 3 and all(x["throttled"] for x in w[4:])
    assert "policy0 max frequency" in " ".join(w[4]["throttle_reasons"])
    assert w[0]["cpu_freq_hz"] == MHZ_FAST * 1e6 and w[5]["cpu_max_freq_hz"] == MHZ_SLOW * 1e6
    temps = [x["max_temp_c"] for x in w]
    assert temps == sorted(temps) and temps[-1] > temps[0] + 10  # the zone heats
    assert any("throttled after 3.2 s" in m for m in res.warnings)
    assert res.metrics["soak_throttled_fraction"] == pytest.approx(len(w[3:]) / len(w))


def test_sustained_ratio_and_energy_drift_follow_the_slow_down(sysroot):
    """The scripted backend decodes at clock/2400 MHz of its speed; power falls from 5 to 4 W at
    the step: sustained/burst = 1500/2400 and J/token rises by (4/0.625)/5 - 1 = 28%."""
    dev = ScriptedDevice(sysroot, T0, throttle_at_s=4.0)
    cfg = config(duration_s=12, window_s=1, state_poll_s=0.5, compare_windows=3)
    res = soak_run(dev, cfg, power=lambda t: 4.0 if dev.throttled(t) else 5.0, prefill_s=0.0)
    m = res.metrics
    assert m["soak_burst_tokens_per_s"] == pytest.approx(20.0, rel=0.03)
    assert m["soak_sustained_tokens_per_s"] == pytest.approx(20.0 * MHZ_SLOW / MHZ_FAST, rel=0.03)
    assert m["soak_sustained_ratio"] == pytest.approx(MHZ_SLOW / MHZ_FAST, rel=0.05)
    assert m["soak_energy_per_token_drift"] == pytest.approx((4.0 / 0.625) / 5.0 - 1, rel=0.05)
    w = windows(res)
    assert w[0]["power_w"] == pytest.approx(5.0) and w[-1]["power_w"] == pytest.approx(4.0)
    assert m["soak_time_to_throttle_s"] == pytest.approx(4.0)


def test_vcgencmd_on_path_marks_the_onset(sysroot, tmp_path):
    """A Pi: the firmware throttles without touching cpufreq; vcgencmd's bits say so."""
    fake = tmp_path / "bin" / "vcgencmd"
    fake.write_text(f"#!/bin/sh\nread line < {sysroot / 'vcgencmd_state'}\nprintf '%s\\n' \"$line\"\n")
    fake.chmod(0o755)
    dev = ScriptedDevice(sysroot, T0, vcgencmd_at_s=2.0)
    res = soak_run(dev, config(duration_s=4, window_s=1, state_poll_s=0.5))
    assert res.metrics["soak_time_to_throttle_s"] == pytest.approx(2.0)
    assert "vcgencmd" in " ".join(windows(res)[2]["throttle_reasons"])
    assert not windows(res)[1]["throttled"]


def test_no_throttle_gives_null_onset_and_ratio_near_one(sysroot):
    res = soak_run(ScriptedDevice(sysroot, T0), config(duration_s=6, window_s=1, state_poll_s=0.5))
    assert res.metrics["soak_time_to_throttle_s"] is None
    assert res.metrics["soak_throttled_fraction"] == 0
    assert res.metrics["soak_sustained_ratio"] == pytest.approx(1.0, rel=0.1)
    assert res.metrics["soak_energy_per_token_drift"] is None  # no sampler: no power per window
    assert windows(res)[0]["power_w"] is None


def test_battery_tokens_per_percent_recovered_within_2_percent(sysroot):
    """1% every 2.1 s at a steady pace: the truth is tokens/s x 2.1 s per percent."""
    period = 2.1
    dev = ScriptedDevice(sysroot, T0, pct_period_s=period, pct_offset_s=0.7)
    res = soak_run(dev, config(duration_s=40, window_s=2, state_poll_s=0.1, answers_per_h=600),
                   tokens=10, tokens_per_s=20.0, prefill_s=0.1)
    answer_s = 0.1 + 10 / 20.0
    true_tokens_per_pct = 10 / answer_s * period
    m = res.metrics
    assert m["battery_tokens_per_pct"] == pytest.approx(true_tokens_per_pct, rel=0.02)
    assert m["battery_answers_per_pct"] == pytest.approx(period / answer_s, rel=0.02)
    assert m["battery_life_continuous_s"] == pytest.approx(100 * period, rel=0.02)
    # 600 answers/h, answers_per_pct per percent: 100% lasts 100 x answers_per_pct / 600 h
    assert m["battery_life_at_rate_s"] == pytest.approx(
        100 * (period / answer_s) / 600 * 3600, rel=0.02)
    assert m["battery_pct_timed"] >= 15
    note = res.extra["battery_note"]
    assert "capacity in steps of 1%" in note and "0.10 s" in note
    assert [w["battery_pct"] for w in windows(res)][:2] == [79, 78]


def test_battery_charging_is_refused_with_the_reason(sysroot):
    dev = ScriptedDevice(sysroot, T0, pct_period_s=1.0, status="Charging")
    res = soak_run(dev, config(duration_s=5, window_s=1, state_poll_s=0.5))
    assert res.metrics["battery_tokens_per_pct"] is None
    assert "refused" in res.extra["battery_note"] and "'Charging'" in res.extra["battery_note"]
    assert any("unplug" in w for w in res.warnings)


def test_gauge_that_does_not_move_is_refused_with_the_resolution(sysroot):
    dev = ScriptedDevice(sysroot, T0, pct_period_s=1000.0)
    res = soak_run(dev, config(duration_s=5, window_s=1, state_poll_s=0.5))
    note = res.extra["battery_note"]
    assert res.metrics["battery_answers_per_pct"] is None
    assert "did not move" in note and "80%" in note


def test_one_gauge_step_is_not_enough(sysroot):
    dev = ScriptedDevice(sysroot, T0, pct_period_s=3.0)
    res = soak_run(dev, config(duration_s=5, window_s=1, state_poll_s=0.5))
    assert res.metrics["battery_tokens_per_pct"] is None
    assert "moved once (80% -> 79%" in res.extra["battery_note"]


def test_fine_charge_counter_is_preferred_to_capacity(sysroot):
    from harness.devices.state import read_battery_gauge

    bat = sysroot / "sys/class/power_supply/battery"
    bat.mkdir(parents=True)
    for name, value in (("type", "Battery"), ("status", "Discharging"), ("capacity", 84),
                        ("charge_counter", 3194654), ("charge_full", 3800000)):
        (bat / name).write_text(f"{value}\n")
    g = read_battery_gauge()
    assert g["level_pct"] == pytest.approx(100 * 3194654 / 3800000)
    assert g["source"].endswith("charge_counter / charge_full") and g["status"] == "Discharging"


def test_queries_mode_and_too_short_a_soak(sysroot):
    dev = ScriptedDevice(sysroot, T0)
    res = soak_run(dev, config(queries=9, window_s=1, state_poll_s=0.5))
    assert res.metrics["soak_answers"] == 9 and res.tokens_out == 90
    with pytest.raises(HarnessError, match="shorter than one window"):
        soak_run(dev, config(queries=1, window_s=5, state_poll_s=0.5))


def test_config_rejects_a_soak_shorter_than_one_window():
    with pytest.raises(ConfigError, match=r"workloads\[0\]\.duration_s: a soak of 5 s is shorter "
                                          r"than one window \(10 s\)"):
        config(duration_s=5)
    with pytest.raises(ConfigError, match="state_poll_s"):
        config(window_s=1, state_poll_s=2)
    with pytest.raises(ConfigError, match="not allowed|unknown"):
        config(duration=60)
    c = config()
    assert (c.duration_s, c.window_s, c.state_poll_s, c.queries) == (600.0, 10.0, 1.0, None)


def test_registry_soak_is_a_speed_kind_run_once_without_warmup():
    assert is_speed("soak")
    assert default_counts("soak", 3, 1) == (1, 0)
    assert default_counts("generation", 3, 1) == (3, 1)
    assert default_counts("closed_book", 3, 1) == (1, 0)


def test_window_bounds_cover_the_whole_soak():
    assert soak.window_bounds(0.0, 3.4, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.4)]
    assert soak.window_bounds(0.0, 3.6, 1.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 3.6)]
    assert soak.window_bounds(0.0, 0.6, 1.0) == []
    assert soak.window_bounds(0.0, 0.4, 1.0) == []


@pytest.mark.parametrize("mode", ["power", "counter"])
def test_sampler_snapshot_is_the_running_trace_so_far(mode):
    """The soak reads the cell's running sampler per window: a snapshot is a valid trace whose
    joules agree with the analytic truth and with the trace the sampler returns at stop."""
    import time

    from harness.energy import Sampler
    from harness.energy.config import EnergyConfig, ScriptedParams
    from harness.energy.sensors import scripted

    params = ScriptedParams(base_w=5.0, amplitude_w=1.0, period_s=0.2, mode=mode)
    sensor = scripted.create(EnergyConfig(sensor="scripted", scripted=params), None)
    sampler = Sampler(sensor, 50).start()
    time.sleep(0.3)
    snap = sampler.snapshot()
    time.sleep(0.1)
    full = sampler.stop()
    assert snap.valid and snap.sample_count >= 2 and snap.end_s < full.end_s
    t0, t1 = snap.start_s, snap.end_s
    assert snap.window(t0, t1) == pytest.approx(full.window(t0, t1), rel=1e-9)
    assert snap.window(t0, t1) == pytest.approx(scripted.true_energy_j(params, t0, t1), rel=0.03)


def test_probe_reads_a_pi5_fixture_with_its_profile(tmp_path, monkeypatch):
    """The cell hands its host profile to the soak: its zones and its vcgencmd throttling rule."""
    from pathlib import Path

    from harness import devices

    root = Path(__file__).resolve().parents[1] / "fixtures" / "devices" / "raspberry-pi-5"
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(root))
    (tmp_path / "vcgencmd").write_text("#!/bin/sh\nprintf 'throttled=0x50005\\n'\n")
    (tmp_path / "vcgencmd").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = soak.DeviceProbe(devices.get_profile("raspberry-pi-5"))
    poll = probe.read(5.0)
    assert poll["temperatures_c"] == {"cpu-thermal": pytest.approx(52.35)}
    assert poll["cpufreq"][0]["freq_hz"] == 2_400_000_000
    assert any("under_voltage, throttled" in r for r in poll["throttle_reasons"])
    assert poll["battery"] is None and any(e.startswith("battery") for e in probe.errors)
