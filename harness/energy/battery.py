"""Battery figures of a soak: answers and tokens per 1% of battery, and projected battery life.

The figures come from the battery's own gauge read during the soak (harness.devices.state
`read_battery_gauge`), not from a power sensor: "how many answers per charge" is what the gauge
says, including everything the phone or laptop spent meanwhile (screen, radios, conversion
losses). Gauges are coarse: Android's `capacity` and most laptops' report whole percent, so the
time of a step is known only to the poll that first saw it, and the fraction of a percent already
used when the soak started is unknown. The figures are therefore timed between the FIRST and LAST
step the gauge made during the soak: at least two steps are needed to time one whole percent.
Nothing is reported (the reason is) when the battery was charging, when the gauge rose, or when it
made fewer than two steps within the soak; the note always says what resolution was achieved.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence

DISCHARGING = "discharging"
S_PER_H = 3600.0


@dataclass(frozen=True)
class GaugeReading:
    """One poll of the battery gauge (monotonic time, level in percent of full charge)."""

    t_s: float
    level_pct: float | None
    status: str | None  # the kernel's / Termux's status word: Discharging, Charging, Full, ...
    source: str = ""  # where the level came from (capacity, charge_now/charge_full, ...)


@dataclass(frozen=True)
class BatteryFigures:
    """The battery figures of one soak; all None with `refused` set when they cannot be given."""

    tokens_per_pct: float | None = None
    answers_per_pct: float | None = None
    pct_timed: float | None = None  # whole percent timed between the first and last step
    pct_per_s: float | None = None  # discharge rate over the timed span
    life_continuous_s: float | None = None  # a full battery at the soak's own pace
    life_at_rate_s: float | None = None  # a full battery at the stated answer rate
    note: str = ""  # resolution achieved, or why there are no figures
    refused: bool = True
    warnings: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float | None]:
        return {"battery_tokens_per_pct": self.tokens_per_pct,
                "battery_answers_per_pct": self.answers_per_pct,
                "battery_pct_timed": self.pct_timed,
                "battery_life_continuous_s": self.life_continuous_s,
                "battery_life_at_rate_s": self.life_at_rate_s}


def battery_figures(readings: Sequence[GaugeReading], token_times_s: Sequence[float],
                    answer_times_s: Sequence[float],
                    answers_per_h: float | None = None) -> BatteryFigures:
    """Figures from gauge polls and the times each token / answer was produced (sorted).

    `answers_per_h`: the stated query rate for the projection (None: only the soak's own pace).
    """
    usable = [r for r in readings if r.level_pct is not None]
    if not usable:
        return BatteryFigures(note="no battery gauge was readable during the soak (no battery "
                                   "under /sys/class/power_supply and no termux-battery-status)")
    refusal = _charging_refusal(usable)
    if refusal:
        return BatteryFigures(note=refusal)
    steps = _steps(usable)
    if len(steps) < 2:
        return BatteryFigures(note=_too_few_steps(usable, steps))
    (t_a, level_a), (t_b, level_b) = steps[0], steps[-1]
    pct = level_a - level_b
    tokens = _count_between(token_times_s, t_a, t_b)
    answers = _count_between(answer_times_s, t_a, t_b)
    pct_per_s = pct / (t_b - t_a)
    answers_per_pct = answers / pct
    at_rate, warnings = _at_rate(answers_per_pct, answers, t_b - t_a, answers_per_h)
    return BatteryFigures(
        tokens_per_pct=tokens / pct, answers_per_pct=answers_per_pct, pct_timed=pct,
        pct_per_s=pct_per_s, life_continuous_s=100.0 / pct_per_s, life_at_rate_s=at_rate,
        refused=False, warnings=warnings, note=_resolution(usable, steps, pct, t_b - t_a))


def _charging_refusal(readings: Sequence[GaugeReading]) -> str | None:
    """A charging (or full, or plugged) battery measures the charger, not the answers."""
    for r in readings:
        if (r.status or "").strip().lower() != DISCHARGING:
            return (f"refused: the battery reported status '{r.status}' during the soak (it must "
                    "be 'Discharging' throughout): unplug the charger and run the soak again")
    for prev, cur in zip(readings, readings[1:]):
        if cur.level_pct > prev.level_pct:  # type: ignore[operator]
            return (f"refused: the gauge rose from {prev.level_pct:g}% to {cur.level_pct:g}% "
                    "during the soak (charging, or a gauge recalibration)")
    return None


def _steps(readings: Sequence[GaugeReading]) -> list[tuple[float, float]]:
    """(time first seen, new level) of every change of the gauge after the first reading."""
    return [(cur.t_s, float(cur.level_pct))  # type: ignore[arg-type]
            for prev, cur in zip(readings, readings[1:]) if cur.level_pct != prev.level_pct]


def _too_few_steps(readings: Sequence[GaugeReading], steps: list[tuple[float, float]]) -> str:
    span = readings[-1].t_s - readings[0].t_s
    first = readings[0].level_pct
    if not steps:
        return (f"refused: the gauge did not move within the soak (stayed at {first:g}% for "
                f"{span:.0f} s; source {readings[0].source}); a coarse gauge reports whole "
                "percent steps: run a longer soak (duration_s) so that it steps at least twice")
    t, level = steps[0]
    return (f"refused: the gauge moved once ({first:g}% -> {level:g}% at "
            f"{t - readings[0].t_s:.0f} s of {span:.0f} s; source {readings[0].source}); two "
            "steps are needed to time a whole percent (the part of a percent used before the "
            "first step is unknown): run a longer soak")


def _count_between(times: Sequence[float], t0: float, t1: float) -> int:
    return bisect.bisect_left(times, t1) - bisect.bisect_left(times, t0)


def _at_rate(answers_per_pct: float, answers: int, span_s: float,
             answers_per_h: float | None) -> tuple[float | None, list[str]]:
    """Hours of a full battery spent only on answering at the stated rate (idle drain between
    answers not counted). A rate the device did not sustain in the soak cannot be projected."""
    if answers_per_h is None:
        return None, []
    achieved_per_h = answers / span_s * S_PER_H
    if answers_per_h > achieved_per_h:
        return None, [f"battery projection: the stated {answers_per_h:g} answers/h is more than "
                      f"the {achieved_per_h:.1f} answers/h this device sustained in the soak"]
    return 100.0 * answers_per_pct / answers_per_h * S_PER_H, []


def _resolution(readings: Sequence[GaugeReading], steps: list[tuple[float, float]], pct: float,
                span_s: float) -> str:
    sizes = sorted(abs(a - b) for (_, a), (_, b) in zip(steps, steps[1:])) or [pct]
    times = [r.t_s for r in readings]
    gaps = [b - a for a, b in zip(times, times[1:])]
    poll = max(gaps) if gaps else 0.0
    err = 2 * poll / span_s if span_s > 0 else float("inf")
    return (f"resolution: {readings[0].source} in steps of {sizes[len(sizes) // 2]:g}%; "
            f"{pct:g}% timed between the first and last step ({span_s:.0f} s); each step's time "
            f"is known to within {poll:.2f} s (the poll interval), so the figures are good to "
            f"about {100 * err:.1f}% from timing alone")
