"""Measured memory read bandwidth of this host: the denominator of the decode roofline.

Why measure rather than trust a datasheet: what a CPU can stream from DRAM is often well below the
bus's peak (one core of a Cortex-A72 reaches a fraction of LPDDR4's figure; a 2-vCPU virtual
machine sees its share of a server's channels), and decode of a small model is bound by exactly
what the cores can read. The probe streams over a buffer far larger than the last-level cache
with a numpy max-reduction over bytes (the cheapest SIMD reduction there is, so the loop waits on
memory, not arithmetic; numpy releases the GIL inside it, so one Python thread per chunk runs in
parallel), keeps the best of several passes, and is cached per host so a run pays for it once.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


import numpy as np

from .. import sysfs
from .contention import ContentionWindow

METHOD = "numpy-max-reduce-u8"
CACHE_SUBDIR = "bandwidth"
DEFAULT_DURATION_S = 1.0  # per measurement (single-thread, then multi-thread): ~2-3 s in all
MIN_PASSES = 3
MAX_PASSES = 1000
MIN_BUFFER_BYTES = 16 << 20
TARGET_BUFFER_BYTES = 256 << 20
MAX_BUFFER_BYTES = 1 << 30
LLC_MULTIPLE = 8  # a buffer this many times the last-level cache leaves the cache no help
FINGERPRINT_KEYS = ("cpu_model", "cores_logical", "ram_bytes", "machine", "hostname")
RESULT_KEYS = ("single_thread_bytes_per_s", "multi_thread_bytes_per_s", "threads", "buffer_bytes",
               "method", "measured_utc", "probe_s", "host_fingerprint")


# -- buffer sizing ----------------------------------------------------------------------------
def _parse_cache_size(text: str) -> int:
    """sysfs cache sizes read like '32768K' or '1M'."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale


def last_level_cache_bytes() -> int | None:
    """Size of the highest-level CPU cache cpu0 sees (None where sysfs does not say)."""
    best_level, best_size = -1, None
    for index in sysfs.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            level = sysfs.read_int(f"{index}/level")
            size = _parse_cache_size(sysfs.read_text(f"{index}/size"))
        except (OSError, ValueError):
            continue
        if level > best_level or (level == best_level and size > (best_size or 0)):
            best_level, best_size = level, size
    return best_size


