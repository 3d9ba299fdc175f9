"""`python -m harness meter serve`: the server side of an offloaded query's energy.

It runs on the machine that serves the model, samples that machine's own sensor (the same
registry and sensors as local cells: rapl, nvml, estimate, ...) into a rolling buffer, and answers
over HTTP the energy between two wall-clock timestamps with the sensor's method label. The device's
cell asks it once per measured window (harness.meter.client), after checking the clock offset
between the two machines (harness.clock).

Clocks: samples are kept on this process's time.monotonic() (as the sampler does everywhere);
a request names its window in this machine's wall clock (time.time() epoch seconds, the device's
window shifted by the measured offset); the window is mapped to monotonic time with this machine's
wall-minus-monotonic difference read when the request arrives.
"""
from __future__ import annotations

from .rolling import RollingSampler, WindowEnergy

__all__ = ["RollingSampler", "WindowEnergy"]
