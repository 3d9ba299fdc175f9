"""The files cells load: each (model, level) resolved, verified and built once before the run.

A level's runtime (harness.compress.levels.runtime_of) decides how it is built and described:
llama.cpp levels are GGUF files described by harness.gguf, ONNX levels are folders described by
their export record.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..compress.levels import runtime_of
from ..errors import HarnessError
from ..gguf import gguf_info
from ..matrix import Cell
from ..models import ModelFile, cache_dir, resolve_package, resolve_path, sha256_file


@dataclass
class PreparedLevel:
    """A prepared (model, level): the file or folder a cell loads, its runtime, and the model
    fields of its records. (harness.compress's Artifact is what a builder returns.)"""

    path: Path
    runtime: str  # "llama_cpp" | "onnx" (harness.compress.levels.runtime_of)
    fields: dict[str, Any]  # model record fields + compression


def resolve_source(model: Any) -> ModelFile:
    if model.package:
        return resolve_package(model.package, model.sha256)
    return resolve_path(model.name, model.path, model.sha256)


def prepare_artifacts(cells: list[Cell], say: Callable[[str], None]) -> dict[tuple[str, str], PreparedLevel]:
    """Resolve each (model, level) once: package assembly, verification, quantization, pruning.

    Runs before the run directory exists: a missing, truncated or foreign model file, a level that
    needs a requantization the matrix does not allow, or a failed build stops here with a clear
    error and nothing written (built levels stay cached for the next attempt).
    """
    out: dict[tuple[str, str], PreparedLevel] = {}
    sources: dict[str, ModelFile] = {}
    for cell in cells:
        k = (cell.model.name, cell.level.name)
        if k in out:
            continue
        if runtime_of(cell.level) == "openai_http":  # a server's model: nothing to build or verify
            from ..backends.openai_http import prepared_fields

            out[k] = PreparedLevel(Path(os.devnull), "openai_http", prepared_fields(cell.level))
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
        runtime = runtime_of(cell.level)
        out[k] = PreparedLevel(path, runtime, artifact_fields(path, runtime, src, compression))
    return out


def build_level(src: ModelFile, level: Any, allow_requantize: bool,
                say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """GGUF levels through llama.cpp's quantizer; ONNX levels through the export step.

    The builders are imported here, not at the top: each pulls its own toolchain (llama.cpp's
    quantizer, onnxruntime-genai's builder) that a run without such levels never needs.
    """
    if runtime_of(level) == "onnx":
        from ..compress.onnx_export import export_onnx

        art = export_onnx(src.path, src.sha256, level.onnx, cache_dir(), progress=say)
    else:
        from ..compress.gguf_quant import ensure_level

        art = ensure_level(src.path, src.sha256, level, allow_requantize, cache_dir(), progress=say)
    return Path(art.path), dict(art.compression)


def artifact_fields(path: Path, runtime: str, source: ModelFile,
                    compression: dict[str, Any]) -> dict[str, Any]:
    """The model fields every record of the level carries, and its `compression` record."""
    if runtime == "onnx":  # a folder: its export record describes it
        fields: dict[str, Any] = {
            "model_sha256": compression.get("sha256"), "model_size_bytes": compression.get("size_bytes"),
            "quant_type": compression.get("precision"), "model_source": source.source}
    else:
        digest = (source.sha256 if path == source.path
                  else compression.get("sha256") or sha256_file(path))
        fields = model_record_fields(ModelFile(source.name, path, digest or "", path.stat().st_size,
                                               source.source), gguf_info(path))
    fields["compression"] = compression
    fields["source_quant_type"] = compression.get("source_quant_type")
    return fields


def model_record_fields(model: ModelFile, info: dict[str, Any]) -> dict[str, Any]:
    """The model fields of a GGUF level's records: its file, and what the GGUF says (harness.gguf)."""
    return {
        "model_sha256": model.sha256,
        "model_size_bytes": model.size_bytes,
        "model_params": info.get("params"),
        "quant_type": info.get("quant_type"),
        "bits_per_weight": info.get("bits_per_weight"),
        "model_architecture": info.get("architecture"),
        "model_context_length": info.get("context_length"),
        "model_source": model.source,
    }
