"""What runs inside a cell's child process: load, baseline, warm-up, measured repetitions.

The child sends messages to the parent over a pipe and never writes result files itself, so a
crash or a kill here cannot corrupt the run directory; the parent records what arrived.
Messages: ("record", rec) ("cell", constants) ("trace", rows) ("samples", rows) ("outputs", rows)
("state", dict) ("log", text) ("error", reason, kind, traceback_text) ("done",). "cell" messages
are merged by the parent into the cell's constants (written once, on its final record).
"""
from __future__ import annotations

import dataclasses
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .backends import get_backend
from .backends.base import Backend, RuntimeSettings
from .errors import HarnessError
from .faults import maybe_inject
from .matrix import Cell
from .devices.contention import ContentionWindow
from .devices.threads import ThreadChoice
from .energy.calibration import apply_calibration
from .records import Repetition, split_cell_fields
from .workloads import WorkloadResult, kind_module

Emit = Callable[..., None]


@dataclass(frozen=True)
class CellPayload:
    """Everything the child needs, resolved by the parent (picklable)."""

    cell: Cell
    run_id: str
    attempt: str
    artifact: Path
    reference_artifact: Path | None  # fidelity: the reference level's artifact
    model_fields: dict[str, Any]  # sha256, size, params, quant type ... of the artifact
    profile: Any  # harness.devices.Profile the cell runs as (limits, threads)
    host_profile: Any  # the profile of the machine itself: its sensors and state readers
    emulated: bool
    settings: RuntimeSettings
    carbon_g_per_kwh: float
    carbon_source: str
    threads: ThreadChoice | None = None  # how settings.n_threads was chosen (devices.threads)
    roofline: dict[str, Any] | None = None  # bandwidth and bytes per decoded token (harness.roofline)
    reference_runtime: str | None = None  # runtime of reference_artifact (compress.levels.runtime_of)


