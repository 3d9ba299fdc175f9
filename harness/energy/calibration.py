"""Sensor calibration against a reference meter: a load ladder, a least-squares fit, a file.

Why: sensors on small devices disagree (an INA3221 rail misses the carrier board, a PMIC misses
the 5 V side, a gauge filters), and a datasheet limit says nothing about a particular board's
shunt. Reading the sensor and a reference meter side by side at a few load levels measures the
affine relation `reference_w = gain x sensor_w + offset_w` and how well it is known; applying it
puts the sensor on the meter's scale, and its uncertainty is then the fit's plus the meter's
(harness.energy.uncertainty.calibrated_rel), not the sensor's datasheet figure.

The file (JSON, `python -m harness calibrate` writes it) is found through the device profile's
`calibration:` key or the `HARNESS_CALIBRATION` environment variable (which wins); applying it to
another sensor than the one it was measured for is refused.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, HarnessError
from .base import CounterSensor, PowerSensor, Sensor
from .config import SENSOR_NAMES
from .sampler import Sampler
from .uncertainty import Accuracy

ENV_VAR = "HARNESS_CALIBRATION"
FILE_KIND = "edgebench-calibration"
FILE_VERSION = 1
MIN_SPREAD_FRACTION = 0.05  # the ladder must move the sensor's power by >= 5% of its mean
STEP_NAMES = ("idle", "1", "all")  # idle, one busy thread, every CPU busy


# -- the calibration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """`reference_w = gain x sensor_w + offset_w`, with the fit's standard errors."""

    sensor: str
    reference: str
    gain: float
    offset_w: float
    gain_stderr: float
    offset_stderr_w: float
    cov_gain_offset_w: float
    residual_rms_w: float
    n_points: int
    power_range_w: tuple[float, float]  # sensor readings the fit covered (outside: extrapolated)
    reference_accuracy: dict | None  # the reference's stated Accuracy, with its source
    created_utc: str
    host: str
    device_profile: str | None = None
    ladder: dict = field(default_factory=dict)
    points: tuple[dict, ...] = ()
    file: str | None = None  # where it was read from (not written into the file)

    def corrected_w(self, raw_w: float) -> float:
        return self.gain * raw_w + self.offset_w

    def summary(self) -> dict:
        """What a record says about the calibration applied (the `energy_calibration` field)."""
        return {"file": self.file, "sensor": self.sensor, "reference": self.reference,
                "gain": self.gain, "gain_stderr": self.gain_stderr, "offset_w": self.offset_w,
                "offset_stderr_w": self.offset_stderr_w,
                "cov_gain_offset_w": self.cov_gain_offset_w, "residual_rms_w": self.residual_rms_w,
                "power_range_w": list(self.power_range_w),
                "reference_accuracy": self.reference_accuracy, "created_utc": self.created_utc,
                "host": self.host}

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("file")
        d["power_range_w"] = list(self.power_range_w)
        d["points"] = list(self.points)
        return json.dumps({"kind": FILE_KIND, "version": FILE_VERSION, **d}, indent=2) + "\n"


_NUMBERS = ("gain", "offset_w", "gain_stderr", "offset_stderr_w", "cov_gain_offset_w",
            "residual_rms_w")


def load_calibration(path: str | Path) -> Calibration:
    """Read and check a calibration file; errors name the file and the key (exit 2)."""
    file = str(path)
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"calibration file {file} does not exist; write one with `python -m "
                           "harness calibrate --sensor NAME --reference NAME`") from None
    except (OSError, ValueError) as e:
        raise ConfigError(file, "", f"not a readable JSON calibration file ({e})") from None
    if not isinstance(d, dict) or d.get("kind") != FILE_KIND:
        raise ConfigError(file, "kind", f"must be '{FILE_KIND}' (written by `python -m harness "
                          "calibrate`)")
    if d.get("version") != FILE_VERSION:
        raise ConfigError(file, "version", f"{d.get('version')!r} is not supported; this harness "
                          f"reads version {FILE_VERSION}")
    for key in ("sensor", "reference"):
        if d.get(key) not in SENSOR_NAMES:
            raise ConfigError(file, key, f"{d.get(key)!r} is not a sensor name; one of: "
                              f"{', '.join(SENSOR_NAMES)}")
    for key in _NUMBERS:
        if not _is_number(d.get(key)):
            raise ConfigError(file, key, f"must be a finite number, got {d.get(key)!r}")
    if not d["gain"] > 0:
        raise ConfigError(file, "gain", f"must be positive, got {d['gain']}")
    lo_hi = d.get("power_range_w") or [0.0, 0.0]
    if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(_is_number(v) for v in lo_hi)):
        raise ConfigError(file, "power_range_w", f"must be [low_w, high_w], got {lo_hi!r}")
    ref = d.get("reference_accuracy")
    if ref is not None and not (isinstance(ref, dict) and all(
            v is None or _is_number(v) for k, v in ref.items() if k != "source")):
        raise ConfigError(file, "reference_accuracy", "must be null or {gain_limit, "
                          f"offset_limit_w, update_interval_s, source}}, got {ref!r:.80}")
    return Calibration(
        sensor=d["sensor"], reference=d["reference"],
        **{k: float(d[k]) for k in _NUMBERS}, n_points=int(d.get("n_points") or 0),
        power_range_w=(float(lo_hi[0]), float(lo_hi[1])),
        reference_accuracy=ref, created_utc=str(d.get("created_utc")),
        host=str(d.get("host")), device_profile=d.get("device_profile"),
        ladder=dict(d.get("ladder") or {}), points=tuple(d.get("points") or ()), file=file)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def calibration_path(profile_calibration: str | None) -> str | None:
    """The calibration file to apply: HARNESS_CALIBRATION, else the profile's `calibration:`."""
    return os.environ.get(ENV_VAR) or profile_calibration or None


