"""Uncertainty arithmetic (harness.energy.uncertainty) against hand-computed cases.

Every expected number below is worked out by hand in the comment above it (sqrt 3 = 1.7320508).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.energy import account
from harness.energy import uncertainty as u
from harness.energy.trace import Trace
from harness.energy.uncertainty import Accuracy

INA = Accuracy(gain_limit=0.005, offset_limit_w=0.0, update_interval_s=0.0, source="test")
UM25C = Accuracy(gain_limit=0.0015, offset_limit_w=0.003, update_interval_s=0.0, source="test")


def test_a_datasheet_limit_is_a_rectangular_standard_uncertainty():
    # 0.5% max error -> 0.005 / 1.7320508 = 0.0028867513
    assert u.standard_from_limit(0.005) == pytest.approx(0.0028867513, rel=1e-7)
    # INA3221 at 10 W, no offset term: the same 0.0028867513 whatever the power
    assert u.sensor_rel(INA, 10.0) == pytest.approx(0.0028867513, rel=1e-7)
    assert u.sensor_rel(INA, 0.5) == pytest.approx(0.0028867513, rel=1e-7)


def test_gain_and_offset_limits_add_in_quadrature_then_divide_by_sqrt3():
    # UM25C at 5 W: offset 0.003 W / 5 W = 0.0006; sqrt(0.0015^2 + 0.0006^2)
    # = sqrt(2.25e-6 + 3.6e-7) = sqrt(2.61e-6) = 0.0016155494; / 1.7320508 = 0.00093274
    assert u.sensor_rel(UM25C, 5.0) == pytest.approx(0.00093274, rel=1e-4)
    # at 0.5 W the offset dominates: 0.003/0.5 = 0.006; sqrt(0.0015^2 + 0.006^2)
    # = sqrt(2.25e-6 + 3.6e-5) = sqrt(3.825e-5) = 0.0061847; / 1.7320508 = 0.0035707
    assert u.sensor_rel(UM25C, 0.5) == pytest.approx(0.0035707, rel=1e-4)


def test_an_unpublished_accuracy_is_unknown_never_zero():
    none = Accuracy(gain_limit=None, offset_limit_w=0.0, update_interval_s=0.0, source="none")
    assert u.sensor_rel(none, 5.0) is None
    assert u.sensor_rel(None, 5.0) is None
    assert u.sensor_rel(INA, 0.0) is None  # no relative figure of zero power


def test_sampling_uncertainty_is_one_interval_over_the_window():
    # 10 Hz over 2 s: interval 0.1 s, limit 0.1/2 = 0.05; / 1.7320508 = 0.0288675
    assert u.sampling_rel(2.0, 10.0) == pytest.approx(0.0288675, rel=1e-6)
    # MLPerf Power's floor, 60 s at 1 Hz: 1/60 = 0.0166667; / 1.7320508 = 0.0096225 (not flagged)
    assert u.sampling_rel(60.0, 1.0) == pytest.approx(0.0096225, rel=1e-5)
    assert not u.sampling_flagged(u.sampling_rel(60.0, 1.0))
    # 57 s at 1 Hz: 1/57 = 0.0175439; / 1.7320508 = 0.0101290 > 1%: flagged
    assert u.sampling_rel(57.0, 1.0) == pytest.approx(0.0101290, rel=1e-5)
    assert u.sampling_flagged(u.sampling_rel(57.0, 1.0))


def test_a_slow_sensor_refresh_beats_a_fast_read_rate():
    # read at 100 Hz but the counter refreshes every 0.1 s: interval 0.1 s over 10 s = 0.01;
    # / 1.7320508 = 0.0057735 (at 100 Hz alone it would be 0.001 / 1.7320508 = 0.00057735)
    assert u.sampling_rel(10.0, 100.0, update_interval_s=0.1) == pytest.approx(0.0057735, rel=1e-5)
    assert u.sampling_rel(10.0, 100.0) == pytest.approx(0.00057735, rel=1e-5)
    assert u.sampling_rel(0.0, 10.0) is None and u.sampling_rel(1.0, None) is None


def test_the_fit_covariance_is_kept():
    # raw 5 W, sd(gain) 0.01, sd(offset) 0.02 W, cov -1e-4 W:
    # var = 5^2 * 1e-4 + 4e-4 + 2 * 5 * (-1e-4) = 25e-4 + 4e-4 - 10e-4 = 19e-4
    # sqrt(19e-4) = 0.0435890; over the corrected 5.2 W: 0.0083825
    assert u.affine_rel(5.0, 1e-4, 4e-4, -1e-4, 5.2) == pytest.approx(0.0083825, rel=1e-4)
    # dropping the covariance would give sqrt(29e-4) / 5.2 = 0.0103560: a different answer
    assert u.affine_rel(5.0, 1e-4, 4e-4, 0.0, 5.2) == pytest.approx(0.0103560, rel=1e-4)


def test_a_calibrated_sensor_carries_the_fit_and_the_reference():
    cal = {"gain": 1.04, "offset_w": 0.0, "gain_stderr": 0.01, "offset_stderr_w": 0.02,
           "cov_gain_offset_w": -1e-4, "reference_accuracy": UM25C.to_dict()}
    # at 5.2 W corrected: raw = 5.2 / 1.04 = 5.0, fit part 0.0083825 (above);
    # reference UM25C at 5.2 W: 0.003/5.2 = 0.000576923; sqrt(0.0015^2 + 0.000576923^2)
    # = sqrt(2.25e-6 + 3.3284e-7) = 0.0016071; / 1.7320508 = 0.00092787
    # total sqrt(0.0083825^2 + 0.00092787^2) = sqrt(7.02663e-5 + 8.6094e-7) = 0.0084337
    assert u.calibrated_rel(cal, 5.2) == pytest.approx(0.0084337, rel=1e-4)
    assert u.sensor_part({"sensor": "rpi5_pmic", "calibration": cal}, 5.2) == (
        pytest.approx(0.0084337, rel=1e-4), "calibration")
    # a reference without a stated accuracy leaves the calibrated sensor unknown
    assert u.calibrated_rel({**cal, "reference_accuracy": None}, 5.2) is None


def test_uncalibrated_sensors_use_their_module_accuracy_with_a_source():
    assert u.sensor_part({"sensor": "ina3221_hwmon"}, 7.0) == (
        pytest.approx(0.005 / math.sqrt(3)), "sensor")
    assert u.sensor_part({"sensor": "rpi5_pmic"}, 7.0) == (None, "sensor")  # none published
    for name in ("ina3221_hwmon", "ina3221_iio", "tegrastats", "usb_meter", "nvml", "rapl",
                 "rpi5_pmic", "android_battery", "pixel_odpm", "powermetrics", "estimate"):
        acc = u.accuracy_of(name)
        assert acc is not None and len(acc.source) > 30, name


def test_combined_interval_names_what_dominates():
    # mean 2.0, repetitions' CI [1.9, 2.1]: half 0.1; sensor 2 * 0.01 * 2.0 = 0.04;
    # sampling 2 * 0.02 * 2.0 = 0.08; half = sqrt(0.01 + 0.0016 + 0.0064) = sqrt(0.018) = 0.1341641
    iv = u.combined_interval(2.0, 1.9, 2.1, 0.01, 0.02)
    assert iv.half_width == pytest.approx(0.1341641, rel=1e-6)
    assert (iv.low, iv.high) == (pytest.approx(1.8658359), pytest.approx(2.1341641))
    assert iv.dominant == "repetitions"
    # one repetition (no CI): sampling 0.08 beats sensor 0.04; half = sqrt(0.0016 + 0.0064) = 0.0894427
    iv = u.combined_interval(2.0, None, None, 0.01, 0.02, sensor_label="calibration")
    assert iv.half_width == pytest.approx(0.0894427, rel=1e-6) and iv.dominant == "sampling"
    # calibration labelled as such when it dominates
    assert u.combined_interval(2.0, 1.99, 2.01, 0.05, 0.001, "calibration").dominant == "calibration"


def _power_trace(sensor: str) -> Trace:
    t = np.round(np.arange(0.0, 2.0 + 1e-9, 0.1), 6)  # 21 readings, 10 Hz over 2 s
    return Trace(kind="power", t_s=t, values=np.full(len(t), 4.0), nominal_rate_hz=10.0,
                 sensor={"sensor": sensor, "method": "measured", "coverage": "module_input"})


def test_energy_records_carry_the_uncertainty_fields():
    rec = account(_power_trace("ina3221_hwmon"), (0.0, 2.0),
                  {"prefill": (0.0, 0.5), "decode": (0.5, 2.0)}, 1.0, 10, 31, 475.0, "test")
    # sensor 0.005 / 1.7320508 = 0.0028868; window 0.1/2 / 1.7320508 = 0.0288675;
    # prefill 0.1/0.5 / 1.7320508 = 0.1154701; decode 0.1/1.5 / 1.7320508 = 0.0384900
    assert rec["energy_u_sensor_rel"] == pytest.approx(0.0028868, rel=1e-4)
    assert rec["energy_u_sampling_rel"] == pytest.approx(0.0288675, rel=1e-4)
    assert rec["energy_prefill_u_sampling_rel"] == pytest.approx(0.1154701, rel=1e-4)
    assert rec["energy_decode_u_sampling_rel"] == pytest.approx(0.0384900, rel=1e-4)
    assert rec["energy_accuracy"]["gain_limit"] == 0.005 and "INA3221" in rec["energy_accuracy"]["source"]
    assert rec["energy_calibration"] is None


def test_a_sensor_without_a_published_accuracy_records_null_not_zero():
    rec = account(_power_trace("rpi5_pmic"), (0.0, 2.0), {}, None, 10, 31, 475.0, "test")
    assert rec["energy_u_sensor_rel"] is None
    assert rec["energy_u_sampling_rel"] == pytest.approx(0.0288675, rel=1e-4)


def test_report_rows_get_the_combined_interval_and_its_dominant_part():
    # J/decode token 2 mJ, repetitions' CI [1.9, 2.1] mJ (half 0.1 mJ); sensor 0.01 -> 0.04 mJ;
    # decode sampling 0.02 -> 0.08 mJ: half sqrt(0.1^2 + 0.04^2 + 0.08^2) = 0.1341641 mJ
    row = {"energy_per_decode_token_j": 2e-3, "energy_per_decode_token_j_ci95_low": 1.9e-3,
           "energy_per_decode_token_j_ci95_high": 2.1e-3, "energy_u_sensor_rel": 0.01,
           "energy_decode_u_sampling_rel": 0.02, "energy_u_sampling_rel": 0.002,
           "tokens_per_j": 500.0}
    f = u.interval_fields(row, calibrated=True)
    assert f["energy_per_decode_token_j_u95_high"] == pytest.approx(2.1341641e-3, rel=1e-6)
    assert f["energy_per_decode_token_j_u_dominant"] == "repetitions"
    assert f["energy_per_decode_token_j_sampling_flagged"] is True  # 2% > 1%
    # tokens/J 500 with no repetition interval: calibration 2 * 0.01 * 500 = 10 beats sampling
    # 2 * 0.002 * 500 = 2; half sqrt(100 + 4) = 10.198039
    assert f["tokens_per_j_u95_low"] == pytest.approx(500 - 10.198039, rel=1e-6)
    assert f["tokens_per_j_u_dominant"] == "calibration"
    assert not f["tokens_per_j_sampling_flagged"]
    assert "energy_per_prefill_token_j_u95_low" not in f  # no figure, no interval
    unknown = u.interval_fields({**row, "energy_u_sensor_rel": None}, calibrated=False)
    assert unknown["energy_per_decode_token_j_u_sensor_unknown"] is True


def _stats(mean: float, low: float | None = None, high: float | None = None) -> dict:
    return {"mean": mean, "median": mean, "p90": mean, "stdev": 0.0, "ci95_low": low,
            "ci95_high": high, "n": 3}


def test_the_report_shows_the_combined_interval_and_what_dominates():
    from harness.report.html import _td_metric
    from harness.report.markdown import _metric
    from harness.report.tables import DeviceKey, cell_row

    summary = {"cell_id": "c1", "model": "m", "level": "Q4_K_M", "runtime": "llama_cpp",
               "workload": "chat", "energy_method": "measured", "energy_sensor": "rpi5_pmic",
               "energy_calibration": {"gain": 1.02},
               "metrics": {"energy_per_decode_token_j": _stats(2e-3, 1.99e-3, 2.01e-3),
                           "energy_u_sensor_rel": _stats(0.02),
                           "energy_decode_u_sampling_rel": _stats(0.015)}}
    row = cell_row("r1", DeviceKey("raspberry-pi-5", "pi"), summary, [])
    # repetitions 0.01 mJ; calibration 2 * 0.02 * 2 = 0.08 mJ; sampling 2 * 0.015 * 2 = 0.06 mJ
    assert row["energy_per_decode_token_j_u_dominant"] == "calibration"
    assert row["energy_per_decode_token_j_sampling_flagged"] is True
    cell = _td_metric(row, "energy_per_decode_token_j")
    assert "dominated by calibration" in cell and "sampling &gt; 1%" in cell
    # half sqrt(0.01^2 + 0.08^2 + 0.06^2) = 0.1004988 mJ: all [1.90, 2.10] mJ
    assert "all [1.90, 2.10]" in _metric(row, "energy_per_decode_token_j")
