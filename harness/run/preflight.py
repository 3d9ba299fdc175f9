"""Everything a run checks before its run folder exists; `run` and `run --dry-run` both call it.

A benchmark that fails after loading its first model, an hour in, because `samples: 1000` asks
for more items than exist, wastes the hour and leaves a run folder of failures. So every input
the run will depend on is checked first: model files (exists, GGUF magic, a header that parses
to the end of its tensor table), levels (buildable: requantization allowed, export tools
present), the named energy sensor (readable here), the workloads' data (sample counts within
it), prompt plus generated tokens within n_ctx, the devices the matrix lists (resolvable on this
machine, none of them silently dropped) and disk space for the run and the level cache.

All problems are collected, not just the first, and raised together as one PreflightError
(exit 2): each one line naming the file, the key path and what is allowed.
"""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..compress.levels import runtime_of
from ..errors import HarnessError
from ..gguf import gguf_info
from ..matrix import AUTO_DEVICE, Cell, Matrix
from ..models import ModelFile, cache_dir
from .artifacts import resolve_source
from .execution import settings_for
from .planning import DeviceChoice, choose_device, select_cells

MIB = 2 ** 20
# A run folder holds the manifest, records, traces, samples and the report (about 1 MiB of HTML
# with its charts): small next to a level, but a disk that cannot take this much would fail
# mid-run (docs/reliability.md, "disk full"). A cell's records and power trace at 20 Hz stay
# well under its allowance.
RUN_FOLDER_BASE_BYTES = 2 * MIB
RUN_FOLDER_PER_CELL_BYTES = MIB // 2
# Mixed quantizations (Q4_K_M keeps some tensors at Q6_K) and the build's metadata: the
# nominal bits of the level's main type times this is an upper estimate of the file.
LEVEL_SIZE_MARGIN = 1.3
ONNX_BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
# Tokens are at most UTF-8 bytes plus BOS: below this bound no tokenizer needs loading.
BOS_TOKENS = 1


@dataclass(frozen=True)
class Problem:
    """One thing the run cannot do as asked: where (file and key path) and what is allowed."""

    file: str
    key_path: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.key_path}: {self.message}" if self.key_path else \
            f"{self.file}: {self.message}"


