"""The soak workload: answer continuously for minutes and record how the device holds up.

A phone or a fanless Pi answers the first prompts fast, then heats, throttles and slows down;
a repetition of a few seconds never sees it. A soak generates answer after answer (the same
prompt, greedy, full prefill each time, as the `generation` kind does) for `duration_s` (default
10 minutes) or `queries` answers, and cuts the run into windows (default 10 s). Per window it
records tokens/s, answers, energy and power (from the cell's running energy sampler), CPU and GPU
clocks, temperatures and throttle flags (polled every `state_poll_s` through the device room's
readers, harness.sysfs and vcgencmd on PATH). Per repetition it derives the time to the first
throttle, the sustained/burst speed ratio, the energy-per-token drift and, on a battery, answers
and tokens per 1% of battery (harness.energy.battery). Windows go to samples/<cell_id>.jsonl.

It is a speed kind (no prompt-cache reuse; speed and energy figures), but one repetition with
no warm-up by default (harness.workloads.default_counts): a warm-up would pre-heat the device
and hide the burst, and three 10-minute soaks are rarely what anyone meant.
"""
from __future__ import annotations

import bisect
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..backends.base import Backend
from ..energy.battery import BatteryFigures, GaugeReading, battery_figures
from ..errors import HarnessError
from ..schema import Node
from .base import WorkloadContext, WorkloadResult
from .generation import prompt_fields

DEFAULT_DURATION_S = 600.0
DEFAULT_WINDOW_S = 10.0
DEFAULT_POLL_S = 1.0
DEFAULT_COMPARE_WINDOWS = 3
MIN_TAIL_FRACTION = 0.5  # a shorter remainder (x window_s) joins the last window
KEYS = ("name", "kind", "prompt", "prompt_text", "max_tokens", "stop", "ignore_eos", "duration_s",
        "queries", "window_s", "state_poll_s", "compare_windows", "answers_per_h")
GPU_WORDS = ("gpu", "mali", "gr3d", "kgsl")


@dataclass(frozen=True)
class Config:
    name: str
    prompt_name: str  # builtin name, or "inline"
    prompt: str
    max_tokens: int
    stop: tuple[str, ...]
    ignore_eos: bool
    duration_s: float | None  # stop after this long (None: only `queries` stops it)
    queries: int | None  # stop after this many answers
    window_s: float
    state_poll_s: float
    compare_windows: int  # burst = first N windows, sustained = last N
    answers_per_h: float | None  # stated query rate for the battery projection
    needs_logits: bool = field(default=False)

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        node.mapping(KEYS, required=("name",))
        prompt = prompt_fields(node, default_prompt="chat_short")
        window_s = node.opt("window_s", "float", DEFAULT_WINDOW_S, min=0.05)
        queries = node.opt("queries", "int", None, min=1)
        duration_s = node.opt("duration_s", "float", None if queries else DEFAULT_DURATION_S, min=0.0)
        if duration_s is not None and duration_s < window_s:
            raise node.get("duration_s" if node.has("duration_s") else "window_s").fail(
                f"a soak of {duration_s:g} s is shorter than one window ({window_s:g} s): nothing "
                "would be recorded; make duration_s at least window_s (a soak is meant to last "
                "minutes: default duration_s 600, window_s 10)")
        poll_s = node.opt("state_poll_s", "float", min(DEFAULT_POLL_S, window_s), min=0.01)
        if poll_s > window_s:
            raise node.get("state_poll_s").fail(f"must be <= window_s ({window_s:g} s): every "
                                                "window needs at least one reading of the device")
        return cls(name=node.get("name").str(), **prompt, duration_s=duration_s,
                   queries=queries, window_s=window_s, state_poll_s=poll_s,
                   compare_windows=node.opt("compare_windows", "int", DEFAULT_COMPARE_WINDOWS, min=1),
                   answers_per_h=node.opt("answers_per_h", "float", None, min=0.001))


# -- time ------------------------------------------------------------------------------------
class Clock(Protocol):
    """The soak's clock: the backend's time.monotonic(), or a scripted clock in tests."""

    def now(self) -> float: ...

    def every(self, period_s: float, fn: Callable[[float], None]) -> Callable[[], None]:
        """Call fn(now) every period_s from now on until the returned stop() is called."""