def default_buffer_bytes(available_bytes: int | None = None, llc_bytes: int | None = None) -> int:
    """256 MiB or 8x the last-level cache (whichever is larger), at most 1 GiB and a quarter of
    the memory available now, so the probe never pushes a small board into swap."""
    import psutil

    available = (available_bytes if available_bytes is not None
                 else psutil.virtual_memory().available)
    llc = llc_bytes if llc_bytes is not None else (last_level_cache_bytes() or 0)
    target = max(TARGET_BUFFER_BYTES, LLC_MULTIPLE * llc)
    return int(max(MIN_BUFFER_BYTES, min(target, MAX_BUFFER_BYTES, available // 4)))


def _make_buffer(buffer_bytes: int) -> np.ndarray:
    """Filled with non-zero bytes: np.zeros maps the kernel's shared zero page, and reading that
    would measure the cache, not DRAM."""
    buf = np.empty(int(buffer_bytes), dtype=np.uint8)
    buf.fill(1)
    return buf


# -- the probe --------------------------------------------------------------------------------
def _best_rate(buf: np.ndarray, threads: int, duration_s: float) -> tuple[float, int]:
    """Best bytes/s over passes until `duration_s` has elapsed (at least MIN_PASSES)."""
    chunks = np.array_split(buf, threads)
    best, passes = 0.0, 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        deadline = time.perf_counter() + duration_s
        while passes < MAX_PASSES and (passes < MIN_PASSES or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            for f in [pool.submit(np.max, c) for c in chunks]:
                f.result()
            elapsed = time.perf_counter() - t0
            passes += 1
            if elapsed > 0:
                best = max(best, buf.nbytes / elapsed)
    return best, passes


def measure_read_bandwidth(threads: int, duration_s: float = DEFAULT_DURATION_S,
                           buffer_bytes: int | None = None) -> dict[str, Any]:
    """Stream-read a fresh buffer with `threads` threads; best of the passes that fit in
    `duration_s`. Returns {bytes_per_s, threads, buffer_bytes, passes, probe_s, method}."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    t0 = time.perf_counter()
    buf = _make_buffer(buffer_bytes or default_buffer_bytes())
    rate, passes = _best_rate(buf, threads, duration_s)
    return {"bytes_per_s": rate, "threads": threads, "buffer_bytes": int(buf.nbytes),
            "passes": passes, "probe_s": time.perf_counter() - t0, "method": METHOD}


# -- the per-host cache -----------------------------------------------------------------------
def host_fingerprint(host: dict[str, Any]) -> dict[str, Any]:
    """The facts that, when they change, make a cached figure someone else's: CPU model, logical
    cores, RAM, machine type, hostname. `host` is the manifest's host dict
    (harness.run.manifest.host_info), passed in so this room depends on no room above it."""
    return {k: host.get(k) for k in FINGERPRINT_KEYS}


def fingerprint_key(fingerprint: dict[str, Any]) -> str:
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_file(cache_dir: Path, fingerprint: dict[str, Any], threads: int) -> Path:
    return Path(cache_dir) / CACHE_SUBDIR / f"host-{fingerprint_key(fingerprint)}-t{threads}.json"


def _valid_cached(data: Any, fingerprint: dict[str, Any], threads: int) -> bool:
    """A cached figure is used only if it is complete, positive and this host's."""
    if not isinstance(data, dict) or any(k not in data for k in RESULT_KEYS):
        return False
    rates = (data["single_thread_bytes_per_s"], data["multi_thread_bytes_per_s"])
    return (data["host_fingerprint"] == fingerprint and data["threads"] == threads
            and data["method"] == METHOD
            and all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
                    for r in rates))


def _read_cache(path: Path, fingerprint: dict[str, Any], threads: int) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if _valid_cached(data, fingerprint, threads) else None


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the old file or the new one,
    never half of one (two runs on one host may probe at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bandwidth-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _measure_host(threads: int, duration_s: float, buffer_bytes: int | None,
                  fingerprint: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    buf = _make_buffer(buffer_bytes or default_buffer_bytes())
    single, single_passes = _best_rate(buf, 1, duration_s)
    multi, multi_passes = (single, single_passes) if threads == 1 else _best_rate(buf, threads,
                                                                                  duration_s)
    return {"single_thread_bytes_per_s": single, "multi_thread_bytes_per_s": multi,
            "threads": threads, "buffer_bytes": int(buf.nbytes), "method": METHOD,
            "measured_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "probe_s": round(time.perf_counter() - t0, 3), "passes_single": single_passes,
            "passes_multi": multi_passes, "host_fingerprint": fingerprint}


def host_bandwidth(cache_dir: Path, threads: int, refresh: bool = False,
                   duration_s: float = DEFAULT_DURATION_S, buffer_bytes: int | None = None,
                   *, host: dict[str, Any]) -> dict[str, Any]:
    """This host's single- and `threads`-thread read bandwidth, from the cache when a valid entry
    for this host and thread count exists, else measured (a few seconds) and cached.

    A missing, corrupt, incomplete or other-host file is re-measured, never trusted. A probe
    during which other processes used the cores (harness.devices.contention) is used for this run
    with its `contention_warning`, never cached: it would understate the bandwidth for good. The result
    carries `cached` (True when read from the cache), `cache_file`, and `cache_error` (why the
    new figure could not be saved, else None: an unwritable cache costs a re-probe next run, not
    this run's figure).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    fingerprint = host_fingerprint(host)
    path = cache_file(cache_dir, fingerprint, threads)
    result = None if refresh else _read_cache(path, fingerprint, threads)
    cached, error = result is not None, None
    if result is None:
        window = ContentionWindow().start()
        result = _measure_host(threads, duration_s, buffer_bytes, fingerprint)
        shared = window.warning("the memory bandwidth probe")
        if shared:  # a figure measured beside another job would stay wrong for every later run
            result = {**result, "contention_warning": shared}
            error = f"not cached: {shared}"
        else:
            try:
                _write_atomic(path, result)
            except OSError as e:
                error = f"{path}: {e}"
    return {**result, "cached": cached, "cache_file": str(path), "cache_error": error}
