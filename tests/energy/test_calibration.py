"""Sensor calibration (harness.energy.calibration, `python -m harness calibrate`).

The sensor under calibration is the scripted sine seen through a known distortion
(raw = (true - offset) / gain); the reference is the undistorted scripted sensor. The fit must
give the distortion back within 1%. The sine supplies the spread of power, so these tests do not
need to load the CPU; the real CPU ladder runs once, briefly, in the command test.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.devices.profile import load_profile_file
from harness.energy import account, calibration as cal
from harness.energy.base import PowerSensor
from harness.energy.config import ScriptedParams
from harness.energy.sampler import Sampler
from harness.energy.sensors.scripted import ScriptedPower
from harness.errors import ConfigError, HarnessError

REPO = Path(__file__).resolve().parents[2]
SINE = ScriptedParams(base_w=6.0, amplitude_w=3.0, period_s=1.6)
TRUE_GAIN, TRUE_OFFSET_W = 1.08, 0.5


class Distorted(PowerSensor):
    """A sensor that reads (true - offset) / gain: calibrating it must find gain and offset."""

    name = "rpi5_pmic"

    def __init__(self, gain: float, offset_w: float):
        super().__init__()
        self.truth = ScriptedPower(SINE)
        self.gain, self.offset_w = gain, offset_w

    def read_power_w(self) -> float:
        return (self.truth.read_power_w() - self.offset_w) / self.gain


def _no_load(n: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _ladder() -> cal.Ladder:
    return cal.Ladder(steps=("idle", "1"), step_s=1.7, settle_s=0.05, chunk_s=0.2, rate_hz=50)


_MADE: list[cal.Calibration] = []


def _calibration(tmp_path: Path) -> tuple[cal.Calibration, Path]:
    """The ladder runs once per test session (3.4 s); each test gets its own copy of the file."""
    if not _MADE:
        sensor, reference = Distorted(TRUE_GAIN, TRUE_OFFSET_W), ScriptedPower(SINE)
        points = cal.measure_ladder(sensor, reference, _ladder(), load=_no_load)
        _MADE.append(cal.make_calibration(sensor, reference, points, _ladder(), "testhost", None,
                                          cal.Accuracy(0.0015, 0.003, 0.0, "reference under test")))
    path = tmp_path / "cal.json"
    path.write_text(_MADE[0].to_json())
    return _MADE[0], path


def test_the_fit_recovers_a_scripted_gain_and_offset_within_1_percent(tmp_path):
    c, path = _calibration(tmp_path)
    assert c.n_points >= 12
    assert c.gain == pytest.approx(TRUE_GAIN, rel=0.01)
    assert c.offset_w == pytest.approx(TRUE_OFFSET_W, rel=0.01)
    assert c.gain_stderr < 0.01 and c.offset_stderr_w < 0.05  # a tight fit of a clean signal
    back = cal.load_calibration(path)  # the file round-trips
    assert (back.sensor, back.reference, back.gain, back.offset_w) == (
        "rpi5_pmic", "scripted", c.gain, c.offset_w)
    assert back.reference_accuracy["source"] == "reference under test"
    assert back.host == "testhost" and back.created_utc.endswith("Z")


def test_least_squares_on_exact_points_and_their_standard_errors():
    # reference = 2 x + 1 exactly on x = 1, 2, 3, 4: gain 2, offset 1, residual 0, stderr 0
    fit = cal.fit_affine([1, 2, 3, 4], [3, 5, 7, 9])
    assert (fit.gain, fit.offset_w) == (pytest.approx(2.0), pytest.approx(1.0))
    assert fit.gain_stderr == pytest.approx(0.0, abs=1e-9)
    # y = 0, 1, 1, 2 on x = 0, 1, 2, 3: slope 0.6, intercept 0.1 (sums: Sxx = 5, Sxy = 3);
    # residuals -0.1, 0.3, -0.3, 0.1 -> SSR 0.2, s^2 = 0.2/2 = 0.1; var(slope) = s^2/Sxx = 0.02
    # var(intercept) = s^2 (1/n + mean^2/Sxx) = 0.1 (0.25 + 2.25/5) = 0.07; cov = -s^2 mean/Sxx = -0.03
    fit = cal.fit_affine([0, 1, 2, 3], [0, 1, 1, 2])
    assert fit.gain == pytest.approx(0.6) and fit.offset_w == pytest.approx(0.1)
    assert fit.gain_stderr == pytest.approx(0.02 ** 0.5)
    assert fit.offset_stderr_w == pytest.approx(0.07 ** 0.5)
    assert fit.cov_gain_offset_w == pytest.approx(-0.03)


def test_a_flat_ladder_cannot_be_fitted():
    with pytest.raises(HarnessError, match="hardly changed"):
        cal.fit_affine([5.0, 5.0, 5.01, 5.0], [5.1, 5.1, 5.1, 5.1])
    with pytest.raises(HarnessError, match="at least 3"):
        cal.fit_affine([1.0, 2.0], [1.0, 2.0])


def test_an_applied_calibration_corrects_readings_and_records_say_so(tmp_path, monkeypatch):
    c, path = _calibration(tmp_path)
    monkeypatch.setenv(cal.ENV_VAR, str(path))
    sensor = cal.apply_calibration(Distorted(TRUE_GAIN, TRUE_OFFSET_W), None)
    truth = ScriptedPower(SINE)
    assert sensor.read_power_w() == pytest.approx(truth.read_power_w(), rel=0.01)
    sampler = Sampler(sensor, 50).start()
    import time
    time.sleep(0.4)
    trace = sampler.stop()
    w = (trace.start_s + 0.05, trace.end_s - 0.05)
    rec = account(trace, w, {}, None, 5, 20, 475.0, "test")
    assert rec["energy_calibration"]["file"] == str(path)
    assert rec["energy_calibration"]["gain"] == c.gain
    # the sensor part is now the calibration's: fit + reference, not the (unpublished) PMIC figure
    assert rec["energy_u_sensor_rel"] is not None and rec["energy_u_sensor_rel"] > 0
    assert any("calibrated against scripted" in n for n in sensor.info()["notes"])


def test_a_calibration_for_another_sensor_is_refused(tmp_path, monkeypatch):
    _, path = _calibration(tmp_path)  # made for rpi5_pmic
    monkeypatch.setenv(cal.ENV_VAR, str(path))
    closed = []
    other = ScriptedPower(SINE)
    other.close = lambda: closed.append(True)  # type: ignore[method-assign]
    with pytest.raises(HarnessError) as e:
        cal.apply_calibration(other, None)
    assert e.value.exit_code == 2
    assert "is for sensor 'rpi5_pmic'" in str(e.value) and "reads sensor 'scripted'" in str(e.value)
    assert closed == [True]


def test_the_environment_wins_over_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv(cal.ENV_VAR, str(tmp_path / "env.json"))
    assert cal.calibration_path("/from/profile.json") == str(tmp_path / "env.json")
    monkeypatch.delenv(cal.ENV_VAR)
    assert cal.calibration_path("/from/profile.json") == "/from/profile.json"
    assert cal.calibration_path(None) is None


@pytest.mark.parametrize("change, key", [
    ({"kind": "other"}, "kind"), ({"version": 9}, "version"), ({"sensor": "ina999"}, "sensor"),
    ({"gain": "1.0"}, "gain"), ({"gain": -1.0}, "gain"), ({"offset_stderr_w": None}, "offset_stderr_w"),
    ({"power_range_w": 5}, "power_range_w"), ({"reference_accuracy": "0.1%"}, "reference_accuracy"),
    ({"reference_accuracy": {"gain_limit": "x"}}, "reference_accuracy"),
])
def test_a_bad_calibration_file_names_the_key(tmp_path, change, key):
    _, path = _calibration(tmp_path)
    d = json.loads(path.read_text())
    d.update(change)
    path.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        cal.load_calibration(path)
    assert e.value.key_path == key and str(path) in str(e.value)


def test_a_missing_calibration_file_says_how_to_make_one(tmp_path):
    with pytest.raises(HarnessError, match="python -m harness calibrate"):
        cal.load_calibration(tmp_path / "none.json")


def _profile(tmp_path: Path, calibration: str) -> Path:
    text = (REPO / "devices/raspberry-pi-5.yaml").read_text()
    f = tmp_path / "raspberry-pi-5.yaml"
    f.write_text(text + f"calibration: {calibration}\n")
    return f


def test_a_profile_points_to_its_calibration(tmp_path):
    _, path = _calibration(tmp_path)  # rpi5_pmic: listed by the Pi 5 profile
    p = load_profile_file(_profile(tmp_path, path.name))  # relative to the profile's folder
    assert p.calibration == str(path.resolve())
    assert p.summary()["calibration"] == p.calibration


def test_a_profile_refuses_a_calibration_for_a_sensor_it_does_not_list(tmp_path):
    _, path = _calibration(tmp_path)
    d = json.loads(path.read_text())
    d["sensor"] = "ina3221_hwmon"
    path.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        load_profile_file(_profile(tmp_path, str(path)))
    assert e.value.key_path == "calibration" and "does not list" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile_file(_profile(tmp_path, str(tmp_path / "missing.json")))


def _matrix(tmp_path: Path, amplitude_w: float = 3.0) -> Path:
    m = tmp_path / "m.yaml"
    m.write_text(f"energy:\n  scripted: {{base_w: 6, amplitude_w: {amplitude_w}, period_s: 1.6}}\n")
    return m


def test_the_command_runs_the_cpu_ladder_and_writes_the_file(tmp_path, capsys):
    out = tmp_path / "c.json"
    rc = main(["calibrate", "--sensor", "scripted", "--reference", "scripted", "--matrix",
               str(_matrix(tmp_path)), "--steps", "idle,1", "--step-s", "1.8", "--settle-s",
               "0.2", "--chunk-s", "0.2", "--rate-hz", "40", "--output", str(out)])
    assert rc == 0
    c = cal.load_calibration(out)
    assert c.gain == pytest.approx(1.0, rel=0.01)  # the same curve read twice
    assert [p["threads"] for p in c.points][:1] == [0] and c.points[-1]["threads"] == 1
    text = capsys.readouterr().out
    assert "HARNESS_CALIBRATION=" in text and "calibration:" in text


@pytest.mark.parametrize("args, message", [
    (["--sensor", "scripted", "--reference", "usb_meter"],
     "the reference 'usb_meter' cannot be read on this device: usb_meter needs a serial port"),
    (["--sensor", "ina3221_hwmon", "--reference", "scripted"],
     "the sensor 'ina3221_hwmon' cannot be read on this device"),
    (["--sensor", "estimate", "--reference", "usb_meter"], "the estimate is a model"),
    (["--sensor", "rpi5_pmic", "--reference", "rpi5_pmic"], "must be another instrument"),
    (["--sensor", "scripted", "--reference", "scripted", "--steps", "idle,many"],
     "unknown calibration step 'many'"),
])
def test_the_command_refuses_with_the_reason(tmp_path, capsys, args, message):
    rc = main(["calibrate", "--matrix", str(_matrix(tmp_path)), *args])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_a_flat_sensor_is_refused_by_the_command(tmp_path, capsys):
    rc = main(["calibrate", "--sensor", "scripted", "--reference", "scripted", "--matrix",
               str(_matrix(tmp_path, amplitude_w=0.0)), "--steps", "idle", "--step-s", "0.8",
               "--settle-s", "0.1", "--chunk-s", "0.2", "--rate-hz", "20",
               "--output", str(tmp_path / "c.json")])
    assert rc == 2 and "hardly changed" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_cpu_load_starts_and_stops_its_processes():
    assert cal.step_threads("idle") == 0 and cal.step_threads("2") == 2
    assert cal.step_threads("all") == cal.host_cpus()
    with cal.CpuLoad(1) as load:
        assert all(p.is_alive() for p in load._procs)
    assert not any(p.is_alive() for p in load._procs)


def test_a_calibrated_counter_adds_the_offset_as_power_over_time():
    from harness.energy.sensors.scripted import ScriptedCounter

    c = cal.Calibration("scripted", "usb_meter", 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 3, (1.0, 9.0),
                        None, "2026-11-30T00:00:00Z", "h")
    inner = ScriptedCounter(ScriptedParams(base_w=3.0))  # 3 W constant
    sensor = cal.CalibratedCounter(inner, c)
    import time
    e0, t0 = sensor.read_energy_j(), time.monotonic()
    time.sleep(0.3)
    e1, t1 = sensor.read_energy_j(), time.monotonic()
    # corrected power = 2 x 3 W + 1 W = 7 W
    assert (e1 - e0) / (t1 - t0) == pytest.approx(7.0, rel=0.02)


@pytest.mark.e2e
def test_a_run_applies_the_calibration_and_its_records_say_which(tmp_path, matrix_factory,
                                                                  monkeypatch):
    from harness.store import load_run
    from tests.conftest import only_run_dir, run_cli

    reference = {"gain_limit": 0.0015, "offset_limit_w": 0.003, "update_interval_s": 0.0,
                 "source": "test reference"}
    c = cal.Calibration("scripted", "usb_meter", gain=1.1, offset_w=0.2, gain_stderr=0.002,
                        offset_stderr_w=0.01, cov_gain_offset_w=-1e-5, residual_rms_w=0.01,
                        n_points=30, power_range_w=(4.0, 6.0), reference_accuracy=reference,
                        created_utc="2026-11-30T00:00:00Z", host="h")
    path = tmp_path / "cal.json"
    path.write_text(c.to_json())
    monkeypatch.setenv(cal.ENV_VAR, str(path))  # inherited by the run and its cell processes
    m = matrix_factory(energy="{sensor: scripted, rate_hz: 50, baseline_s: 0.5, scripted: "
                              "{base_w: 5.0, amplitude_w: 1.0, period_s: 0.37}}",
                       workloads="""
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 16}
    """)
    r = run_cli("run", str(m), "--quiet")
    assert r.returncode == 0, r.stderr
    run_dir = only_run_dir(tmp_path / "results")
    rec = load_run(run_dir).repetitions[0]
    assert rec["energy_calibration"]["file"] == str(path)
    assert rec["energy_calibration"]["gain"] == 1.1
    # the truth is the scripted curve; the recorded joules are 1.1 x truth + 0.2 W x window
    assert rec["energy_gross_j"] == pytest.approx(
        1.1 * rec["energy_scripted_true_j"] + 0.2 * rec["window_s"], rel=0.01)
    assert rec["energy_u_sensor_rel"] > 0 and rec["energy_u_sampling_rel"] > 0
    assert "dominated by" in (run_dir / "report.html").read_text()


@pytest.mark.e2e
def test_a_run_refuses_a_calibration_for_another_sensor_before_it_starts(tmp_path, matrix_factory,
                                                                         monkeypatch):
    from tests.conftest import run_cli

    _, path = _calibration(tmp_path)  # made for rpi5_pmic
    monkeypatch.setenv(cal.ENV_VAR, str(path))
    m = matrix_factory(energy="{sensor: scripted, rate_hz: 20, baseline_s: 0, scripted: "
                              "{base_w: 5.0}}")
    r = run_cli("run", str(m), "--dry-run")
    assert r.returncode == 2
    assert "energy.sensor" in r.stderr and "HARNESS_CALIBRATION" in r.stderr
    assert "is for sensor 'rpi5_pmic'" in r.stderr and "reads sensor 'scripted'" in r.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
