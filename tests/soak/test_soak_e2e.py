"""A short soak on the real default model through `python -m harness run` (cell, launcher, store,
report), a soak shorter than one window refused at validation, and the report's soak chart."""
from __future__ import annotations

import json

import pytest

from harness.report.soak import soak_svg

from tests.conftest import only_run_dir, run_cli, tiny_matrix

SCRIPTED = "{sensor: scripted, rate_hz: 20, baseline_s: 0.2, scripted: {base_w: 5, amplitude_w: 1, period_s: 1}}"


def test_soak_shorter_than_one_window_exits_2_with_the_reason(tmp_path):
    m = tiny_matrix(tmp_path, workloads="""
      - {name: hot, kind: soak, duration_s: 5, window_s: 10}
    """)
    cp = run_cli("run", str(m), "--no-report")
    assert cp.returncode == 2, cp.stderr
    assert "workloads[0].duration_s" in cp.stderr and "shorter than one window" in cp.stderr


@pytest.mark.e2e
def test_short_soak_on_the_real_model(tmp_path):
    pytest.importorskip("llama_cpp")
    m = tiny_matrix(tmp_path, energy=SCRIPTED, repetitions=3, workloads="""
      - {name: hot, kind: soak, duration_s: 3, window_s: 1, state_poll_s: 0.5, max_tokens: 4}
    """)
    cp = run_cli("run", str(m))
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-3000:]
    run = only_run_dir(tmp_path / "results")
    recs = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    reps = [r for r in recs if r["record_type"] == "repetition"]
    summary = next(r for r in recs if r["record_type"] == "cell_summary")
    assert len(reps) == 1 and summary["warmup"] == 0  # one soak, no warm-up, whatever the matrix says
    rep = reps[0]
    assert rep["soak_answers"] >= 1 and rep["tokens_out"] >= 4
    # the answer in flight at duration_s finishes (on a shared CI core one answer can take 20 s):
    # the windows cover the whole run, so speeds are known, though the first may be all prefill
    assert rep["soak_burst_tokens_per_s"] >= 0 and rep["soak_sustained_tokens_per_s"] > 0
    assert rep["battery_note"]  # a VM has no battery: the note says why there are no figures
    rows = [json.loads(x) for x in (run / summary["samples_file"]).read_text().splitlines()]
    windows = [r for r in rows if r["kind"] == "soak_window"]
    assert len(windows) >= 3 and [w["window"] for w in windows] == list(range(len(windows)))
    # 1 s windows of the scripted 5 W +- 1 W sine with a 1 s period: 5 W each
    full = [w for w in windows if w["window_s"] == pytest.approx(1.0)][:-1]
    assert all(w["power_w"] == pytest.approx(5.0, abs=0.15) for w in full)
    assert sum(w["tokens_out"] for w in windows) == rep["tokens_out"]  # windows cover the soak
    assert sum(w["answers"] for w in windows) == rep["soak_answers"]
    page = (run / "report.html").read_text()
    assert 'id="soak"' in page and "Sustained use" in page and "time since the soak began" in page


def test_soak_chart_marks_the_throttle_onset():
    windows = [{"window": i, "t_start_s": i, "t_end_s": i + 1.0, "tokens_per_s": 20 - 5 * (i >= 3),
                "power_w": 5.0, "max_temp_c": 50 + i, "cpu_freq_hz": 2.4e9 if i < 3 else 1.5e9,
                "throttled": i >= 3, "throttle_reasons": ["cooling device cpu at state 1"] * (i >= 3)}
               for i in range(6)]
    svg = soak_svg(windows, {"soak_time_to_throttle_s": 3.25}, "cell")
    assert svg.count('fill-opacity="0.10"') == 3  # the throttled windows are shaded
    assert "first throttle 3 s" in svg and 'class="throttle-onset"' in svg
    x = float(svg.split('class="throttle-onset" x1="')[1].split('"')[0])
    assert x == pytest.approx(52 + (720 - 52 - 8) * 3.25 / 6, abs=0.1)
    for label in ("tokens/s", "power (W)", "hottest (degC)", "CPU clock (GHz)"):
        assert label in svg
    assert "GPU clock" not in svg and "battery" not in svg  # panels only for what was read