class PreflightError(HarnessError):
    """Every problem found before the run, one line each; nothing was run or written."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:  # one problem, one line
            super().__init__(self.problems[0].line())
            return
        lines = "\n".join(f"  {p.line()}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problems found before the run; nothing was run "
                         f"and no run folder was created:\n{lines}")


@dataclass
class Level:
    """What the run will do for one (model, level): use a file as is, a cached build, or build."""

    model: str
    level: str
    action: str  # "source" | "file" | "cached" | "build" | "remote"
    estimated_bytes: int = 0  # of a build (0 otherwise)


@dataclass
class Preflight:
    """What the checks found out, for the run (sources verified once) and the dry run."""

    device: DeviceChoice
    cells: list[Cell]
    todo: list[Cell]
    sources: dict[str, ModelFile] = field(default_factory=dict)
    levels: list[Level] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    disk: list[str] = field(default_factory=list)  # "path: need ..., free ..." lines


@dataclass(frozen=True)
class Request:
    """What the command line asked, besides the matrix."""

    emulate: str | None = None
    device: str | None = None
    output_dir: Path | None = None
    run_dir: Path | None = None  # a resumed run's folder (it exists; only new data is needed)


def preflight(matrix: Matrix, request: Request, manifest: dict[str, Any] | None = None,
              finished: Iterable[str] = ()) -> Preflight:
    """Check everything the run would need; raise PreflightError listing every problem."""
    problems: list[Problem] = []
    file = str(matrix.file)
    device = _device(matrix, request, manifest, problems)
    if device is None:
        raise PreflightError(problems)  # without a device there are no cells to check
    try:
        cells = select_cells(matrix, device)
    except HarnessError as e:
        raise PreflightError([*problems, Problem(file, "devices", str(e))]) from None
    done = set(finished)
    todo = [c for c in cells if c.key.cell_id not in done]
    result = Preflight(device=device, cells=cells, todo=todo)
    result.notes += _device_notes(matrix, device)
    checks: list[Callable[[], list[Problem]]] = [
        lambda: _check_sensor(matrix, device),
        lambda: _check_calibration(matrix, device),
        lambda: _check_models(matrix, result),
        lambda: _check_levels(matrix, result),
        lambda: _check_workloads(matrix, result),
        lambda: _check_disk(matrix, request, result),
    ]
    for check in checks:
        problems += check()
    if problems:
        raise PreflightError(problems)
    return result


# ------------------------------------------------------------------------------------------------
# devices


def _device(matrix: Matrix, request: Request, manifest: dict[str, Any] | None,
            problems: list[Problem]) -> DeviceChoice | None:
    """The profile the run runs as; every matrix device entry must be run, or it is a problem."""
    file = str(matrix.file)
    if request.emulate and request.device:
        problems.append(Problem("command line", "--device/--emulate",
                                "give one of them: --device PROFILE (this machine is that device) "
                                "or --emulate PROFILE (run here with its limits)"))
        return None
    try:
        device = choose_device(matrix, manifest, emulate=request.emulate, device=request.device)
    except HarnessError as e:
        flag = "--emulate" if request.emulate else "--device" if request.device else None
        problems.append(Problem("command line", flag, str(e)) if flag and manifest is None
                        else Problem(file, "devices", str(e)))
        return None
    if any(d.profile == AUTO_DEVICE for d in matrix.devices):
        for i, d in enumerate(matrix.devices):
            if d.profile not in (AUTO_DEVICE, device.profile.name):
                problems.append(Problem(file, f"devices[{i}]", _dropped(d.profile, device)))
    return device


def _dropped(name: str, device: DeviceChoice) -> str:
    """Why `auto` plus another profile cannot both run here, and what is allowed."""
    how = "emulated here" if device.emulated else "this machine"
    return (f"'{name}' would not run: `auto` is {how} ({device.profile.name}) and one run measures "
            f"one device. Allowed: remove '{name}' (run the matrix on that device, where `auto` "
            f"covers it), or keep only '{name}' and run with --emulate {name}")


def _device_notes(matrix: Matrix, device: DeviceChoice) -> list[str]:
    """A matrix naming several profiles (no `auto`) is run on each device in turn: say which
    entries this machine leaves for the others, so no cell is dropped without a word."""
    if any(d.profile == AUTO_DEVICE for d in matrix.devices):
        return []
    others = sorted({d.profile for d in matrix.devices} - {device.profile.name})
    if not others:
        return []
    return [f"cells of {', '.join(others)} are left for those devices (this run measures "
            f"{device.profile.name}{' emulated' if device.emulated else ''})"]


# ------------------------------------------------------------------------------------------------
# energy sensor


def _check_sensor(matrix: Matrix, device: DeviceChoice) -> list[Problem]:
    """A sensor named in the matrix must open here (the registry's own availability check, with
    the matrix's energy settings); `auto` with require_measured needs one measuring sensor."""
    from ..energy import SensorProblem, open_sensor

    cfg = matrix.energy
    if cfg.sensor in ("scripted", "estimate") or (cfg.sensor == "auto" and not cfg.require_measured):
        return []
    host = device.host_profile
    try:
        sensor = open_sensor(cfg, list(getattr(host, "sensors", ()) or ()), None)
    except SensorProblem as e:
        fix = f" Fix: {e.fix}." if e.fix else ""
        what = (f"'{cfg.sensor}' cannot be read here: {e.what}." if cfg.sensor != "auto"
                else f"no measuring sensor of profile {host.name} is readable: {e.what}.")
        return [Problem(str(matrix.file), "energy.sensor",
                        f"{what}{fix} Allowed here: sensor: auto (the profile's sensors, else a "
                        "labelled estimate)")]
    sensor.close()
    return []


def _check_calibration(matrix: Matrix, device: DeviceChoice) -> list[Problem]:
    """A calibration (HARNESS_CALIBRATION or the profile's `calibration:`) must be readable and
    measured for the sensor this run reads: the named one, or with `auto` one the profile lists."""
    import os

    from ..energy.calibration import ENV_VAR, calibration_path, check_applies, load_calibration

    host = device.host_profile
    path = calibration_path(getattr(host, "calibration", None))
    if path is None:
        return []
    where = ENV_VAR if path == os.environ.get(ENV_VAR) else f"profile {host.name}"
    try:
        cal = load_calibration(path)
        if matrix.energy.sensor != "auto":
            check_applies(cal, matrix.energy.sensor)
        elif cal.sensor not in (getattr(host, "sensors", ()) or ()):
            check_applies(cal, "/".join(host.sensors) or "none")
    except HarnessError as e:
        return [Problem(str(matrix.file), "energy.sensor", f"calibration from {where}: {e}")]
    return []


# ------------------------------------------------------------------------------------------------
# models and levels


def _model_key(matrix: Matrix, name: str) -> str:
    i = next(i for i, m in enumerate(matrix.models) if m.name == name)
    return f"models[{i}].{'package' if matrix.models[i].package else 'path'}"


def _check_models(matrix: Matrix, result: Preflight) -> list[Problem]:
    """Each model the remaining cells use: resolved, verified (sha256 where known, GGUF magic) and
    its header parsed through the tensor table, so a truncated file is caught here."""
    problems: list[Problem] = []
    for name in dict.fromkeys(c.model.name for c in _needed(result)):
        model = next(m for m in matrix.models if m.name == name)
        try:
            src = resolve_source(model)
            gguf_info(src.path)
        except HarnessError as e:
            problems.append(Problem(str(matrix.file), _model_key(matrix, name), str(e)))
            continue
        result.sources[name] = src
    return problems


def _needed(result: Preflight) -> list[Cell]:
    """Cells whose artifacts the run prepares: those left, and the fidelity references they use."""
    refs = {(c.model.name, getattr(c.workload.config, "reference_level", None)) for c in result.todo}
    return result.todo + [c for c in result.cells if (c.model.name, c.level.name) in refs]


def _check_levels(matrix: Matrix, result: Preflight) -> list[Problem]:
    """Each (model, level) left: a given file is checked like a model file; a GGUF build needs
    `allow_requantize` when the source is already quantized; ONNX needs its toolchain."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for cell in _needed(result):
        k = (cell.model.name, cell.level.name)
        if k in seen or cell.model.name not in result.sources:
            continue
        seen.add(k)
        j = next(j for j, lv in enumerate(matrix.levels) if lv.name == cell.level.name)
        try:
            level, problem = _level(matrix, cell, j, result.sources[cell.model.name])
        except HarnessError as e:
            level, problem = None, Problem(str(matrix.file), f"levels[{j}]", str(e))
        if problem is not None:
            problems.append(problem)
        if level is not None:
            result.levels.append(level)
    return problems


def _level(matrix: Matrix, cell: Cell, j: int, src: ModelFile) -> tuple[Level | None, Problem | None]:
    lv, model, file = cell.level, cell.model, str(matrix.file)
    if runtime_of(lv) == "onnx":
        return _onnx_level(file, j, cell, src)
    if runtime_of(lv) == "openai_http":  # a server's model: nothing to build (reached at load)
        return Level(model.name, lv.name, "remote"), None
    if lv.kind == "path":
        from ..models import resolve_path

        resolve_path(lv.name, lv.path)
        gguf_info(lv.path)
        return Level(model.name, lv.name, "file"), None
    info = gguf_info(src.path)
    if lv.prune is None and lv.quant == info["quant_type"]:
        return Level(model.name, lv.name, "source"), None
    quantized = any(t not in ("F32", "F16", "BF16", "F64") for t in info["tensor_types"])
    if quantized and not model.allow_requantize:
        i = next(i for i, m in enumerate(matrix.models) if m.name == model.name)
        return None, Problem(file, f"models[{i}].allow_requantize",
                             f"level '{lv.name}' (levels[{j}]) would requantize {src.path.name}, "
                             f"whose weights are already {info['quant_type']}. Allowed: set "
                             f"allow_requantize: true on model '{model.name}' to accept that its "
                             f"quality cannot exceed {info['quant_type']}, or use a level equal to "
                             f"the source ({info['quant_type']})")
    if _cached_gguf(src, lv):
        return Level(model.name, lv.name, "cached"), None
    return Level(model.name, lv.name, "build", _gguf_level_bytes(info["params"], lv.quant)), None


def _cached_gguf(src: ModelFile, level: Any) -> bool:
    from ..compress import cache
    from ..compress.gguf_quant import tool_version

    return cache.lookup(cache_dir(), cache.cache_key(src.sha256, level.recipe, tool_version())) is not None


def _gguf_level_bytes(params: int, quant: str) -> int:
    """An upper estimate of a quantized file: parameters x the bits of the level's main ggml type
    (Q4_K_M -> Q4_K) x LEVEL_SIZE_MARGIN; F16 size when the type is not known by name."""
    import gguf

    base = quant
    for suffix in ("_XXS", "_XS", "_S", "_M", "_L"):
        if base.endswith(suffix) and base.removesuffix(suffix) in gguf.GGMLQuantizationType.__members__:
            base = base.removesuffix(suffix)
            break
    try:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[base]]
        bits = 8.0 * size / block
    except KeyError:
        bits = 16.0
    return int(params * bits / 8 * LEVEL_SIZE_MARGIN)


def _onnx_level(file: str, j: int, cell: Cell, src: ModelFile) -> tuple[Level | None, Problem | None]:
    """An ONNX level runs in onnxruntime-genai; an uncached one is exported with the [export] tools."""
    from ..compress import cache
    from ..compress.onnx_export import EXPORT_FORMAT, check_export_deps, onnx_recipe

    if importlib.util.find_spec("onnxruntime_genai") is None:
        return None, Problem(file, f"levels[{j}]", f"ONNX level '{cell.level.name}' runs in "
                             "onnxruntime-genai, which is not installed: pip install 'edgebench[onnx]', "
                             "or remove the level")
    key = cache.cache_key(src.sha256, onnx_recipe(cell.level.onnx), EXPORT_FORMAT)
    if cache.lookup(cache_dir(), key) is not None:
        return Level(cell.model.name, cell.level.name, "cached"), None
    try:
        check_export_deps()
    except HarnessError as e:
        return None, Problem(file, f"levels[{j}]", f"ONNX level '{cell.level.name}' is not built "
                             f"yet and {e}")
    params = gguf_info(src.path)["params"] or 0
    size = int(params * ONNX_BYTES_PER_PARAM[cell.level.onnx] * LEVEL_SIZE_MARGIN)
    return Level(cell.model.name, cell.level.name, "build", size), None


# ------------------------------------------------------------------------------------------------
# workloads: data and context


def _check_workloads(matrix: Matrix, result: Preflight) -> list[Problem]:
    problems: list[Problem] = []
    tokenizers: dict[Path, Any] = {}
    for j, wl in enumerate(matrix.workloads):
        cells = [c for c in result.todo if c.workload.name == wl.name]
        if not cells:
            continue
        contexts = {}
        for c in cells:
            src = result.sources.get(c.model.name)
            if src is not None and c.runtime == "llama_cpp":  # a failed model is reported already
                contexts.setdefault((settings_for(c, result.device)[0].n_ctx, src.path), c)
        for key, message in check_workload(wl, sorted(contexts), tokenizers):
            problems.append(Problem(str(matrix.file), f"workloads[{j}].{key}", message))
    return problems


Context = tuple[int, Path]  # (n_ctx of some cells, the GGUF whose tokenizer they use)


def check_workload(wl: Any, contexts: Sequence[Context],
                   tokenizers: dict[Path, Any]) -> list[tuple[str, str]]:
    """(key, message) for each problem of one workload: its data (sample counts within it) and,
    for each n_ctx its cells run with, its longest prompt plus the tokens it generates."""
    cfg = wl.config
    if wl.kind == "llama_bench":
        return []  # its context is sized to its test, as llama-bench's (WorkloadSpec.context_tokens)
    if wl.kind == "fidelity":
        data = _items(wl)
        if isinstance(data, tuple):
            return [data]
        over = [n for n in sorted({n for n, _ in contexts}) if cfg.window_tokens > n]
        return [("window_tokens", f"{cfg.window_tokens} tokens do not fit n_ctx {n} "
                 f"(runtime.n_ctx); allowed: at most {n}, or raise runtime.n_ctx") for n in over[:1]]
    prompts = _prompts(wl)
    if isinstance(prompts, tuple):
        return [prompts]
    new = int(getattr(cfg, "max_tokens", 0) or 0)
    out = []
    for n_ctx, model in contexts:
        longest = _longest_tokens(prompts, n_ctx - new, model, tokenizers)
        if longest is not None and longest + new > n_ctx:
            key = "max_tokens" if new else "file"
            out.append((key, f"the longest prompt is {longest} tokens (with BOS) + {new} to generate = "
                        f"{longest + new}, above n_ctx {n_ctx} (runtime.n_ctx). Allowed: "
                        + (f"max_tokens at most {n_ctx - longest}, or " if 0 < n_ctx - longest < new
                           else "") + f"runtime.n_ctx >= {longest + new}"))
    return out


def _items(wl: Any) -> list[Any] | tuple[str, str]:
    """The items a quality workload draws its samples from, or (key, problem)."""
    from ..workloads.quality import closed_book, fidelity, halueval, truthfulqa

    cfg = wl.config
    loaders: dict[str, tuple[Callable[[], list[Any]], str]] = {
        "closed_book": (closed_book.load_items, f"the shipped {closed_book.DATA_FILE}"),
        "halueval": (lambda: halueval.load_items(cfg.file), "the HaluEval QA file"),
        "fidelity": (lambda: fidelity.passages(cfg.file), "HaluEval's knowledge passages"),
        "truthfulqa": (lambda: truthfulqa.load_questions(cfg.file), str(getattr(cfg, "file", ""))),
    }
    load, what = loaders[wl.kind]
    try:
        items = load()
    except HarnessError as e:
        return ("file" if getattr(cfg, "file", None) is not None or wl.kind != "closed_book"
                else "kind", str(e))
    n = cfg.samples or len(items)
    if n > len(items):
        return ("samples", f"{n} requested but {what} has {len(items)} items. Allowed: 1 to "
                f"{len(items)}")
    return items


def _prompts(wl: Any) -> list[str] | tuple[str, str]:
    """Every prompt the workload's cells will send (the seeded sample each cell draws)."""
    from ..workloads.quality.base import select

    cfg = wl.config
    if wl.kind in ("generation", "soak"):  # one prompt, sent again and again by a soak
        return [cfg.prompt]
    items = _items(wl)
    if isinstance(items, tuple):
        return items
    chosen = [it for _, it in select(items, cfg.samples or len(items), cfg.seed, wl.kind)]
    if wl.kind == "closed_book":
        from ..workloads.quality.closed_book import build_prompt

        return [build_prompt(it["question"]) for it in chosen]
    if wl.kind == "halueval":
        from ..workloads.quality.halueval import build_prompt as halueval_prompt

        return [halueval_prompt(it["knowledge"], it["question"]) for it in chosen]
    from ..workloads.quality.truthfulqa import build_context

    return [build_context(q.question) + " " + c for q in chosen for c, _ in (*q.mc1, *q.mc2)]


def _longest_tokens(prompts: Sequence[str], room: int, model: Path,
                    tokenizers: dict[Path, Any]) -> int | None:
    """Tokens (with BOS) of the longest prompt, or None when every prompt surely fits `room`:
    a token covers at least one UTF-8 byte, so the tokenizer is loaded only when a prompt's
    bytes could exceed it."""
    sizes = [len(p.encode("utf-8")) + BOS_TOKENS for p in prompts]
    if not sizes or max(sizes) <= room:
        return None
    if model not in tokenizers:
        tokenizers[model] = _vocab(model)
    tok = tokenizers[model]
    return max(len(tok.tokenize(p.encode("utf-8"), add_bos=True, special=False))
               for p, size in zip(prompts, sizes) if size > room)


def _vocab(model: Path) -> Any:
    """llama.cpp's tokenizer of a GGUF file, loaded without its weights (under a second)."""
    import llama_cpp

    from ..backends.llama_cpp import _quiet_stderr

    with _quiet_stderr():
        return llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)


