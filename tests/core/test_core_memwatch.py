"""The RSS watch: the figure /proc reports, and riding on the energy sampler's tick."""
from __future__ import annotations

import time

import numpy as np
import psutil

from harness.cell import MemoryWatch
from harness.energy import EnergyConfig, Sampler
from harness.energy.config import ScriptedParams
from harness.energy.sensors import scripted


def test_rss_matches_psutil():
    m = MemoryWatch()
    a, b = m.sample(), psutil.Process().memory_info().rss
    assert abs(a - b) < 8 * 2**20


def test_while_riding_the_sampler_tick_samples_and_sees_a_transient_peak():
    watch = MemoryWatch(interval_s=0.01).start()
    sensor = scripted.create(EnergyConfig(scripted=ScriptedParams(base_w=1.0)), None)
    ticks = []
    tick = watch.ride()
    sampler = Sampler(sensor, 50, on_tick=lambda: ticks.append(tick())).start()
    watch.reset()
    base = watch.peak_bytes
    block = np.ones(64 * 2**20, dtype=np.uint8)  # touch 64 MiB
    time.sleep(0.2)
    del block
    time.sleep(0.1)
    sampler.stop()
    watch.walk()
    watch.stop()
    assert len(ticks) >= 5  # the sampler's thread took the samples
    assert watch.peak_bytes >= base + 48 * 2**20  # the transient 64 MiB was seen