class MonotonicClock:
    """time.monotonic(), with the periodic device poll in its own thread (a query can last
    longer than a window, so polls cannot wait for the generation loop)."""

    def now(self) -> float:
        return time.monotonic()

    def every(self, period_s: float, fn: Callable[[float], None]) -> Callable[[], None]:
        stop = threading.Event()

        def loop() -> None:
            nxt = time.monotonic() + period_s
            while not stop.wait(max(0.0, nxt - time.monotonic())):
                fn(time.monotonic())
                nxt += period_s
                if nxt < time.monotonic():  # fell behind (a slow tool): no burst of polls
                    nxt = time.monotonic() + period_s

        thread = threading.Thread(target=loop, name="soak-monitor", daemon=True)
        thread.start()

        def cancel() -> None:
            stop.set()
            thread.join()

        return cancel


# -- device polls ----------------------------------------------------------------------------
class DeviceProbe:
    """Clocks, temperatures, throttle signals and the battery gauge, read once per poll.

    Every reader fails soft (a line in `errors`, the field None), as the cell's state readers
    do, and a poll has the shape of a cell's device state, so throttling is judged by the same
    rules (harness.devices.throttle_reasons) against the soak's first poll: a vcgencmd 'now' bit,
    a 'since boot' bit that appeared, a non-fan cooling device active, or a cpufreq policy whose
    max frequency was capped below its starting value and the hardware maximum. nvpmodel is not
    polled (a tool run per second for a mode that does not change by itself).
    """

    def __init__(self, profile: Any = None):
        self.zones: tuple[str, ...] = tuple(getattr(profile, "thermal_zones", ()) or ())
        mode = getattr(profile, "throttling", None)
        self.throttling = mode or ("vcgencmd" if shutil.which("vcgencmd") else "linux")
        self.errors: list[str] = []
        self._battery = True  # stops trying after the first failure (a Pi has none)
        self._first: dict[str, Any] | None = None

    def read(self, t: float) -> dict[str, Any]:
        from ..devices import state

        errors: list[str] = []
        soft = state.soft_read
        poll: dict[str, Any] = {
            "t_s": t, "cpufreq": soft("cpufreq", state.read_cpufreq, errors) or [],
            "temperatures_c": soft("thermal", lambda: state.read_temperatures(self.zones, errors),
                                   errors) or {},
            "devfreq_hz": soft("devfreq", state.read_devfreq, errors) or {}}
        throttling: dict[str, Any] = {}
        if self.throttling == "vcgencmd":
            throttling["vcgencmd"] = soft("throttling", state.read_vcgencmd_throttled, errors)
        if self.throttling != "none":
            throttling["cooling_devices"] = soft("throttling", state.read_cooling_devices, errors)
        poll["throttling"] = throttling
        if self._battery:
            poll["battery"] = soft("battery", state.read_battery_gauge, errors)
            self._battery = poll["battery"] is not None
        if self._first is None:
            self._first = poll
        poll["throttle_reasons"] = state.throttle_reasons(self._first, poll)
        self.errors += [e for e in errors if e not in self.errors]
        return poll


# -- the run ---------------------------------------------------------------------------------
@dataclass
class _Log:
    """What the generation loop and the poller collected (monotonic seconds)."""

    token_times_s: list[float] = field(default_factory=list)
    answer_times_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    tokens_in: int = 0
    polls: list[dict[str, Any]] = field(default_factory=list)
    poll_failures: list[str] = field(default_factory=list)


def run(backend: Backend, config: Config, ctx: WorkloadContext | None = None,
        clock: Clock | None = None) -> WorkloadResult:
    clock = clock or MonotonicClock()
    probe = DeviceProbe(getattr(ctx, "profile", None))
    log = _Log()
    start = clock.now()
    log.polls.append(probe.read(start))
    stop_polls = clock.every(config.state_poll_s, lambda t: _poll(probe, log, t))
    try:
        _generate(backend, config, clock, log, start)
    finally:
        stop_polls()
    end = clock.now()
    log.polls.append(probe.read(end))
    bounds = window_bounds(start, end, config.window_s)
    if not bounds:
        raise HarnessError(f"the soak ran {end - start:.1f} s ({len(log.answer_times_s)} answers), "
                           f"shorter than one window ({config.window_s:g} s): raise `queries` or "
                           "`duration_s`, or lower `window_s`")
    trace, warnings = _power_trace(getattr(ctx, "sampler", None), bounds[-1][1])
    windows = build_windows(start, bounds, log, trace)
    derived = derive(windows, log.polls, start, config.compare_windows)
    battery = battery_figures(_gauge(log.polls), log.token_times_s, log.answer_times_s,
                              config.answers_per_h)
    warnings += _warnings(derived, battery, probe, log)
    summary = {"kind": "soak_summary", "start_monotonic_s": start, "window_s": config.window_s,
               "state_poll_s": config.state_poll_s, **derived, **battery.metrics(),
               "battery_note": battery.note}
    return WorkloadResult(metrics={**_speed(log, start, end), **derived, **battery.metrics()},
                          tokens_in=log.tokens_in, tokens_out=len(log.token_times_s),
                          samples=[*windows, summary], warnings=warnings,
                          extra={"battery_note": battery.note})