class MemoryWatch:
    """Samples this process's RSS in a thread: the peak between reset() and peak_bytes."""

    def __init__(self, interval_s: float = 0.05):
        self._read_rss = _rss_reader()
        self._interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._own_thread = threading.Event()  # clear while another thread samples for us
        self._own_thread.set()
        self._thread = threading.Thread(target=self._loop, name="rss-watch", daemon=True)

    def start(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while self._own_thread.wait() and not self._stop.wait(self._interval_s):
            if self._own_thread.is_set():
                self.sample()

    def ride(self) -> Callable[[], int]:
        """Hand sampling to the caller's thread (the energy sampler's tick) until `walk()`."""
        self._own_thread.clear()
        return self.sample

    def walk(self) -> None:
        self._own_thread.set()

    def sample(self) -> int:
        rss = self._read_rss()
        self._peak = max(self._peak, rss)
        return rss

    def reset(self) -> None:
        self._peak = 0
        self.sample()

    @property
    def peak_bytes(self) -> int:
        self.sample()
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._own_thread.set()


def _rss_reader() -> Callable[[], int]:
    """This process's resident bytes, as cheaply as the OS allows.

    The watch wakes 20 times a second beside the measured work; on Linux one pread of
    /proc/self/statm costs a tenth of psutil's memory_info (measured 0.44% vs 0.89% of a core at
    20 Hz on the 2-core CI VM), elsewhere psutil. Same figure: resident pages x page size.
    """
    import os

    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        page = os.sysconf("SC_PAGE_SIZE")
        int(os.pread(fd, 128, 0).split()[1])
    except (OSError, ValueError, IndexError, AttributeError):
        import psutil

        proc = psutil.Process()
        return lambda: int(proc.memory_info().rss)
    return lambda: int(os.pread(fd, 128, 0).split()[1]) * page


def hwm_bytes() -> int:
    """The OS high-water mark of resident memory for this process (since it started).

    Linux updates it lazily (hiwater_rss is synced at page-table events), so it can sit slightly
    below a peak sampled from /proc a moment earlier; it is recorded as the OS reports it.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru if sys.platform == "darwin" else ru * 1024)


class _Borrowed:
    """A loaded reference backend lent to a workload: its unload() is the cell's job, not theirs."""

    def __init__(self, backend: Backend):
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def unload(self) -> None:
        pass


class WorkloadCtx:
    """What a workload may ask of the cell (harness.workloads.base.WorkloadContext).

    The reference level (fidelity) is loaded once, before any measured window, so its load time
    and energy are not charged to the level being measured; its forward passes are part of the
    fidelity score's cost and stay inside the window. Its memory is not charged either: the RSS
    it adds (loaded and warmed by one forward pass over a window, so its weights and logits rows
    are resident) is measured once and taken off the level's peaks (docs/quality.md).
    """

    def __init__(self, payload: CellPayload):
        self._payload = payload
        self.seed = payload.settings.seed
        self._reference: Backend | None = None
        self.reference_rss_bytes: int | None = None  # set by preload_reference
        self.profile = payload.host_profile  # whose state readers a soak polls
        self.sampler: Any = None  # the repetition's running energy Sampler (soak: power per window)

    def preload_reference(self, mem: "MemoryWatch", warm_tokens: int) -> None:
        ref = self._payload.reference_artifact
        if ref is None or self._reference is not None:
            return
        before = mem.sample()
        # the reference may run in another runtime (an ONNX level against its GGUF source)
        backend = get_backend(self._payload.reference_runtime)
        backend.load(ref, replace(self._payload.settings, need_logits=True))
        backend.logits(backend.tokenize(" the" * warm_tokens, add_bos=True)[:warm_tokens])
        self._reference = backend
        self.reference_rss_bytes = max(0, mem.sample() - before)

    def open_reference_backend(self) -> Backend:
        if self._payload.reference_artifact is None or self._reference is None:
            raise HarnessError("this workload has no reference level")
        return _Borrowed(self._reference)  # type: ignore[return-value]

    def memory_fields(self, peak_rss_bytes: int, hwm_rss_bytes: int) -> dict[str, int]:
        """The level's peaks net of the reference's resident memory (and that figure), if any."""
        ref = self.reference_rss_bytes
        if ref is None:
            return {"peak_rss_bytes": peak_rss_bytes, "peak_rss_hwm_bytes": hwm_rss_bytes}
        return {"peak_rss_bytes": max(0, peak_rss_bytes - ref),
                "peak_rss_hwm_bytes": max(0, hwm_rss_bytes - ref), "reference_rss_bytes": ref}

    def close(self) -> None:
        if self._reference is not None:
            self._reference.unload()
            self._reference = None


def cell_main(payload: CellPayload, conn: Any) -> None:
    """Child process entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    die_with_parent()

    def emit(*msg: Any) -> None:
        conn.send(msg)

    try:
        run_cell(payload, emit)
        emit("done")
    except HarnessError as e:
        emit("error", str(e), "error", traceback.format_exc())
    except MemoryError:
        emit("error", "out of memory (MemoryError) in the cell process", "oom", traceback.format_exc())
    except Exception as e:
        emit("error", f"{type(e).__name__}: {e}", "crash", traceback.format_exc())
    finally:
        conn.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> str:
    """Make this cell process end when the harness process does; returns how ("prctl"/"watch").

    An orphan that keeps loading and decoding after its parent was SIGKILLed perturbs the next
    (resumed) run's baseline and repetitions. Linux: the kernel sends SIGKILL when the parent
    dies (nothing in llama.cpp can delay it). Elsewhere, or if prctl is refused, a thread checks
    every 0.5 s whether the parent is still this process's parent.
    """
    import multiprocessing as mp
    import os

    parent = mp.parent_process()
    parent_pid = parent.pid if parent is not None else os.getppid()
    how = "watch"
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    if how == "watch":
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                         daemon=True).start()
    return how


def _watch_parent(parent_pid: int) -> None:
    import os

    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def run_cell(p: CellPayload, emit: Emit) -> None:
    from . import devices, energy

    cell = p.cell
    applied = devices.apply_emulation(p.profile) if p.emulated else None
    # Emulation limits cores and memory only: power and state are this host's, read with its profile.
    state_before = devices.read_state(p.host_profile)
    sensor = energy.open_sensor(cell.energy, list(p.host_profile.sensors), _as_dict(p.host_profile.estimate))
    sensor = apply_calibration(sensor, getattr(p.host_profile, "calibration", None))
    try:
        _measure(p, emit, sensor, state_before, applied)
    finally:
        sensor.close()  # tegrastats/powermetrics readers own a child tool


def _measure(p: CellPayload, emit: Emit, sensor: Any, state_before: dict[str, Any],
             emulation: dict[str, Any] | None) -> None:
    from . import devices, energy

    cell = p.cell
    info = sensor.info()
    rate_hz = cell.energy.rate_hz
    mem = MemoryWatch().start()
    backend = get_backend(cell.runtime, cell.level)  # a remote level brings its endpoint
    maybe_inject("before_load", cell.key)

    sampler = energy.Sampler(sensor, rate_hz)
    sampler.start()
    t_load0 = time.monotonic()
    backend.load(p.artifact, p.settings)
    t_load1 = time.monotonic()
    load_trace = sampler.stop()
    emit("trace", load_trace.to_rows("load"))
    load_time_s = t_load1 - t_load0
    energy_load_j = energy.load_energy_j(load_trace, (t_load0, t_load1))
    rss_after_load = mem.sample()
    maybe_inject("after_load", cell.key)

    baseline_w, base_trace = energy.measure_baseline(sensor, rate_hz, cell.energy.baseline_s)
    emit("trace", base_trace.to_rows("baseline"))

    mod = kind_module(cell.workload.kind)
    ctx = WorkloadCtx(p)
    ctx.preload_reference(mem, warm_tokens=getattr(cell.workload.config, "window_tokens", 8))
    roofline = Roofline(p)
    for _ in range(cell.workload.warmup):
        roofline.prepare(mod.run(backend, cell.workload.config, ctx))

    # the cell's constants, sent once (the parent writes them on the cell's final record)
    emit("cell", {"workload_kind": cell.workload.kind, "emulated": p.emulated,
                  "emulation": emulation, "energy_notes": info.get("notes") or [],
                  "prompt_prefix_reuse": p.settings.reuse_prompt_prefix,
                  "energy_fallback_reason": info.get("fallback_reason"),
                  "energy_estimate": info.get("estimate"),
                  "load_time_s": load_time_s, "energy_load_j": energy_load_j,
                  "rss_after_load_bytes": rss_after_load, "runtime_info": backend.info(),
                  **settings_fields(p), **p.model_fields})
    setting_warnings = list(p.threads.warnings) if p.threads else []
    for rep in range(cell.workload.repetitions):
        mem.reset()
        sampler = energy.Sampler(sensor, rate_hz, on_tick=mem.ride())
        sampler.start()
        ctx.sampler = sampler
        shared = ContentionWindow().start()
        t0 = time.monotonic()
        result: WorkloadResult = mod.run(backend, cell.workload.config, ctx)
        t1 = time.monotonic()
        contention = shared.warning(f"repetition {rep}")
        trace = sampler.stop()
        remote = backend.window_fields(t0, t1)  # a server's energy and network bytes, if any
        mem.walk()
        roofline.prepare(result)
        phases = dict(result.phases) or {"run": (t0, t1)}
        e = energy.account(trace, (t0, t1), phases, baseline_w, result.tokens_in, result.tokens_out,
                           p.carbon_g_per_kwh, p.carbon_source,
                           decode_tokens=result.decode_tokens)
        per_cell, measured = split_cell_fields({
            "tokens_in": result.tokens_in, "tokens_out": result.tokens_out,
            **ctx.memory_fields(mem.peak_bytes, hwm_bytes()), "window_s": t1 - t0,
            "window_start_monotonic_s": t0,
            **result.metrics, **e, **roofline.fields(result.metrics), **result.extra, **remote,
            "warnings": setting_warnings + list(result.warnings) + ([contention] if contention else [])})
        per_cell.update(_outputs(p, rep, result, emit))
        if result.samples:
            emit("samples", [{"repetition": rep, **s} for s in result.samples])
            per_cell["samples_file"] = f"samples/{cell.key.cell_id}.jsonl"
        emit("cell", per_cell)
        emit("trace", trace.to_rows(rep))
        emit("record", Repetition(cell.key.cell_id, p.attempt, rep, measured).to_dict())
        maybe_inject("after_repetition", cell.key, rep)
    ctx.close()
    backend.unload()
    mem.stop()
    state_after = devices.read_state(p.host_profile)
    reasons = devices.throttle_reasons(state_before, state_after)
    emit("state", {"state_before": state_before, "state_after": state_after, "throttled": bool(reasons),
                   "throttled_reason": "; ".join(reasons) or None,
                   "power_mode_actual": devices.read_power_mode(p.host_profile, cell.key.power_mode)})


def _outputs(p: CellPayload, rep: int, result: WorkloadResult, emit: Emit) -> dict[str, Any]:
    """A generation's output goes to outputs/<cell>.jsonl; the cell keeps the first one's."""
    gen = result.generation
    if gen is None:
        return {}
    out = {"output_text": gen.text, "stop_reason": gen.stop_reason, "output_tokens": list(gen.tokens)}
    emit("outputs", [{"attempt": p.attempt, "repetition": rep, **out}])
    first = out if rep == 0 else {}
    return {"outputs_file": f"outputs/{p.cell.key.cell_id}.jsonl", **first}


def settings_fields(p: CellPayload) -> dict[str, Any]:
    """The runtime settings actually used, on every record (a threads sweep shows as rows)."""
    out: dict[str, Any] = {"n_threads": p.settings.n_threads,
                           "n_threads_batch": p.settings.n_threads_batch or p.settings.n_threads,
                           "n_batch": p.settings.n_batch, "n_ctx": p.settings.n_ctx}
    if p.threads is not None:
        out["threads_source"] = p.threads.source
    return out


class Roofline:
    """Decode speed as a fraction of the memory-bandwidth bound, per repetition.

    Bytes per decoded token depend on the context the decode attends over, known only once the
    workload has run; they are read from the GGUF header once per cell, after the warm-up (or
    the first repetition), outside every measured window.
    """

    def __init__(self, p: CellPayload):
        self._bw = (p.roofline or {}).get("memory_bandwidth_bytes_per_s")
        self._path = p.artifact if p.cell.runtime == "llama_cpp" else None
        self._bytes: float | None = None

    def prepare(self, result: Any) -> None:
        if self._bytes is not None or not self._bw or self._path is None:
            return
        tps = result.metrics.get("decode_tokens_per_s")
        if not isinstance(tps, (int, float)) or tps != tps or result.tokens_out < 2:
            return
        from .roofline import decode_bytes_per_token, mean_kv_positions

        n_ctx_mean = mean_kv_positions(result.tokens_in, result.tokens_out)
        self._bytes = decode_bytes_per_token(self._path, n_ctx_mean)["bytes_per_token"]

    def fields(self, metrics: dict[str, Any]) -> dict[str, Any]:
        tps = metrics.get("decode_tokens_per_s")
        if self._bytes is None or not isinstance(tps, (int, float)) or tps != tps:
            return {}
        return {"memory_bandwidth_bytes_per_s": self._bw, "decode_bytes_per_token": self._bytes,
                "decode_roofline_fraction": tps * self._bytes / self._bw}


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None or isinstance(obj, dict):
        return obj
    return dataclasses.asdict(obj)

