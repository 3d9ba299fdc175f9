"""A scripted device for soak tests, driven by one injected clock so every run is deterministic.

`FakeClock` is the soak's clock: time moves only when the fake backend generates (prefill and
each token advance it), and the soak's periodic device polls fire synchronously at their due
times inside `advance`. Before any poll sees the device, `ScriptedDevice.at(t)` rewrites the
fixture sysfs tree (HARNESS_SYSFS_ROOT) for time t: a thermal zone that heats, a cpufreq policy
whose max and current frequency step down at a scripted time, a battery whose capacity falls
1% every `pct_period_s`, and a vcgencmd state file read by a fake vcgencmd on PATH.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.backends.base import Backend, Generation, RuntimeSettings
from harness.energy.trace import Trace

MHZ_FAST, MHZ_SLOW = 2400, 1500


@dataclass
class ScriptedDevice:
    root: Path  # HARNESS_SYSFS_ROOT
    t0: float  # fake time the soak starts at
    throttle_at_s: float | None = None  # cpufreq cap (and slow-down) from this time on
    heat_c_per_s: float = 2.0
    pct_period_s: float | None = None  # battery: 1% per this many seconds
    pct_offset_s: float = 0.0  # time into the first percent when the soak starts
    level_start_pct: int = 80
    status: str = "Discharging"
    vcgencmd_at_s: float | None = None  # vcgencmd reports 0x50005 from this time on
    _written: dict = field(default_factory=dict)  # path -> text: files are rewritten on change only

    def throttled(self, t: float) -> bool:
        return self.throttle_at_s is not None and t - self.t0 >= self.throttle_at_s

    def mhz(self, t: float) -> int:
        return MHZ_SLOW if self.throttled(t) else MHZ_FAST

    def _write(self, path: Path, value: object) -> None:
        text = f"{value}\n"
        if self._written.get(path) != text:
            path.write_text(text)
            self._written[path] = text

    def at(self, t: float) -> None:
        rel = t - self.t0
        pol = self.root / "sys/devices/system/cpu/cpufreq/policy0"
        zone = self.root / "sys/class/thermal/thermal_zone0"
        for d in (pol, zone):
            d.mkdir(parents=True, exist_ok=True)
        khz = self.mhz(t) * 1000
        for name, value in (("related_cpus", "0 1 2 3"), ("scaling_cur_freq", khz),
                            ("scaling_max_freq", khz), ("scaling_min_freq", 600000),
                            ("cpuinfo_max_freq", MHZ_FAST * 1000), ("scaling_governor", "schedutil")):
            self._write(pol / name, value)
        self._write(zone / "type", "cpu-thermal")
        heat = round(2 * self.heat_c_per_s * max(rel, 0)) / 2  # in 0.5 degree steps
        self._write(zone / "temp", int(1000 * (45.0 + heat)))
        if self.pct_period_s is not None:
            bat = self.root / "sys/class/power_supply/battery"
            bat.mkdir(parents=True, exist_ok=True)
            used = math.floor((max(rel, 0) + self.pct_offset_s) / self.pct_period_s)
            for name, value in (("type", "Battery"), ("status", self.status),
                                ("capacity", self.level_start_pct - used)):
                self._write(bat / name, value)
        if self.vcgencmd_at_s is not None:
            value = "0x50005" if rel >= self.vcgencmd_at_s else "0x0"
            self._write(self.root / "vcgencmd_state", f"throttled={value}")


@dataclass
class FakeClock:
    """The soak's Clock: `now()`, `every(period, fn)`; time moves only through `advance`."""

    t: float
    device: ScriptedDevice | None = None
    _timers: list[list] = field(default_factory=list)  # [next_t, period, fn, active]

    def __post_init__(self) -> None:
        self._sync()

    def now(self) -> float:
        return self.t

    def every(self, period_s: float, fn: Callable[[float], None]) -> Callable[[], None]:
        timer = [self.t + period_s, period_s, fn, True]
        self._timers.append(timer)

        def cancel() -> None:
            timer[3] = False

        return cancel

    def advance(self, dt: float) -> None:
        target = self.t + dt
        while True:
            due = [tm for tm in self._timers if tm[3] and tm[0] <= target]
            if not due:
                break
            tm = min(due, key=lambda x: x[0])
            self.t = tm[0]
            self._sync()
            tm[0] += tm[1]
            tm[2](self.t)
        self.t = target
        self._sync()

    def _sync(self) -> None:
        if self.device is not None:
            self.device.at(self.t)


class ClockedBackend(Backend):
    """Generates `tokens` tokens per answer on the fake clock: a prefill pause, then one token
    every 1/tokens_per_s seconds, slower in proportion to the scripted device's clock."""

    name = "clocked"

    def __init__(self, clock: FakeClock, tokens: int = 10, tokens_per_s: float = 20.0,
                 prefill_s: float = 0.1):
        self.clock, self.tokens, self.rate, self.prefill_s = clock, tokens, tokens_per_s, prefill_s
        self.calls = 0

    def _token_s(self) -> float:
        dev = self.clock.device
        scale = dev.mhz(self.clock.now()) / MHZ_FAST if dev is not None else 1.0
        return 1.0 / (self.rate * scale)

    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True, ignore_eos: bool = False) -> Generation:
        self.calls += 1
        t_start = self.clock.now()
        self.clock.advance(self.prefill_s)
        times = []
        for _ in range(self.tokens):
            self.clock.advance(self._token_s())
            times.append(self.clock.now())
        return Generation(text="x " * self.tokens, tokens_in=len(prompt.split()),
                          tokens_out=self.tokens, t_start_s=t_start, t_first_token_s=times[0],
                          t_end_s=times[-1], token_times_s=tuple(times), stop_reason="length")

    def load(self, model: Path, settings: RuntimeSettings) -> None: ...

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return [1] * len(text.split())

    def detokenize(self, tokens: Sequence[int]) -> str:
        return ""

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def unload(self) -> None: ...

    def info(self) -> dict:
        return {"runtime": "clocked"}

    @property
    def eos_token(self) -> int:
        return 0


@dataclass
class ScriptedSampler:
    """Stands in for the cell's running energy Sampler: power as a function of fake time."""

    clock: FakeClock
    t0: float
    power_w: Callable[[float], float]
    rate_hz: float = 20.0

    def snapshot(self) -> Trace:
        n = int((self.clock.now() - self.t0) * self.rate_hz) + 2
        t = self.t0 + np.arange(n) / self.rate_hz
        return Trace(kind="power", t_s=t, values=np.array([self.power_w(x) for x in t]),
                     nominal_rate_hz=self.rate_hz, sensor={"name": "scripted"})


@dataclass
class Ctx:
    """The cell's WorkloadCtx as far as a soak uses it."""

    profile: object = None
    sampler: object = None
    seed: int = 0