def _poll(probe: DeviceProbe, log: _Log, t: float) -> None:
    try:
        log.polls.append(probe.read(t))
    except Exception as e:  # a reader bug must not stop the soak silently: recorded
        if len(log.poll_failures) < 3:
            log.poll_failures.append(f"{type(e).__name__}: {e}")


def _generate(backend: Backend, config: Config, clock: Clock, log: _Log, start: float) -> None:
    while True:
        if config.queries is not None and len(log.answer_times_s) >= config.queries:
            return
        if config.duration_s is not None and clock.now() - start >= config.duration_s:
            return
        gen = backend.generate(config.prompt, config.max_tokens, stop=config.stop,
                               ignore_eos=config.ignore_eos)
        log.token_times_s += gen.token_times_s
        log.answer_times_s.append(gen.t_end_s)
        log.ttft_s.append(gen.ttft_s)
        log.tokens_in += gen.tokens_in


def window_bounds(start: float, end: float, window_s: float) -> list[tuple[float, float]]:
    """Whole windows from the start to `end`; the remainder is a window of its own when at least
    half a window long, else it joins the last window (no token or joule is left out)."""
    span = end - start
    n = int(math.floor(span / window_s + 1e-9))
    if n == 0:  # shorter than one window: nothing to compare, the caller refuses it
        return []
    bounds = [(start + i * window_s, start + (i + 1) * window_s) for i in range(n)]
    if span - n * window_s >= MIN_TAIL_FRACTION * window_s:
        bounds.append((start + n * window_s, end))
    elif bounds:
        bounds[-1] = (bounds[-1][0], end)
    return bounds


def _power_trace(sampler: Any, until: float) -> tuple[Any, list[str]]:
    """The running sampler's trace once it has a sample at or after `until` (waits at most three
    sampling periods); None without a sampler (warm-ups) or with a broken trace."""
    if sampler is None:
        return None, []
    deadline = time.monotonic() + 3.0 / sampler.rate_hz
    trace = sampler.snapshot()
    while trace.sample_count and trace.end_s < until and time.monotonic() < deadline:
        time.sleep(0.5 / sampler.rate_hz)
        trace = sampler.snapshot()
    if not trace.valid:
        return None, [f"soak: no power per window: {trace.invalid_reason}"]
    return trace, []


def _window_energy_j(trace: Any, t0: float, t1: float) -> float | None:
    if trace is None or trace.sample_count < 2:
        return None
    lo, hi = max(t0, trace.start_s), min(t1, trace.end_s)
    if hi - lo < 0.5 * (t1 - t0):  # the trace misses most of this window
        return None
    return trace.window(lo, hi) * (t1 - t0) / (hi - lo)


def build_windows(start: float, bounds: Sequence[tuple[float, float]], log: _Log,
                  trace: Any = None) -> list[dict[str, Any]]:
    """One row per window: speed, energy, clocks, temperatures, throttling, battery."""
    rows = []
    poll_t = [p["t_s"] for p in log.polls]
    for i, (t0, t1) in enumerate(bounds):
        last = i == len(bounds) - 1
        polls = log.polls[bisect.bisect_left(poll_t, t0):
                          (bisect.bisect_right if last else bisect.bisect_left)(poll_t, t1)]
        tokens = _count(log.token_times_s, t0, t1, last)
        energy_j = _window_energy_j(trace, t0, t1)
        rows.append({"kind": "soak_window", "window": i, "t_start_s": round(t0 - start, 6),
                     "t_end_s": round(t1 - start, 6), "window_s": t1 - t0, "tokens_out": tokens,
                     "answers": _count(log.answer_times_s, t0, t1, last),
                     "tokens_per_s": tokens / (t1 - t0), "energy_j": energy_j,
                     "power_w": None if energy_j is None else energy_j / (t1 - t0),
                     "energy_per_token_j": energy_j / tokens if energy_j is not None and tokens else None,
                     **_window_state(polls)})
    return rows


