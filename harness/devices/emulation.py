"""Emulating a smaller device on this machine: its core count and its memory, nothing else.

Emulation answers "does it fit, and how do models rank with this many cores?" before the user owns
the device. It cannot reproduce the device's speed or power: every emulated record says
`emulated: true` and the report keeps those numbers apart from measured ones.

Memory rule (check_fit before the cell, the launcher's RSS watch during it):
    limit_bytes = profile.memory_bytes (or the host's MemTotal for generic profiles)
                  - profile.os_reserved_bytes
    need_bytes  >= model_size_bytes + RUNTIME_OVERHEAD_BYTES + kv_bytes_per_token * n_ctx
`need_bytes` is a lower bound (compute buffers and the tokenizer come on top), so check_fit never
refuses a model that could fit; the launcher kills a child whose RSS exceeds limit_bytes and
records `does_not_fit`.
"""
from __future__ import annotations

import os
from typing import Any

from .. import sysfs
from ..errors import HarnessError
from .profile import Profile

# Resident memory of a cell child before the model is loaded: Python 3.11 with numpy, psutil,
# PyYAML, harness and llama_cpp 0.3.36 imported measured 42-45 MiB on x86-64 (docs/devices.md);
# rounded down so the pre-check stays a lower bound.
RUNTIME_OVERHEAD_BYTES = 40 * 1024 * 1024
GIB = 1024 ** 3


def host_memory_bytes() -> int:
    """MemTotal from /proc/meminfo (via harness.sysfs so fixture trees can fake it)."""
    try:
        text = sysfs.read_text("/proc/meminfo")
    except OSError as e:
        raise HarnessError(f"cannot read /proc/meminfo to size a generic profile: {e}") from None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024  # kB
    raise HarnessError("/proc/meminfo has no MemTotal line")


def memory_limit_bytes(profile: Profile) -> int:
    """The RSS a cell may use on this profile (what the launcher enforces)."""
    total = profile.memory_bytes if profile.memory_bytes is not None else host_memory_bytes()
    return max(total - profile.os_reserved_bytes, 0)


def kv_bytes_per_token(n_layers: int, n_kv_heads: int, key_length: int, value_length: int,
                       bytes_per_element: int = 2) -> int:
    """KV-cache bytes per context token (llama.cpp default f16 cache), from GGUF metadata
    `<arch>.block_count`, `.attention.head_count_kv`, `.attention.key_length`/`value_length`."""
    return n_layers * n_kv_heads * (key_length + value_length) * bytes_per_element


def check_fit(model_size_bytes: int, n_ctx: int, profile: Profile,
              kv_bytes_per_token: int | None = None) -> str | None:
    """A sentence saying why the model cannot fit, or None when the lower bound fits."""
    limit = memory_limit_bytes(profile)
    kv = (kv_bytes_per_token or 0) * n_ctx
    need = model_size_bytes + RUNTIME_OVERHEAD_BYTES + kv
    if need <= limit:
        return None
    kv_part = f" + KV cache for n_ctx={n_ctx} {_gib(kv)}" if kv_bytes_per_token else ""
    reserved = (f" ({_gib(limit + profile.os_reserved_bytes)} RAM - "
                f"{_gib(profile.os_reserved_bytes)} reserved for the OS)"
                if profile.os_reserved_bytes else "")
    return (f"needs at least {_gib(need)} (model {_gib(model_size_bytes)}{kv_part} + runtime "
            f"{_gib(RUNTIME_OVERHEAD_BYTES)}) but device '{profile.name}' has "
            f"{_gib(limit)}{reserved}; choose a smaller level or a device with more memory")


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def apply_emulation(profile: Profile) -> dict[str, Any]:
    """In the cell child, before loading: pin this process to the profile's core count.

    Returns what was applied, for the record; anything that could not be applied is a note, so
    the record says exactly how faithful the emulation was.
    """
    notes: list[str] = []
    applied: dict[str, Any] = {"profile": profile.name, "memory_limit_bytes":
                               memory_limit_bytes(profile),
                               "memory_limit_enforced_by": "launcher RSS watch",
                               # the count actually used (capped at the host) is n_threads on the record
                               "profile_n_threads": profile.runtime_defaults.get("n_threads")}
    applied["cpu_affinity"] = _pin_cores(profile.cores, notes)
    notes.append("speed, clocks, memory bandwidth and power are this host's, not the device's")
    applied["notes"] = notes
    return applied


def _pin_cores(cores: int | None, notes: list[str]) -> list[int] | None:
    if not hasattr(os, "sched_setaffinity"):
        notes.append("CPU affinity is not supported on this OS; only n_threads limits the cores")
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if cores is None:
        notes.append("generic profile: no core limit applied")
        return allowed
    if cores > len(allowed):
        notes.append(f"profile has {cores} cores but this host allows {len(allowed)}; "
                     "running on all of them")
        return allowed
    chosen = allowed[:cores]
    try:
        os.sched_setaffinity(0, chosen)
    except OSError as e:
        notes.append(f"could not restrict CPU affinity ({e.strerror or e})")
        return allowed
    return sorted(os.sched_getaffinity(0))
