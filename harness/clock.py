"""Clock offset between this machine and another one (a fleet device, an energy meter's host).

Windows measured on two machines (a device's query and a server's energy, a controller's schedule
and a device's records) line up only if their wall clocks agree. MLPerf Power refuses a run whose
clocks differ by more than 400 ms; so do we, and every run records the offset it measured.

The estimate is Cristian's: ask the remote clock, note the local clock before and after, and
assume the reading was taken half-way. The exchange with the shortest round trip is the least
disturbed, so it is the one kept; its half round trip bounds the error of that assumption.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from harness.errors import HarnessError

MAX_OFFSET_S = 0.4  # MLPerf Power's limit between the director's and the system's clocks
METHOD = "min-rtt-midpoint"


class ClockOffsetError(HarnessError):
    """Two clocks disagree by more than the limit, or the remote clock could not be read."""


@dataclass(frozen=True)
class ClockOffset:
    """How far a remote wall clock is ahead of ours (negative: behind), from the best exchange."""

    offset_s: float  # remote minus local: add to a local time to get the remote clock's reading
    uncertainty_s: float  # half the best round trip: the midpoint assumption is off by at most this
    round_trip_s: float
    samples: int
    method: str = METHOD

    def to_dict(self) -> dict:
        return asdict(self)

    def remote_to_local(self, t_remote_s: float) -> float:
        return t_remote_s - self.offset_s

    def local_to_remote(self, t_local_s: float) -> float:
        return t_local_s + self.offset_s


def measure_offset(read_remote_time: Callable[[], float], samples: int = 8,
                   local_clock: Callable[[], float] = time.time) -> ClockOffset:
    """Best of `samples` exchanges; `read_remote_time` returns the remote epoch time in seconds.

    A reader that raises ends the measurement with a ClockOffsetError naming the cause, so a
    caller never goes on with an offset it did not get.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    best: tuple[float, float] | None = None  # (round trip, offset)
    for _ in range(samples):
        t0 = local_clock()
        try:
            remote = float(read_remote_time())
        except (OSError, ValueError, TypeError) as e:
            raise ClockOffsetError(f"could not read the remote clock: {e}") from e
        t1 = local_clock()
        rtt = t1 - t0
        if rtt < 0:  # our own wall clock stepped during the exchange: this sample says nothing
            continue
        if best is None or rtt < best[0]:
            best = (rtt, remote - (t0 + t1) / 2)
    if best is None:
        raise ClockOffsetError("the local clock stepped backwards during every exchange; "
                               "wait for NTP to settle and try again")
    rtt, offset = best
    return ClockOffset(offset_s=offset, uncertainty_s=rtt / 2, round_trip_s=rtt, samples=samples)


def require_within(offset: ClockOffset, who: str, limit_s: float = MAX_OFFSET_S) -> None:
    """Refuse when the clocks may differ by more than the limit (offset plus its uncertainty)."""
    worst = abs(offset.offset_s) + offset.uncertainty_s
    if worst > limit_s:
        raise ClockOffsetError(
            f"{who}: clock differs from this machine's by {offset.offset_s * 1000:+.0f} ms "
            f"(+-{offset.uncertainty_s * 1000:.0f} ms), over the {limit_s * 1000:.0f} ms limit; "
            "synchronise both clocks (NTP: `timedatectl set-ntp true`, or `chronyc makestep`) "
            "and try again")
