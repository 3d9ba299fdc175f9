"""Clock offset: scripted local and remote clocks, so the arithmetic is checked exactly."""
from __future__ import annotations

import pytest

from harness import clock
from harness.errors import HarnessError


class ScriptedExchange:
    """A remote clock `offset_s` ahead; each exchange takes the next round trip, the remote
    reading happening `share` of the way through it."""

    def __init__(self, offset_s: float, round_trips: list[float], share: float = 0.5):
        self.t = 1000.0
        self.offset_s, self.trips, self.share = offset_s, list(round_trips), share
        self.calls = 0

    def local(self) -> float:
        return self.t

    def remote(self) -> float:
        trip = self.trips[self.calls]
        self.calls += 1
        reading = self.t + trip * self.share + self.offset_s
        self.t += trip
        return reading


def test_symmetric_exchange_recovers_the_offset_exactly():
    ex = ScriptedExchange(0.25, [0.010] * 4)
    o = clock.measure_offset(ex.remote, samples=4, local_clock=ex.local)
    assert o.offset_s == pytest.approx(0.25)
    assert o.round_trip_s == pytest.approx(0.010) and o.uncertainty_s == pytest.approx(0.005)
    assert o.samples == 4 and ex.calls == 4


def test_the_shortest_round_trip_is_kept():
    # a slow exchange read late (share 1.0) would be 0.5 s off; the 2 ms one is within 1 ms
    ex = ScriptedExchange(-0.1, [1.0, 0.002, 0.5], share=1.0)
    o = clock.measure_offset(ex.remote, samples=3, local_clock=ex.local)
    assert o.round_trip_s == pytest.approx(0.002)
    assert abs(o.offset_s - (-0.1)) <= o.uncertainty_s + 1e-12


def test_conversions_are_inverse():
    o = clock.ClockOffset(offset_s=0.3, uncertainty_s=0.01, round_trip_s=0.02, samples=1)
    assert o.remote_to_local(o.local_to_remote(5.0)) == pytest.approx(5.0)
    assert o.local_to_remote(5.0) == pytest.approx(5.3)
    assert o.to_dict()["method"] == clock.METHOD


@pytest.mark.parametrize("offset_s, unc_s, ok", [(0.39, 0.005, True), (-0.39, 0.005, True),
                                                 (0.399, 0.002, False), (0.5, 0.0, False),
                                                 (-0.45, 0.001, False)])
def test_limit_counts_the_uncertainty(offset_s, unc_s, ok):
    o = clock.ClockOffset(offset_s=offset_s, uncertainty_s=unc_s, round_trip_s=2 * unc_s, samples=8)
    if ok:
        clock.require_within(o, "pi5-01")
    else:
        with pytest.raises(HarnessError, match="pi5-01: clock differs .* over the 400 ms limit"):
            clock.require_within(o, "pi5-01")


def test_an_unreadable_remote_clock_is_a_clear_error():
    def broken() -> float:
        raise OSError("connection reset")

    with pytest.raises(clock.ClockOffsetError, match="could not read the remote clock: connection"):
        clock.measure_offset(broken)


def test_a_backwards_local_clock_sample_is_skipped():
    times = iter([10.0, 9.0, 20.0, 20.004])  # first exchange: clock stepped back; second is good
    o = clock.measure_offset(lambda: 20.5, samples=2, local_clock=lambda: next(times))
    assert o.round_trip_s == pytest.approx(0.004) and o.offset_s == pytest.approx(0.498)
