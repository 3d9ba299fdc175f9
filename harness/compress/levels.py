"""Compression levels as written in a matrix's `levels:` list.

A level is one rung of the compression ladder of one source model. Its `recipe` is the stable
description of how the artifact is built: it is part of the cache key, so two levels with the
same recipe share one file and a changed recipe never reuses a stale one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..schema import Node

ONNX_LEVELS = ("fp32", "fp16", "int8", "int4")
PRUNE_METHODS = ("magnitude", "drop_layers")

# Types llama.cpp refuses to produce without an importance matrix (llama-quantize says
# "Please do not use IQ1_S, IQ1_M, IQ2_S, IQ2_XXS, IQ2_XS or Q2_K_S quantization without an
# importance matrix"); the harness has no imatrix step, so they are rejected up front.
NEEDS_IMATRIX = ("IQ1_S", "IQ1_M", "IQ2_S", "IQ2_XXS", "IQ2_XS", "Q2_K_S")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class Prune:
    """How weights are removed before quantization; exactly one of the two amounts is set."""

    method: str  # "magnitude" | "drop_layers"
    sparsity: float | None = None  # magnitude: fraction of each linear weight tensor set to 0
    n_layers: int | None = None  # drop_layers: transformer blocks removed

    def recipe(self) -> dict[str, Any]:
        if self.method == "magnitude":
            return {"method": "magnitude", "scope": "per_tensor", "sparsity": self.sparsity}
        return {"method": "drop_layers", "n_layers": self.n_layers, "rule": "last_before_final"}


@dataclass(frozen=True)
class Level:
    """One compression level; `kind` says which fields are meaningful.

    kind "gguf": `quant` (llama.cpp type name) and optional `prune`.
    kind "path": `path`, a GGUF file used as is.
    kind "onnx": `onnx` (fp32/fp16/int8/int4), built by the ONNX export room.
    kind "remote": `remote` (harness.backends.openai_http.Endpoint), a model a server runs.
    """

    name: str
    kind: str
    quant: str | None = None
    prune: Prune | None = None
    path: Path | None = None
    onnx: str | None = None
    remote: Any = None  # harness.backends.openai_http.Endpoint

    @property
    def recipe(self) -> dict[str, Any]:
        """What identifies the artifact's content (not the level's display name)."""
        if self.kind == "gguf":
            r: dict[str, Any] = {"format": "gguf", "quant": self.quant}
            if self.prune is not None:
                r["prune"] = self.prune.recipe()
            return r
        if self.kind == "path":
            return {"format": "gguf", "path": str(self.path)}
        if self.kind == "remote":
            return {"format": "remote", "url": self.remote.url, "model": self.remote.model}
        return {"format": "onnx", "precision": self.onnx}


RUNTIMES = ("llama_cpp", "onnx", "openai_http")


def runtime_of(level: Level) -> str:
    """The one place a level's runtime is decided: ONNX levels run in onnxruntime-genai, every
    GGUF level (quantized, pruned, or a file used as is) in llama.cpp. The matrix (a cell's
    runtime), the run (how a level is built and described, which backend loads a fidelity
    reference) and the manifest all ask here. A remote level (`runtime: openai_http`, a
    server's URL and model name) runs on that server: nothing is built on the device."""
    if level.kind == "remote":
        return "openai_http"
    return "onnx" if level.kind == "onnx" else "llama_cpp"


@lru_cache(maxsize=1)
def gguf_quant_types() -> dict[str, int]:
    """llama.cpp's output types by name (e.g. "Q4_K_M" -> 15), from llama_cpp's LLAMA_FTYPE_*.

    Read from the installed llama-cpp-python so the list always matches the quantizer that will
    run; `GUESSED` is a loader flag, not a type, and is left out.
    """
    try:
        import llama_cpp
    except ImportError as e:
        raise HarnessError(
            f"GGUF levels need llama-cpp-python (pip install llama-cpp-python): {e}") from None
    types: dict[str, int] = {}
    for attr in dir(llama_cpp):
        if not attr.startswith("LLAMA_FTYPE_") or attr == "LLAMA_FTYPE_GUESSED":
            continue
        value = getattr(llama_cpp, attr)
        if not isinstance(value, int):
            continue
        name = attr.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
        types[name] = value
    return dict(sorted(types.items(), key=lambda kv: kv[1]))


def valid_level_names() -> list[str]:
    """Every string a level may be: usable GGUF types, then the ONNX precisions."""
    gguf = [n for n in gguf_quant_types() if n not in NEEDS_IMATRIX]
    return gguf + list(ONNX_LEVELS)


def parse_level(node: Node) -> Level:
    """Validate one `levels:` entry (string or mapping); errors list what is allowed."""
    if isinstance(node.value, str):
        return _parse_name(node)
    if isinstance(node.value, dict):
        if node.has("runtime"):
            return _parse_remote_level(node)
        if node.has("path"):
            return _parse_path_level(node)
        return _parse_mapping(node)
    raise node.fail("a level is a quant type name (e.g. Q4_K_M), an ONNX precision (fp16, int8...) "
                    "or a mapping {name, quant, prune} / {name, path} / "
                    "{name, runtime: openai_http, url, model}")


def _parse_name(node: Node) -> Level:
    raw = node.str()
    if raw.lower() in ONNX_LEVELS:
        return Level(name=raw.lower(), kind="onnx", onnx=raw.lower())
    quant = _quant_type(node, raw)
    return Level(name=quant, kind="gguf", quant=quant)


def _quant_type(node: Node, raw: str) -> str:
    """Normalise a GGUF type name (case-insensitive) or fail listing the valid ones."""
    up = raw.upper()
    if up in NEEDS_IMATRIX:
        raise node.fail(f"'{raw}' needs an importance matrix, which the harness does not build; "
                        f"choose one of: {', '.join(valid_level_names())}")
    if up not in gguf_quant_types():
        raise node.fail(f"unknown compression level '{raw}'; choose one of: "
                        f"{', '.join(valid_level_names())}, or a mapping "
                        "{name, quant, prune} / {name, path}")
    return up


def _parse_level_name(node: Node) -> str:
    name_node = node.get("name")
    name = name_node.str()
    if not _NAME_RE.match(name):
        raise name_node.fail(f"'{name}' is not a usable level name: use 1-64 letters, digits, "
                             "'.', '_', '+' or '-', starting with a letter or digit")
    reserved = {n.upper() for n in gguf_quant_types()} | {n.upper() for n in ONNX_LEVELS}
    if name.upper() in reserved:
        raise name_node.fail(f"'{name}' is a built-in level name; give this variant its own name "
                             "(e.g. q4-prune25) so records cannot confuse the two")
    return name


def _parse_mapping(node: Node) -> Level:
    node.mapping(allowed=("name", "quant", "prune"), required=("name", "quant"))
    name = _parse_level_name(node)
    quant_node = node.get("quant")
    quant = _quant_type(quant_node, quant_node.str())
    prune = _parse_prune(node.get("prune")) if node.has("prune") else None
    return Level(name=name, kind="gguf", quant=quant, prune=prune)


def _parse_prune(node: Node) -> Prune:
    node.mapping(allowed=("method", "sparsity", "n_layers"), required=("method",))
    method = node.get("method").str(choices=PRUNE_METHODS)
    if method == "magnitude":
        if node.has("n_layers"):
            raise node.get("n_layers").fail("n_layers belongs to method drop_layers; "
                                            "magnitude pruning takes sparsity")
        if not node.has("sparsity"):
            raise node.fail("method magnitude needs 'sparsity' (a fraction, e.g. 0.25)")
        sparsity = node.get("sparsity").float(min=0.0, max=1.0)
        if not 0.0 < sparsity < 1.0:
            raise node.get("sparsity").fail(f"must be strictly between 0 and 1, got {sparsity}")
        return Prune(method="magnitude", sparsity=sparsity)
    if node.has("sparsity"):
        raise node.get("sparsity").fail("sparsity belongs to method magnitude; "
                                        "drop_layers takes n_layers")
    if not node.has("n_layers"):
        raise node.fail("method drop_layers needs 'n_layers' (how many blocks to remove, e.g. 2)")
    return Prune(method="drop_layers", n_layers=node.get("n_layers").int(min=1))


def _parse_remote_level(node: Node) -> Level:
    """`{name, runtime: openai_http, url, model, ...}`: validated by the remote runtime's module."""
    from ..backends.openai_http import parse_endpoint

    endpoint = parse_endpoint(node)
    return Level(name=_parse_level_name(node), kind="remote", remote=endpoint)


def _parse_path_level(node: Node) -> Level:
    node.mapping(allowed=("name", "path"), required=("name", "path"))
    name = _parse_level_name(node)
    path_node = node.get("path")
    path = Path(path_node.str()).expanduser()
    if not path.is_absolute():  # relative to the matrix file, like every path in a config
        base = Path(node.file).resolve().parent if Path(node.file).is_file() else Path.cwd()
        path = base / path
    if not path.is_file():
        raise path_node.fail(f"GGUF file not found: {path}")
    return Level(name=name, kind="path", path=path)