def check_applies(cal: Calibration, sensor_name: str) -> None:
    """Refuse a calibration measured for another sensor (its gain would be meaningless here)."""
    if cal.sensor != sensor_name:
        where = cal.file or "the calibration"
        raise HarnessError(f"calibration file {where} is for sensor '{cal.sensor}' (against "
                           f"'{cal.reference}'), but this run reads sensor '{sensor_name}'; "
                           f"calibrate '{sensor_name}' or unset {ENV_VAR} / the profile's "
                           "`calibration:` key")


# -- applying it ----------------------------------------------------------------------------
class _Calibrated:
    """Shared part of the two wrappers: the inner sensor's provenance plus the calibration."""

    def _wrap(self, inner: Sensor, cal: Calibration) -> None:
        self.inner, self.cal = inner, cal
        self.name, self.method, self.model = inner.name, inner.method, inner.model
        self.coverage, self.max_power_w = inner.coverage, inner.max_power_w
        self.check_stuck = inner.check_stuck
        self.notes = list(inner.notes) + [
            f"calibrated against {cal.reference}: reference = {cal.gain:.5g} x reading "
            f"{cal.offset_w:+.4g} W ({cal.file or 'calibration'}, {cal.created_utc})"]
        self.fallback_reason = inner.fallback_reason

    def info(self) -> dict:
        return {**self.inner.info(), "notes": list(self.notes), "calibration": self.cal.summary()}

    def close(self) -> None:
        self.inner.close()


class CalibratedPower(_Calibrated, PowerSensor):
    def __init__(self, inner: PowerSensor, cal: Calibration):
        PowerSensor.__init__(self)
        self._wrap(inner, cal)

    def read_power_w(self) -> float:
        return self.cal.corrected_w(self.inner.read_power_w())


class CalibratedCounter(_Calibrated, CounterSensor):
    """E_corrected = gain x E_raw + offset_w x (t - t_first_read): the offset is a power."""

    def __init__(self, inner: CounterSensor, cal: Calibration):
        CounterSensor.__init__(self)
        self._wrap(inner, cal)
        self._t0: float | None = None

    def read_energy_j(self) -> float:
        raw = self.inner.read_energy_j()
        t = time.monotonic()
        if self._t0 is None:
            self._t0 = t
        return self.cal.gain * raw + self.cal.offset_w * (t - self._t0)


def apply_calibration(sensor: Sensor, profile_calibration: str | None) -> Sensor:
    """The sensor, corrected by the calibration the environment or profile names (if any);
    a calibration for another sensor is refused (exit 2) and the sensor closed."""
    path = calibration_path(profile_calibration)
    if path is None:
        return sensor
    try:
        cal = load_calibration(path)
        check_applies(cal, sensor.name)
    except HarnessError:
        sensor.close()  # refused: the caller never gets the sensor to close
        raise
    if sensor.kind == "counter":
        return CalibratedCounter(sensor, cal)  # type: ignore[arg-type]
    return CalibratedPower(sensor, cal)  # type: ignore[arg-type]


# -- the fit --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    gain: float
    offset_w: float
    gain_stderr: float
    offset_stderr_w: float
    cov_gain_offset_w: float
    residual_rms_w: float
    n_points: int


def fit_affine(sensor_w: Sequence[float], reference_w: Sequence[float]) -> Fit:
    """Ordinary least squares `reference = gain x sensor + offset` with parameter standard errors.

    cov(beta) = s^2 (A^T A)^-1, s^2 = sum(residual^2) / (n - 2). Refused (exit 2) with fewer than
    three points or when the sensor's power barely moved (the gain is then not determined)."""
    x = np.asarray(sensor_w, dtype=float)
    y = np.asarray(reference_w, dtype=float)
    n = int(len(x))
    if n < 3:
        raise HarnessError(f"calibration needs at least 3 paired readings, got {n}: lengthen the "
                           "steps (--step-s) or shorten --chunk-s")
    spread = float(np.max(x) - np.min(x))
    if not spread >= MIN_SPREAD_FRACTION * abs(float(np.mean(x))) or spread <= 0:
        raise HarnessError(f"the sensor's power hardly changed across the load ladder "
                           f"({float(np.min(x)):.3f}-{float(np.max(x)):.3f} W): the gain cannot be "
                           f"fitted; it needs a spread of at least {MIN_SPREAD_FRACTION:.0%} of the "
                           "mean (use the idle, 1 and all steps, on a device whose power follows load)")
    a = np.column_stack([x, np.ones(n)])
    beta, _, _, _ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ beta
    s2 = float(resid @ resid) / (n - 2)
    cov = s2 * np.linalg.inv(a.T @ a)
    return Fit(gain=float(beta[0]), offset_w=float(beta[1]),
               gain_stderr=math.sqrt(max(float(cov[0, 0]), 0.0)),
               offset_stderr_w=math.sqrt(max(float(cov[1, 1]), 0.0)),
               cov_gain_offset_w=float(cov[0, 1]),
               residual_rms_w=math.sqrt(float(resid @ resid) / n), n_points=n)


