"""The meter's HTTP side: three GET endpoints answering JSON, on 127.0.0.1 unless told otherwise.

  GET /time                      {"time_s": <this machine's time.time()>}  (clock offset checks)
  GET /energy?t0_s=..&t1_s=..    the energy between two wall-clock times of THIS machine
  GET /info                      the sensor, its method label, rate, retention

The window is mapped from wall clock to this process's monotonic clock with the difference of the
two read when the request arrives (a wall clock stepped by NTP between the window and the request
shifts the window by the step; the device's offset check before each cell bounds that).
"""
from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .rolling import RollingSampler

MAX_WINDOW_S = 24 * 3600.0


def wall_minus_monotonic(wall_clock: Callable[[], float] = time.time) -> float:
    """wall clock - time.monotonic() from the closest pair of three reads (a few microseconds)."""
    best: tuple[float, float] | None = None
    for _ in range(3):
        a = time.monotonic()
        w = wall_clock()
        b = time.monotonic()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) / 2.0)
    assert best is not None
    return best[1]


class MeterServer:
    """Serves one RollingSampler over HTTP in a background thread; `close()` stops both."""

    def __init__(self, sampler: RollingSampler, host: str = "127.0.0.1", port: int = 0,
                 extra_info: dict[str, Any] | None = None,
                 wall_clock: Callable[[], float] = time.time):
        """`wall_clock`: this machine's wall clock (tests give one that is off by a known amount)."""
        self.sampler = sampler
        self.wall_clock = wall_clock
        self.extra_info = dict(extra_info or {})
        handler = type("Handler", (_Handler,), {"meter": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="meter-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "MeterServer":
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.sampler.stop()

    # -- answers ----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"sensor": self.sampler.sensor.info(), "rate_hz": self.sampler.rate_hz,
                "retention_s": self.sampler.retention_s, "oldest_monotonic_s": self.sampler.oldest_s,
                "clock": "requests name windows in this machine's time.time() seconds",
                **self.extra_info}

    def energy(self, t0_wall: float, t1_wall: float) -> dict[str, Any]:
        shift = wall_minus_monotonic(self.wall_clock)
        w = self.sampler.energy(t0_wall - shift, t1_wall - shift)
        out = {**w.to_dict(), "t0_s": t0_wall, "t1_s": t1_wall}
        scripted = self.sampler.sensor.info().get("scripted_params")
        if scripted is not None:  # the test sensor's analytic truth over the same mapped window
            from ..energy.config import ScriptedParams
            from ..energy.sensors.scripted import true_energy_j

            out["scripted_true_j"] = true_energy_j(ScriptedParams(**scripted), w.t0_monotonic_s,
                                                   w.t1_monotonic_s)
        return out


class _Handler(BaseHTTPRequestHandler):
    meter: MeterServer
    server_version = "edgebench-meter"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        try:
            if parts.path == "/time":
                self._send(200, {"time_s": self.meter.wall_clock()})
            elif parts.path == "/info":
                self._send(200, self.meter.info())
            elif parts.path == "/energy":
                t0, t1 = _window(parse_qs(parts.query))
                self._send(200, self.meter.energy(t0, t1))
            else:
                self._send(404, {"error": f"no such endpoint {parts.path}; use /time, /energy, /info"})
        except ValueError as e:
            self._send(400, {"error": str(e)})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, allow_nan=False, default=_finite).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per query would flood the server's terminal


def _finite(v: Any) -> Any:
    raise TypeError(f"not JSON: {type(v).__name__}")


def _window(q: dict[str, list[str]]) -> tuple[float, float]:
    try:
        t0, t1 = float(q["t0_s"][0]), float(q["t1_s"][0])
    except (KeyError, IndexError, ValueError):
        raise ValueError("give t0_s and t1_s, this machine's wall-clock seconds (time.time())") from None
    if not (math.isfinite(t0) and math.isfinite(t1)) or not 0 < t1 - t0 <= MAX_WINDOW_S:
        raise ValueError(f"window [{t0}, {t1}] must be finite, non-empty and at most "
                         f"{MAX_WINDOW_S:.0f} s")
    return t0, t1
