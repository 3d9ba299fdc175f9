"""How many threads a cell runs with, decided on the device at run time and recorded.

llama-cpp-python's own default is `cpu_count() // 2` threads (1 on a 2-core machine), while
llama.cpp's tools (llama-bench, llama-cli) use the physical cores, or on a hybrid x86 CPU its
performance cores. Leaving the count to a runtime's hidden default made the harness report 0.68x
of llama-bench's decode rate on the same file, so the count is always chosen here, explicitly:

1. the matrix's `runtime.n_threads` (one value or a swept list): used as given; more threads than
   the cores available runs, with a warning on the record (the user asked for it);
2. the profile's representative count (laptop, phone, Apple Silicon profiles): capped at the
   cores this host really has, so a smaller machine matching the profile is not oversubscribed;
3. otherwise llama.cpp's rule, computed here: performance cores where the kernel says which
   (`/sys/devices/cpu_core/cpus` on hybrid Intel), else physical cores (unique
   `topology/thread_siblings` sets), capped at the CPUs this process may run on.

Under emulation the cores available are the emulated profile's (the cell is pinned to them),
never more than the host's: a 4-core profile on a 2-core host runs 2 threads, with a warning.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import sysfs

SOURCES = ("matrix", "profile", "physical_cores", "performance_cores")


@dataclass(frozen=True)
class ThreadChoice:
    """The thread counts a cell uses and why; every record carries these."""

    n_threads: int
    n_threads_batch: int
    source: str  # one of SOURCES
    warnings: tuple[str, ...] = ()

    def record_fields(self) -> dict[str, object]:
        return {"n_threads": self.n_threads, "n_threads_batch": self.n_threads_batch,
                "threads_source": self.source}


def allowed_cpus() -> int:
    """CPUs this process may run on (affinity), else the logical CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list such as '0-3,8,10-11'."""
    out: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def _sibling_sets(cpus: list[int] | None = None) -> set[str]:
    """One entry per physical core: the thread_siblings mask of each CPU (llama.cpp's method)."""
    if cpus is None:
        cpus = []
        for p in sysfs.glob("/sys/devices/system/cpu/cpu[0-9]*"):
            name = p.rsplit("/", 1)[-1][3:]
            if name.isdigit():
                cpus.append(int(name))
    seen: set[str] = set()
    for cpu in cpus:
        try:
            seen.add(sysfs.read_text(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings").strip())
        except OSError:
            continue
    return seen


def physical_cores() -> int | None:
    """Physical cores from sysfs topology; None when the kernel does not expose it."""
    n = len(_sibling_sets())
    return n or None


def performance_cores() -> int | None:
    """Physical performance cores on a hybrid CPU (Linux `cpu_core` PMU); None if not hybrid."""
    if not (sysfs.exists("/sys/devices/cpu_core/cpus") and sysfs.exists("/sys/devices/cpu_atom/cpus")):
        return None
    try:
        cpus = _cpu_list(sysfs.read_text("/sys/devices/cpu_core/cpus"))
    except (OSError, ValueError):
        return None
    n = len(_sibling_sets(cpus))
    return n or None


def llama_cpp_default() -> tuple[int, str]:
    """llama.cpp's default thread count on this host and which rule gave it."""
    perf = performance_cores()
    if perf:
        return perf, "performance_cores"
    phys = physical_cores()
    if phys:
        return phys, "physical_cores"
    # llama.cpp's fallback when topology is unreadable: all logical CPUs up to 4, else half
    n = os.cpu_count() or 4
    return (n if n <= 4 else n // 2), "physical_cores"


def choose_threads(requested: int | None, profile_threads: int | None, emulated_cores: int | None,
                   emulated: bool) -> ThreadChoice:
    """Decide the thread count of one cell (see the module docstring for the rules)."""
    host_cpus = allowed_cpus()
    available = min(emulated_cores, host_cpus) if emulated and emulated_cores else host_cpus
    where = (f"the {available} core(s) of the emulated device on this host" if emulated
             else f"the {available} CPU(s) this process may use")
    if requested is not None:
        warn = ()
        if requested > available:
            warn = (f"n_threads={requested} is more than {where}: threads are oversubscribed and "
                    "speed and energy per token suffer (llama.cpp's threads spin-wait)",)
        return ThreadChoice(requested, requested, "matrix", warn)
    if profile_threads is not None:
        cap = available if emulated else min(available, physical_cores() or available)
        if profile_threads > cap:
            warn = (f"the profile's n_threads={profile_threads} capped at {cap}: "
                    + (where if emulated else f"this host has {cap} physical core(s) available"),)
            return ThreadChoice(cap, cap, "profile", warn)
        return ThreadChoice(profile_threads, profile_threads, "profile")
    n, source = llama_cpp_default()
    if n > available:
        warn = (f"llama.cpp's rule gives {n} threads ({source}); capped at {where}",)
        return ThreadChoice(available, available, source, warn)
    return ThreadChoice(n, n, source)
