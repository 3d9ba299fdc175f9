"""The device's side of `meter serve`: check the clocks, then ask the energy of each window.

A window is measured on the device's time.monotonic() (the sampler's and the backend's clock).
It is sent to the meter as the meter's wall-clock time:
    device wall  = device monotonic + (device time.time() - time.monotonic()), read at the request
    meter wall   = device wall + offset_s   (harness.clock.measure_offset against GET /time)
The meter maps it back to its own monotonic clock the same way. Error: the offset's uncertainty
(half the best round trip) at each edge, recorded with every figure.
"""
from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..clock import ClockOffset, measure_offset, require_within
from ..errors import HarnessError
from .server import wall_minus_monotonic


class MeterClient:
    """One meter URL; `check_clock()` first, then `window_energy(t0, t1)` per measured window."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base = parts.path
        self.timeout_s = timeout_s
        self.offset: ClockOffset | None = None
        self._info: dict[str, Any] = {}

    def get(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout_s)
        target = self._base + path + (f"?{urlencode(query)}" if query else "")
        try:
            conn.request("GET", target)
            resp = conn.getresponse()
            raw = resp.read(1 << 20)
        except (OSError, http.client.HTTPException) as e:
            raise HarnessError(f"the energy meter at {self.url} did not answer ({e}); is "
                               "`python -m harness meter serve` running on the server, and is its "
                               "port reachable from the device?") from None
        finally:
            conn.close()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HarnessError(f"{self.url}{path} is not an edgebench meter (reply is not JSON)") from None
        if resp.status != 200 or not isinstance(body, dict):
            raise HarnessError(f"the meter at {self.url} answered HTTP {resp.status} to {path}: "
                               f"{body.get('error') if isinstance(body, dict) else body}")
        return body

    def check_clock(self, samples: int = 8) -> ClockOffset:
        """Measure the offset (refused beyond harness.clock.MAX_OFFSET_S) and read the sensor."""
        self._info = self.get("/info")
        offset = measure_offset(lambda: float(self.get("/time")["time_s"]), samples=samples)
        require_within(offset, f"energy meter {self.url}")
        self.offset = offset
        return offset

    def provenance(self) -> dict[str, Any]:
        """What the server's figures are (method label, sensor, coverage) and the clock check."""
        sensor = self._info.get("sensor") or {}
        return {"method": sensor.get("method"), "sensor": sensor.get("sensor"),
                "model": sensor.get("model"), "coverage": sensor.get("coverage"),
                "notes": sensor.get("notes") or [], "meter": self.url,
                "rate_hz": self._info.get("rate_hz"),
                "clock_offset": self.offset.to_dict() if self.offset else None}

    def window_energy(self, t0_mono: float, t1_mono: float) -> dict[str, Any]:
        """Record fields for the server's energy over a device window; a meter that fails now
        gives null figures and the reason (the device's own figures stand)."""
        if self.offset is None:
            self.check_clock()
        assert self.offset is not None
        shift = wall_minus_monotonic() + self.offset.offset_s
        try:
            r = self.get("/energy", {"t0_s": repr(t0_mono + shift), "t1_s": repr(t1_mono + shift)})
        except HarnessError as e:
            return {"server_energy_j": None, "server_energy_valid": False,
                    "server_energy_invalid_reason": str(e)}
        out: dict[str, Any] = {
            "server_energy_j": r.get("energy_j") if r.get("valid") else None,
            "server_energy_valid": bool(r.get("valid")),
            "server_window_uncertainty_s": self.offset.uncertainty_s,
            "server_sample_count": r.get("sample_count")}
        if not r.get("valid"):
            out["server_energy_invalid_reason"] = str(r.get("invalid_reason"))
        if r.get("method") != (self._info.get("sensor") or {}).get("method"):
            out["server_energy_j"] = None
            out["server_energy_valid"] = False
            out["server_energy_invalid_reason"] = (f"the meter's method changed to {r.get('method')} "
                                                   "since the cell started (meter restarted?)")
        if "scripted_true_j" in r:
            out["server_energy_scripted_true_j"] = r["scripted_true_j"]
        return out
