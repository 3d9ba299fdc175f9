"""A sensor trace: timestamps (time.monotonic(), the backend's clock) and readings, plus the
checks that decide whether its joules can be trusted.

Power traces are integrated with the trapezoid rule over the actual timestamps; counter traces
are differenced, interpolating linearly between reads at window edges.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GAP_FACTOR = 3.0  # an interval longer than 3x the nominal period is a gap
MAX_GAP_FRACTION = 0.25  # power traces: more time than this inside gaps -> too sparse to integrate
STUCK_AFTER_S = 2.0  # counters: no change for this long while being read -> broken sensor
TRACE_CSV_HEADER = ("repetition", "t_s", "power_w")


@dataclass
class Trace:
    kind: str  # "power": values are W; "counter": values are cumulative J from the first read
    t_s: np.ndarray
    values: np.ndarray
    nominal_rate_hz: float
    sensor: dict  # Sensor.info(): name, method, model, coverage, notes, fallback_reason
    read_errors: list[str] = field(default_factory=list)  # first few messages
    read_error_count: int = 0
    max_power_w: float = 2000.0
    check_stuck: bool = True
    invalid_reason: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=float)
        self.values = np.asarray(self.values, dtype=float)
        self.invalid_reason = _invalid_reason(self)

    # -- shape ------------------------------------------------------------------------------
    @property
    def valid(self) -> bool:
        return self.invalid_reason is None

    @property
    def start_s(self) -> float:
        return float(self.t_s[0]) if len(self.t_s) else float("nan")

    @property
    def end_s(self) -> float:
        return float(self.t_s[-1]) if len(self.t_s) else float("nan")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s if len(self.t_s) > 1 else 0.0

    @property
    def sample_count(self) -> int:
        return int(len(self.t_s))

    @property
    def achieved_rate_hz(self) -> float | None:
        d = self.duration_s
        return (self.sample_count - 1) / d if d > 0 else None

    def _gap_intervals(self) -> np.ndarray:
        dt = np.diff(self.t_s)
        return dt[dt > GAP_FACTOR / self.nominal_rate_hz]

    @property
    def gaps(self) -> int:
        return int(len(self._gap_intervals()))

    # -- energy -----------------------------------------------------------------------------
    def window(self, t0: float, t1: float) -> float:
        """Joules between two monotonic times inside the trace."""
        self._check_inside(t0, t1)
        if self.kind == "counter":
            e = np.interp([t0, t1], self.t_s, self.values)
            return float(e[1] - e[0])
        t, p = self._clipped(t0, t1)
        return _trapezoid_j(t, p)

    def energy_j(self) -> float:
        return self.window(self.start_s, self.end_s)

    def peak_power_w(self, t0: float, t1: float) -> float:
        """Highest reading in the window (counters: highest power between counter changes)."""
        self._check_inside(t0, t1)
        if self.kind == "power":
            return float(np.max(self._clipped(t0, t1)[1]))
        t_lo, t_hi, p = _counter_intervals(self.t_s, self.values)
        overlap = (t_hi > t0) & (t_lo < t1)
        return float(np.max(p[overlap])) if overlap.any() else self.window(t0, t1) / (t1 - t0)

    def power_series(self) -> tuple[np.ndarray, np.ndarray]:
        """(t, power_w) for plots and CSV; counters give the power between counter changes,
        placed at the middle of each interval."""
        if self.kind == "power":
            return self.t_s, self.values
        t_lo, t_hi, p = _counter_intervals(self.t_s, self.values)
        return (t_lo + t_hi) / 2, p

    def to_rows(self, label: str | int) -> list[tuple[str | int, float, float]]:
        """Rows for traces/<cell_id>.csv (`repetition,t_s,power_w`, t_s from the trace start; the
        launcher prefixes the attempt column)."""
        t, p = self.power_series()
        return [(label, round(float(ti - self.start_s), 6), round(float(pi), 6))
                for ti, pi in zip(t, p)]

    def _check_inside(self, t0: float, t1: float) -> None:
        if not self.sample_count >= 2:
            raise ValueError("trace has fewer than 2 samples")
        if not (self.start_s <= t0 < t1 <= self.end_s):
            raise ValueError(f"window [{t0:.3f}, {t1:.3f}] is not inside the trace "
                             f"[{self.start_s:.3f}, {self.end_s:.3f}] (monotonic s)")

    def _clipped(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        inner = (self.t_s > t0) & (self.t_s < t1)
        t = np.concatenate(([t0], self.t_s[inner], [t1]))
        p = np.concatenate(([np.interp(t0, self.t_s, self.values)], self.values[inner],
                            [np.interp(t1, self.t_s, self.values)]))
        return t, p


def _trapezoid_j(t: np.ndarray, p: np.ndarray) -> float:
    """Trapezoid rule written out (np.trapezoid needs numpy 2; the runner allows 1.24)."""
    return float(np.sum((p[1:] + p[:-1]) * np.diff(t)) / 2.0)


def _counter_intervals(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intervals between reads where the counter changed (coarse counters such as NVML update
    every 20-100 ms; differencing every read would alternate 0 W and double power)."""
    if len(t) < 2:
        return np.array([]), np.array([]), np.array([])
    idx = np.concatenate(([0], np.nonzero(np.diff(e) != 0)[0] + 1))
    if idx[-1] != len(t) - 1 and len(idx) == 1:
        idx = np.array([0, len(t) - 1])
    t_lo, t_hi = t[idx[:-1]], t[idx[1:]]
    de = e[idx[1:]] - e[idx[:-1]]
    return t_lo, t_hi, de / (t_hi - t_lo)