def _count(times: Sequence[float], t0: float, t1: float, inclusive_end: bool) -> int:
    hi = bisect.bisect_right(times, t1) if inclusive_end else bisect.bisect_left(times, t1)
    return hi - bisect.bisect_left(times, t0)


def _window_state(polls: list[dict[str, Any]]) -> dict[str, Any]:
    cur = [c["freq_hz"] for p in polls for c in p["cpufreq"] if c.get("freq_hz") is not None]
    caps = [c["max_freq_hz"] for p in polls for c in p["cpufreq"] if c.get("max_freq_hz") is not None]
    gpu = [v for p in polls for k, v in p["devfreq_hz"].items() if any(w in k.lower() for w in GPU_WORDS)]
    temps: dict[str, float] = {}
    for p in polls:
        for k, v in p["temperatures_c"].items():
            temps[k] = max(v, temps.get(k, v))
    reasons = list(dict.fromkeys(r for p in polls for r in p["throttle_reasons"]))
    gauge = next((p["battery"] for p in reversed(polls) if p.get("battery")), None)
    return {"polls": len(polls), "cpu_freq_hz": sum(cur) / len(cur) if cur else None,
            "cpu_max_freq_hz": min(caps) if caps else None,
            "gpu_freq_hz": sum(gpu) / len(gpu) if gpu else None,
            "max_temp_c": max(temps.values()) if temps else None, "temperatures_c": temps,
            "throttled": bool(reasons), "throttle_reasons": reasons,
            "battery_pct": gauge["level_pct"] if gauge else None,
            "battery_status": gauge["status"] if gauge else None}


def derive(windows: list[dict[str, Any]], polls: list[dict[str, Any]], start: float,
           compare: int) -> dict[str, float | None]:
    """Time to first throttle, burst and sustained speed, their ratio, energy-per-token drift."""
    onset = next((p["t_s"] - start for p in polls if p["throttle_reasons"]), None)
    n = min(compare, len(windows) // 2)
    first, last = windows[:n], windows[len(windows) - n:]
    burst, sustained = _speed_of(first), _speed_of(last)
    e_first, e_last = _j_per_token(first), _j_per_token(last)
    temps = [w["max_temp_c"] for w in windows if w["max_temp_c"] is not None]
    return {"soak_time_to_throttle_s": onset,
            "soak_burst_tokens_per_s": burst, "soak_sustained_tokens_per_s": sustained,
            "soak_sustained_ratio": sustained / burst if burst and sustained is not None else None,
            "soak_energy_per_token_drift": e_last / e_first - 1 if e_first and e_last is not None else None,
            "soak_throttled_fraction": sum(w["throttled"] for w in windows) / len(windows),
            "soak_max_temp_c": max(temps) if temps else None}


def _speed_of(windows: list[dict[str, Any]]) -> float | None:
    span = sum(w["window_s"] for w in windows)
    return sum(w["tokens_out"] for w in windows) / span if windows and span > 0 else None


def _j_per_token(windows: list[dict[str, Any]]) -> float | None:
    if not windows or any(w["energy_j"] is None for w in windows):
        return None
    tokens = sum(w["tokens_out"] for w in windows)
    return sum(w["energy_j"] for w in windows) / tokens if tokens else None


def _speed(log: _Log, start: float, end: float) -> dict[str, float | None]:
    return {"soak_tokens_per_s": len(log.token_times_s) / (end - start) if end > start else None,
            "soak_answers": float(len(log.answer_times_s)),
            "ttft_s": sum(log.ttft_s) / len(log.ttft_s) if log.ttft_s else None}


def _gauge(polls: list[dict[str, Any]]) -> list[GaugeReading]:
    return [GaugeReading(p["t_s"], p["battery"]["level_pct"], p["battery"]["status"],
                         p["battery"]["source"]) for p in polls if p.get("battery")]


def _warnings(derived: dict[str, Any], battery: BatteryFigures, probe: DeviceProbe,
              log: _Log) -> list[str]:
    out = []
    onset = derived["soak_time_to_throttle_s"]
    if onset is not None:
        first = next(p for p in log.polls if p["throttle_reasons"])
        out.append(f"soak: throttled after {onset:.1f} s ({'; '.join(first['throttle_reasons'])})")
    if battery.refused and any(p.get("battery") for p in log.polls):
        out.append(f"battery figures {battery.note}")
    out += battery.warnings
    out += [f"soak: device reading failed: {e}" for e in log.poll_failures]
    out += [f"soak state: {e}" for e in probe.errors[:3]]
    return out
