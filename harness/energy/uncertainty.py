"""How far an energy figure can be trusted: small pure functions, no I/O (docs/energy.md).

Three sources are carried into every energy record, each as a *relative standard uncertainty*
(k = 1, a fraction of the figure):

- the sensor: its stated accuracy (`Accuracy`, in each sensor module with its source), or, when a
  calibration is applied, the calibration fit's standard errors combined with the reference
  meter's stated accuracy (the calibration replaces the sensor's datasheet error by a measured one);
- sampling: how much of the window lies between two readings (the read interval, or the sensor's
  own refresh interval if slower) over the window length;
- the repetitions' spread, which the cell summary already carries as a 95% t-interval.

Datasheet figures are limits (a maximum error, not a standard deviation); GUM 4.3.7 turns a limit
`a` into a standard uncertainty `a / sqrt(3)` (a rectangular distribution). Independent parts are
added in quadrature. Linear addition is used where the parts are not independent, and the docs
say which: a power reading V x I from one ADC (the voltage and current gain errors share the
chip's reference: TI's own 0.5% INA3221 power figure is the 0.25% + 0.25% sum), and the rails of
one chip summed into one figure (one relative limit for the sum). A calibration's gain and offset
errors are correlated through the fit, so their covariance is kept, not dropped.

MLPerf Power asks for a measurement window of at least 60 s with its analyzers logged once a
second (Tschand et al., "MLPerf Power", HPCA 2025): at least ~60 readings per window. Here the
sampling uncertainty is `interval / (window x sqrt(3))`; the 1% flag (`SAMPLING_FLAG_REL`) is
reached below ~58 readings per window, the same floor.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

SQRT3 = math.sqrt(3.0)
SAMPLING_FLAG_REL = 0.01  # a figure whose sampling uncertainty is above this is flagged
COVERAGE_K = 2.0  # expanded uncertainty for a ~95% interval, beside the repetitions' 95% t-CI


@dataclass(frozen=True)
class Accuracy:
    """A sensor's stated accuracy, as its datasheet or vendor gives it (limits, not std devs).

    gain_limit: +- fraction of the reading (None: no figure is published, the uncertainty is
    then unknown, never zero); offset_limit_w: +- watts whatever the reading; update_interval_s:
    the sensor's own refresh period (reading faster only repeats values; 0: every read is new).
    """

    gain_limit: float | None
    offset_limit_w: float
    update_interval_s: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Accuracy":
        return cls(d.get("gain_limit"), float(d.get("offset_limit_w") or 0.0),
                   float(d.get("update_interval_s") or 0.0), str(d.get("source") or ""))


def accuracy_of(sensor_name: str | None) -> Accuracy | None:
    """The `ACCURACY` a sensor module states (None: the module states none)."""
    if not sensor_name:
        return None
    try:
        module = importlib.import_module(f"{__package__}.sensors.{sensor_name}")
    except ImportError:
        return None
    acc = getattr(module, "ACCURACY", None)
    return acc if isinstance(acc, Accuracy) else None


def standard_from_limit(limit: float) -> float:
    """GUM 4.3.7: a value known only to lie within +-limit has standard uncertainty limit/sqrt(3)."""
    return abs(limit) / SQRT3


def quadrature(parts: Iterable[float | None]) -> float:
    """sqrt(sum of squares) of the known (not None) independent parts."""
    return math.sqrt(sum(p * p for p in parts if p is not None))


def sensor_rel(acc: Accuracy | None, power_w: float) -> float | None:
    """Relative standard uncertainty of a reading of `power_w` from the sensor's stated limits.

    Gain and offset errors are independent (quadrature); None when no gain figure is published
    or the power is not positive (a relative figure is then meaningless)."""
    if acc is None or acc.gain_limit is None or not power_w > 0:
        return None
    return standard_from_limit(quadrature([acc.gain_limit, acc.offset_limit_w / power_w]))


def sampling_rel(window_s: float, rate_hz: float | None, update_interval_s: float = 0.0) -> float | None:
    """Relative standard uncertainty of integrating a window from discrete readings.

    At most one reading interval of the window is interpolated rather than seen (the two edges
    together: each edge interpolates inside one interval); a limit of interval/window,
    rectangular. The interval is the read period or the sensor's own refresh, whichever is
    longer. None without a rate or a window."""
    if not rate_hz or rate_hz <= 0 or not window_s or window_s <= 0:
        return None
    interval_s = max(1.0 / rate_hz, update_interval_s)
    return standard_from_limit(interval_s / window_s)


def sampling_flagged(u_sampling_rel: float | None) -> bool:
    """True when a figure's sampling uncertainty is above 1% (too few readings per window)."""
    return u_sampling_rel is not None and u_sampling_rel > SAMPLING_FLAG_REL