def _invalid_reason(tr: Trace) -> str | None:
    if tr.read_error_count:
        return (f"{tr.read_error_count} sensor read error(s); first: "
                f"{tr.read_errors[0] if tr.read_errors else 'unknown'}")
    if tr.sample_count < 2:
        return f"only {tr.sample_count} sample(s); at least 2 are needed"
    if not np.all(np.isfinite(tr.values)):
        return "non-finite reading (NaN or infinity) from the sensor"
    if np.any(np.diff(tr.t_s) <= 0):
        return "timestamps are not strictly increasing"
    return _counter_problem(tr) if tr.kind == "counter" else _power_problem(tr)


def _power_problem(tr: Trace) -> str | None:
    low, high = float(np.min(tr.values)), float(np.max(tr.values))
    if low < 0:
        return f"negative power reading ({low:.3f} W)"
    if high > tr.max_power_w:
        return f"implausibly high power reading ({high:.1f} W > {tr.max_power_w:.0f} W)"
    gap_s = float(np.sum(tr._gap_intervals()))
    if tr.duration_s > 0 and gap_s / tr.duration_s > MAX_GAP_FRACTION:
        return (f"too sparse to integrate: {gap_s:.2f} s of {tr.duration_s:.2f} s lies in "
                f"{tr.gaps} gap(s) longer than {GAP_FACTOR:g}x the sampling period")
    return None


def _counter_problem(tr: Trace) -> str | None:
    de = np.diff(tr.values)
    if np.any(de < 0):
        return f"energy counter went backwards by {-float(np.min(de)):.3f} J (reset?)"
    if tr.check_stuck:
        stuck_s = _longest_flat_s(tr.t_s, tr.values)
        if stuck_s >= STUCK_AFTER_S:
            return f"energy counter stuck: no change for {stuck_s:.2f} s"
    _, _, p = _counter_intervals(tr.t_s, tr.values)
    if len(p) and float(np.max(p)) > tr.max_power_w:
        return f"implausibly high power from the counter ({float(np.max(p)):.1f} W)"
    return None


def _longest_flat_s(t: np.ndarray, e: np.ndarray) -> float:
    changes = np.concatenate(([0], np.nonzero(np.diff(e) != 0)[0] + 1, [len(t) - 1]))
    return float(np.max(np.diff(t[changes]))) if len(changes) > 1 else 0.0