# -- the load ladder ------------------------------------------------------------------------
def _spin(stop: Any) -> None:
    """A CPU-bound loop (floating point), checking the stop event every few milliseconds."""
    x = 1.0
    while not stop.is_set():
        for _ in range(20000):
            x = x * 1.0000001 + 1e-9


class CpuLoad:
    """`n` busy processes (not threads: Python threads share one interpreter lock)."""

    def __init__(self, n: int):
        self.n = n
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs: list[Any] = []

    def __enter__(self) -> "CpuLoad":
        for _ in range(self.n):
            p = self._ctx.Process(target=_spin, args=(self._stop,), daemon=True)
            p.start()
            self._procs.append(p)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


def host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def step_threads(step: str) -> int:
    """Busy processes for a ladder step: idle 0, a number as given, all = every CPU here."""
    if step == "idle":
        return 0
    if step == "all":
        return host_cpus()
    if step.isdigit() and int(step) >= 1:
        return int(step)
    raise HarnessError(f"unknown calibration step '{step}': use idle, a thread count or all")


@dataclass(frozen=True)
class Ladder:
    steps: tuple[str, ...] = STEP_NAMES
    step_s: float = 30.0  # each step's length, including settle_s
    settle_s: float = 3.0  # left out at the start of each step: power settles after a load change
    chunk_s: float = 1.0  # one paired point per chunk of the measured part of a step
    rate_hz: float = 10.0


def measure_ladder(sensor: Sensor, reference: Sensor, ladder: Ladder,
                   load: Callable[[int], Any] = CpuLoad) -> list[dict]:
    """Paired mean powers per chunk of each step: [{step, threads, sensor_w, reference_w}]."""
    points: list[dict] = []
    for step in ladder.steps:
        threads = step_threads(step)
        with load(threads):
            time.sleep(ladder.settle_s)
            s_tr, r_tr = _sample_both(sensor, reference, ladder.rate_hz,
                                      ladder.step_s - ladder.settle_s)
        for a, b in _chunks(max(s_tr.start_s, r_tr.start_s), min(s_tr.end_s, r_tr.end_s),
                            ladder.chunk_s):
            points.append({"step": step, "threads": threads,
                           "sensor_w": s_tr.window(a, b) / (b - a),
                           "reference_w": r_tr.window(a, b) / (b - a)})
    return points


def _sample_both(sensor: Sensor, reference: Sensor, rate_hz: float, duration_s: float) -> tuple:
    s_sampler, r_sampler = Sampler(sensor, rate_hz), Sampler(reference, rate_hz)
    s_sampler.start()
    r_sampler.start()
    time.sleep(max(duration_s, 0.0))
    r_tr, s_tr = r_sampler.stop(), s_sampler.stop()
    for name, tr in ((sensor.name, s_tr), (f"reference {reference.name}", r_tr)):
        if not tr.valid:
            raise HarnessError(f"calibration: the {name} trace is invalid: {tr.invalid_reason}")
    return s_tr, r_tr


def _chunks(t0: float, t1: float, chunk_s: float) -> Iterator[tuple[float, float]]:
    n = int((t1 - t0) // chunk_s)
    for i in range(n):
        yield t0 + i * chunk_s, t0 + (i + 1) * chunk_s


def make_calibration(sensor: Sensor, reference: Sensor, points: list[dict], ladder: Ladder,
                     host: str, device_profile: str | None,
                     reference_accuracy: Accuracy | None) -> Calibration:
    fit = fit_affine([p["sensor_w"] for p in points], [p["reference_w"] for p in points])
    xs = [p["sensor_w"] for p in points]
    return Calibration(
        sensor=sensor.name, reference=reference.name, gain=fit.gain, offset_w=fit.offset_w,
        gain_stderr=fit.gain_stderr, offset_stderr_w=fit.offset_stderr_w,
        cov_gain_offset_w=fit.cov_gain_offset_w, residual_rms_w=fit.residual_rms_w,
        n_points=fit.n_points, power_range_w=(min(xs), max(xs)),
        reference_accuracy=reference_accuracy.to_dict() if reference_accuracy else None,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), host=host,
        device_profile=device_profile, ladder=asdict(ladder) | {"steps": list(ladder.steps)},
        points=tuple({k: (round(v, 6) if isinstance(v, float) else v) for k, v in p.items()}
                     for p in points))