def affine_rel(raw_w: float, gain_var: float, offset_var_w2: float, cov_w: float,
               corrected_w: float) -> float | None:
    """Relative standard uncertainty of a fitted correction gain x raw + offset at `raw_w`.

    var = raw^2 var(gain) + var(offset) + 2 raw cov(gain, offset): the covariance of the two fit
    parameters is kept (they come from the same points and are correlated)."""
    if not corrected_w > 0:
        return None
    var = raw_w * raw_w * gain_var + offset_var_w2 + 2.0 * raw_w * cov_w
    return math.sqrt(max(var, 0.0)) / corrected_w


def calibrated_rel(cal: Mapping, corrected_w: float) -> float | None:
    """A calibrated sensor's relative standard uncertainty at `corrected_w`: the fit's (gain and
    offset standard errors with their covariance) and the reference meter's stated accuracy,
    independent, in quadrature. None when the reference states no accuracy (unknown, not 0)."""
    gain = float(cal["gain"])
    raw_w = (corrected_w - float(cal["offset_w"])) / gain
    u_fit = affine_rel(raw_w, float(cal["gain_stderr"]) ** 2, float(cal["offset_stderr_w"]) ** 2,
                       float(cal.get("cov_gain_offset_w") or 0.0), corrected_w)
    ref = cal.get("reference_accuracy")
    u_ref = sensor_rel(Accuracy.from_dict(ref), corrected_w) if isinstance(ref, Mapping) else None
    if u_fit is None or u_ref is None:
        return None
    return quadrature([u_fit, u_ref])


def sensor_part(sensor_info: Mapping, power_w: float) -> tuple[float | None, str]:
    """(relative standard uncertainty, label) of a sensor as opened: its calibration's when one is
    applied (label "calibration"), else its stated accuracy (label "sensor")."""
    cal = sensor_info.get("calibration")
    if isinstance(cal, Mapping):
        return calibrated_rel(cal, power_w), "calibration"
    return sensor_rel(accuracy_of(sensor_info.get("sensor")), power_w), "sensor"


def per_token_rel(u_energy_rel: float | None) -> float | None:
    """Joules per token and tokens per joule: the token count is exact, so the energy's relative
    uncertainty carries over unchanged (first order for the reciprocal)."""
    return u_energy_rel


@dataclass(frozen=True)
class Interval:
    """A figure's combined ~95% interval and what dominates it."""

    low: float
    high: float
    half_width: float
    dominant: str  # "sensor" | "calibration" | "sampling" | "repetitions"
    parts: dict  # name -> ~95% half-width in the figure's unit


