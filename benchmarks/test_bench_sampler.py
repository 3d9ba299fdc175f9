"""Sampler overhead: process CPU seconds per wall second while sampling at the default rate.

Sampling must not disturb what it measures. The main thread sleeps while the sampler thread
reads the sensor, so process CPU time over the window is the sampler's cost (an idle sleep of the
same length is measured too, for comparison). Run: pytest benchmarks/test_bench_sampler.py
"""
from __future__ import annotations

import time

import pytest

from harness.energy import EnergyConfig, Sampler
from harness.energy.config import ScriptedParams
from harness.energy.sensors import rapl, scripted

DEFAULT_RATE_HZ = EnergyConfig().rate_hz
WINDOW_S = 2.0


def _cpu_per_wall(fn) -> tuple[float, object]:
    c0, w0 = time.process_time(), time.monotonic()
    out = fn()
    return (time.process_time() - c0) / (time.monotonic() - w0), out


def _sample(sensor):
    sampler = Sampler(sensor, DEFAULT_RATE_HZ).start()
    time.sleep(WINDOW_S)
    return sampler.stop()


def _rapl_fixture(tmp_path, monkeypatch):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("123456789\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    return rapl.create(EnergyConfig(), None)


@pytest.mark.parametrize("sensor_kind", ["scripted_power", "rapl_sysfs_files"])
def test_sampler_cpu_overhead(benchmark, sensor_kind, tmp_path, monkeypatch):
    if sensor_kind == "rapl_sysfs_files":
        sensor = _rapl_fixture(tmp_path, monkeypatch)
        sensor.check_stuck = False  # the fixture counter does not move; only the cost matters
    else:
        sensor = scripted.create(EnergyConfig(sensor="scripted",
                                              scripted=ScriptedParams(base_w=5.0)), None)
    ratios, traces = [], []

    def run():
        ratio, trace = _cpu_per_wall(lambda: _sample(sensor))
        ratios.append(ratio)
        traces.append(trace)

    benchmark.pedantic(run, rounds=3, iterations=1)
    idle_ratio, _ = _cpu_per_wall(lambda: time.sleep(WINDOW_S))
    benchmark.extra_info.update({
        "rate_hz": DEFAULT_RATE_HZ,
        "cpu_s_per_s": max(ratios),
        "cpu_s_per_s_median": sorted(ratios)[len(ratios) // 2],
        "idle_sleep_cpu_s_per_s": idle_ratio,
        "achieved_rate_hz": min(t.achieved_rate_hz for t in traces),
    })
    assert all(t.valid for t in traces), [t.invalid_reason for t in traces]
    # the sampler must cost a small fraction of one core at the default rate
    assert max(ratios) < 0.05