# ------------------------------------------------------------------------------------------------
# disk space


def _check_disk(matrix: Matrix, request: Request, result: Preflight) -> list[Problem]:
    """Free space for the run folder and for the levels still to build, per file system."""
    run_place = request.run_dir or request.output_dir or matrix.output_dir
    cache = cache_dir()
    needs: dict[int, list[tuple[str, Path, int]]] = {}
    run_bytes = RUN_FOLDER_BASE_BYTES + RUN_FOLDER_PER_CELL_BYTES * len(result.todo)
    build_bytes = sum(lv.estimated_bytes for lv in result.levels if lv.action == "build")
    for what, place, n in (("output_dir (the run folder)", Path(run_place), run_bytes),
                           ("the level cache (HARNESS_CACHE_DIR)", cache, build_bytes)):
        existing = _existing(place)
        if n and existing is not None:
            needs.setdefault(existing.stat().st_dev, []).append((what, existing, n))
    problems: list[Problem] = []
    for items in needs.values():
        free = shutil.disk_usage(items[0][1]).free
        need = sum(n for _, _, n in items)
        desc = " + ".join(f"{what} {n / MIB:.1f} MiB" for what, _, n in items)
        result.disk.append(f"{items[0][1]}: needs about {need / MIB:.1f} MiB ({desc}), "
                           f"{free / MIB:.0f} MiB free")
        if need > free:
            key = "output_dir" if any(w.startswith("output_dir") for w, _, _ in items) else "levels"
            problems.append(Problem(str(matrix.file), key,
                                    f"disk full for this run: {items[0][1]} has {free / MIB:.1f} "
                                    f"MiB free, about {need / MIB:.1f} MiB are needed ({desc}). "
                                    "Allowed: free space, or point output_dir (--output-dir) or "
                                    "HARNESS_CACHE_DIR at a larger disk"))
    return problems


def _existing(path: Path) -> Path | None:
    """The nearest folder of `path` that exists (where its data will go), None if none does."""
    for p in (path, *path.resolve().parents):
        if p.is_dir():
            return p
    return None