def combined_interval(mean: float, ci95_low: float | None, ci95_high: float | None,
                      u_sensor_rel: float | None, u_sampling_rel: float | None,
                      sensor_label: str = "sensor") -> Interval:
    """Repetition spread (the summary's 95% t-interval) combined in quadrature with the
    systematic parts expanded to ~95% (k = 2): the sensor (or calibration) and sampling.

    The repetitions' half-width is half the t-interval (no interval, n = 1: 0). `dominant` names
    the part with the largest half-width."""
    parts = {"repetitions": (ci95_high - ci95_low) / 2.0
             if ci95_low is not None and ci95_high is not None else 0.0}
    if u_sensor_rel is not None:
        parts[sensor_label] = COVERAGE_K * u_sensor_rel * abs(mean)
    if u_sampling_rel is not None:
        parts["sampling"] = COVERAGE_K * u_sampling_rel * abs(mean)
    half = quadrature(parts.values())
    dominant = max(parts, key=lambda k: parts[k])
    return Interval(mean - half, mean + half, half, dominant, parts)


def record_fields(sensor_info: Mapping, power_avg_w: float | None, rate_hz: float | None,
                  window_s: float, phase_s: Mapping[str, float]) -> dict:
    """The uncertainty fields of one repetition record (relative standard uncertainties, k = 1).

    `energy_u_sensor_rel` (stated accuracy, or calibration + reference) at the window's average
    power; `energy_u_sampling_rel` for the whole window and `energy_<phase>_u_sampling_rel` for
    the prefill/decode phases (whose per-token figures are integrated over those phases)."""
    acc = accuracy_of(sensor_info.get("sensor"))
    update_s = acc.update_interval_s if acc else 0.0
    u_sensor = sensor_part(sensor_info, power_avg_w)[0] if power_avg_w is not None else None
    out = {"energy_u_sensor_rel": u_sensor,
           "energy_u_sampling_rel": sampling_rel(window_s, rate_hz, update_s)}
    for phase in ("prefill", "decode"):
        if phase in phase_s:
            out[f"energy_{phase}_u_sampling_rel"] = sampling_rel(phase_s[phase], rate_hz, update_s)
    return out


def provenance_fields(sensor_info: Mapping) -> dict:
    """Per-cell constants: the calibration applied (None: none) and the sensor's stated accuracy
    with its source (None: the sensor module states none)."""
    acc = accuracy_of(sensor_info.get("sensor"))
    return {"energy_calibration": sensor_info.get("calibration"),
            "energy_accuracy": acc.to_dict() if acc else None}


# The figures the report shows with a combined interval, each with the sampling part that
# belongs to its integration window (per-token figures: their phase; the rest: the window).
INTERVAL_FIGURES = {"energy_per_decode_token_j": "energy_decode_u_sampling_rel",
                    "energy_per_prefill_token_j": "energy_prefill_u_sampling_rel",
                    "tokens_per_j": "energy_u_sampling_rel",
                    "energy_gross_j": "energy_u_sampling_rel"}
INTERVAL_SUFFIXES = ("_u95_low", "_u95_high", "_u_dominant", "_u_sensor_unknown",
                     "_sampling_flagged")


def interval_fields(row: Mapping, calibrated: bool) -> dict:
    """For a report row (summary means): `<figure>_u95_low/high` (repetitions, sensor or
    calibration and sampling combined), `_u_dominant` (the largest part), `_u_sensor_unknown`
    (no stated accuracy: the interval leaves the sensor out) and `_sampling_flagged` (> 1%)."""
    out: dict = {}
    u_sensor = row.get("energy_u_sensor_rel")
    for figure, sampling in INTERVAL_FIGURES.items():
        mean = row.get(figure)
        if isinstance(mean, bool) or not isinstance(mean, (int, float)):
            continue
        u_samp = row.get(sampling)
        if u_samp is None and u_sensor is None:
            continue  # records from before uncertainty was recorded: the t-interval says it all
        iv = combined_interval(mean, row.get(f"{figure}_ci95_low"), row.get(f"{figure}_ci95_high"),
                               u_sensor, u_samp, "calibration" if calibrated else "sensor")
        out.update({f"{figure}_u95_low": iv.low, f"{figure}_u95_high": iv.high,
                    f"{figure}_u_dominant": iv.dominant,
                    f"{figure}_u_sensor_unknown": u_sensor is None,
                    f"{figure}_sampling_flagged": sampling_flagged(u_samp)})
    return out
