"""The integrator and the trace checks against analytic power curves (no threads, no sleeps)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.energy.trace import Trace

SENSOR = {"sensor": "t", "method": "measured", "model": None, "coverage": "package"}


def power_trace(t, p, rate_hz=20.0, **kw) -> Trace:
    return Trace(kind="power", t_s=np.asarray(t), values=np.asarray(p), nominal_rate_hz=rate_hz,
                 sensor=SENSOR, **kw)


def counter_trace(t, e, rate_hz=20.0, **kw) -> Trace:
    return Trace(kind="counter", t_s=np.asarray(t), values=np.asarray(e), nominal_rate_hz=rate_hz,
                 sensor=SENSOR, **kw)


def sine_power(t, base=5.0, amp=2.0, period=0.8):
    return base + amp * np.sin(2 * np.pi * t / period)


def sine_energy(t0, t1, base=5.0, amp=2.0, period=0.8):
    w = 2 * math.pi / period
    return base * (t1 - t0) - amp / w * (math.cos(w * t1) - math.cos(w * t0))


def jittered_times(n, rate_hz, seed=1):
    rng = np.random.default_rng(seed)
    dt = (1.0 / rate_hz) * rng.uniform(0.7, 1.3, n - 1)
    return 100.0 + np.concatenate(([0.0], np.cumsum(dt)))


def test_trapezoid_matches_linear_ramp_exactly():
    t = jittered_times(50, 20)
    p = 3.0 + 2.0 * (t - t[0])  # linear: the trapezoid rule is exact, including at edges
    tr = power_trace(t, p)
    t0, t1 = t[0] + 0.123, t[-1] - 0.321
    exact = 3.0 * (t1 - t0) + (((t1 - t[0]) ** 2) - ((t0 - t[0]) ** 2))
    assert tr.window(t0, t1) == pytest.approx(exact, rel=1e-12)


def test_trapezoid_converges_on_sine_with_uneven_timestamps():
    t = jittered_times(400, 50)
    tr = power_trace(t, sine_power(t), rate_hz=50)
    t0, t1 = t[3] + 0.01, t[385] - 0.004
    assert tr.window(t0, t1) == pytest.approx(sine_energy(t0, t1), rel=2e-3)
    coarse = power_trace(t[::10], sine_power(t[::10]), rate_hz=5)
    # a coarse trace is less exact: the error depends on the rate, which is why traces keep it
    assert abs(coarse.window(t0, t1) - sine_energy(t0, t1)) > abs(tr.window(t0, t1) -
                                                                    sine_energy(t0, t1))


def test_counter_window_interpolates_between_reads():
    t = jittered_times(60, 20)
    e = np.array([sine_energy(t[0], ti) for ti in t])
    tr = counter_trace(t, e)
    t0, t1 = (t[5] + t[6]) / 2, (t[40] + t[41]) / 2
    # between reads the counter is interpolated linearly; error is bounded by curvature
    assert tr.window(t0, t1) == pytest.approx(sine_energy(t0, t1), rel=5e-3)
    assert tr.window(t[5], t[40]) == pytest.approx(e[40] - e[5], rel=1e-12)


def test_window_outside_trace_is_refused():
    t = jittered_times(10, 20)
    tr = power_trace(t, np.full(10, 4.0))
    with pytest.raises(ValueError, match="not inside"):
        tr.window(t[0] - 0.1, t[-1])


def test_peak_and_rows():
    t = np.array([0.0, 0.05, 0.10, 0.15])
    tr = power_trace(t, [1.0, 9.0, 2.0, 1.0])
    assert tr.peak_power_w(0.0, 0.15) == 9.0
    assert tr.peak_power_w(0.1, 0.15) == 2.0
    assert tr.to_rows(3) == [(3, 0.0, 1.0), (3, 0.05, 9.0), (3, 0.1, 2.0), (3, 0.15, 1.0)]


def test_counter_power_series_spans_counter_changes():
    # a coarse counter (updates every other read): power between changes, not 0 / double
    t = np.arange(9) * 0.05
    e = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4], dtype=float) * 0.5
    tr = counter_trace(t, e)
    _, p = tr.power_series()
    assert np.allclose(p[1:], 5.0)
    assert tr.peak_power_w(t[2], t[-1]) == pytest.approx(5.0)


def test_achieved_rate_and_gaps():
    t = np.array([0.0, 0.05, 0.10, 0.30, 0.35])  # one interval of 0.2 s > 3 x 0.05 s
    tr = power_trace(t, np.ones(5))
    assert tr.gaps == 1
    assert tr.achieved_rate_hz == pytest.approx(4 / 0.35)


@pytest.mark.parametrize("values,reason", [
    ([1.0, -0.5, 1.0, 1.0], "negative"),
    ([1.0, float("nan"), 1.0, 1.0], "non-finite"),
    ([1.0, 1e6, 1.0, 1.0], "implausibly high"),
])
def test_implausible_power_readings_invalidate(values, reason):
    tr = power_trace([0.0, 0.05, 0.1, 0.15], values)
    assert not tr.valid and reason in tr.invalid_reason


def test_sparse_power_trace_is_invalid_but_counter_is_not():
    t = np.array([0.0, 0.05, 1.0, 1.05])  # 0.95 s of 1.05 s in one gap
    assert "too sparse" in power_trace(t, np.ones(4)).invalid_reason
    assert counter_trace(t, [0.0, 0.1, 2.0, 2.1]).valid  # counter differences stay exact


def test_counter_backwards_and_stuck():
    t = np.arange(5) * 0.05
    assert "backwards" in counter_trace(t, [0, 1, 2, 1.5, 3]).invalid_reason
    t = np.arange(61) * 0.05  # 3 s flat
    assert "stuck" in counter_trace(t, np.zeros(61)).invalid_reason
    assert counter_trace(t, np.zeros(61), check_stuck=False).valid


def test_read_errors_invalidate():
    tr = power_trace([0.0, 0.05], [1.0, 1.0], read_errors=["SensorError: gone"],
                     read_error_count=1)
    assert not tr.valid and "gone" in tr.invalid_reason


def test_single_sample_is_invalid():
    assert "at least 2" in power_trace([0.0], [1.0]).invalid_reason
