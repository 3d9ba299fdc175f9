"""Shared pieces for the pytest-benchmark suites of the harness's own hot paths.

Run with `pytest benchmarks` (the default test run covers `tests/` only). Suites whose API is
not importable are skipped with the reason, never faked.
"""
from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

import pytest

from harness.metrics import METRICS
from harness.records import CELL_SUMMARY, SCHEMA_VERSION, CellKey, Repetition, make_record
from harness.stats import summarize
from harness.store import RECORDS_FILE, RunWriter, dumps

GGUF_LEVELS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


def require(module: str, *attrs: str) -> Any:
    """Import `module` and check it exposes `attrs`, or skip the calling benchmark saying why."""
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{module} is not importable yet ({e})")
    missing = [a for a in attrs if not hasattr(mod, a)]
    if missing:
        pytest.skip(f"{module} has no {', '.join(missing)} yet")
    return mod


def _repetition(rng: random.Random, quality: bool) -> dict[str, Any]:
    """Plausible figures for a small model on a small board (noise, not constants)."""
    tok_s = rng.uniform(5, 60)
    tokens_out = 64
    decode_s = tokens_out / tok_s
    power_w = rng.uniform(2, 15)
    gross = power_w * (decode_s + 0.3)
    rec = {"ttft_s": rng.uniform(0.05, 2.0), "decode_tokens_per_s": tok_s,
           "prefill_tokens_per_s": tok_s * 8, "e2e_latency_s": decode_s + 0.3,
           "tokens_in": 40, "tokens_out": tokens_out,
           "peak_rss_bytes": int(rng.uniform(200, 900) * 2**20),
           "energy_valid": True, "energy_gross_j": gross,
           "baseline_power_w": power_w * 0.3, "energy_net_j": gross * 0.7, "power_avg_w": power_w,
           "power_peak_w": power_w * 1.2, "energy_per_decode_token_j": gross / tokens_out,
           "tokens_per_j": tokens_out / gross, "co2e_g": gross / 3.6e6 * 400}
    if quality:
        rate = rng.uniform(0.05, 0.6)
        rec |= {"hallucination_rate": rate, "accuracy": 1 - rate,
                "hallucination_rate_ci95_low": max(0.0, rate - 0.1),
                "hallucination_rate_ci95_high": min(1.0, rate + 0.1), "n_items": 60}
    return rec


def write_results_table(root: Path, n_models: int, n_devices: int, n_workloads: int,
                        repetitions: int = 3, seed: int = 0, distinct: int = 64) -> Path:
    """A run directory with models x levels x devices x workloads cells, as the harness writes
    them (schema 2: lean repetitions, the cell's constants once on its summary).

    Figures come from `distinct` generated cells per kind, reused across the matrix (synthetic
    copies of a run): a 10,000-cell run is written in seconds, not in 110,000 summarize calls.
    """
    rng = random.Random(seed)
    run_id = f"bench-{n_models}x{len(GGUF_LEVELS)}x{n_devices}x{n_workloads}"
    writer = RunWriter.create(root, run_id)
    writer.write_manifest({"schema_version": SCHEMA_VERSION, "run_id": run_id,
                           "created_utc": "2026-11-23T00:00:00Z",
                           "host": {"cpu_model": "bench", "machine": "aarch64", "cores_logical": 6},
                           "device": {"profile": "jetson-orin-nano", "emulated": False},
                           "energy": {"sensor": "ina3221_hwmon", "method": "measured"}})
    pools = {q: [_figures(rng, repetitions, q) for _ in range(distinct)] for q in (False, True)}
    lines: list[str] = []
    for m in range(n_models):
        for level in GGUF_LEVELS:
            for d in range(n_devices):
                for w in range(n_workloads):
                    key = CellKey(f"model-{m}", level, "llama_cpp", f"device-{d}", None, f"wl-{w}")
                    reps, metrics = rng.choice(pools[w % 2 == 1])
                    lines += _cell_lines(run_id, key, reps, metrics, quality=(w % 2 == 1),
                                         size=rng.randint(100, 900) * 2**20)
    # One write instead of RunWriter.append's fsync per record: same lines, seconds not minutes.
    (writer.dir / RECORDS_FILE).write_text("".join(lines))
    return writer.dir


def _figures(rng: random.Random, repetitions: int,
             quality: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    reps = [_repetition(rng, quality) for _ in range(repetitions)]
    metrics = {k: summarize([r[k] for r in reps]) for k in sorted(reps[0]) if k in METRICS
               or k.endswith(("_ci95_low", "_ci95_high"))}
    return reps, metrics


def _cell_lines(run_id: str, key: CellKey, reps: list[dict[str, Any]], metrics: dict[str, Any],
                quality: bool, size: int) -> list[str]:
    kind = "closed_book" if quality else "generation"
    out = [dumps(Repetition(cell_id=key.cell_id, attempt="a1", repetition=i, measured=rep).to_dict())
           + "\n"
           for i, rep in enumerate(reps)]
    summary = make_record(CELL_SUMMARY, run_id, key, workload_kind=kind, attempt="a1",
                          status="ok", n_repetitions=len(reps), metrics=metrics,
                          energy_method="measured", energy_sensor="ina3221_hwmon",
                          energy_coverage="module_rails", emulated=False, throttled=False,
                          quant_type=key.level, model_size_bytes=size, warnings=[])
    return out + [dumps(summary) + "\n"]


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """Say in the saved JSON which figures are measurements, so comparisons stay honest."""
    output_json.setdefault("edgebench", {})["note"] = (
        "extra_info energy figures carry energy_method (measured or estimated) and energy_sensor; "
        "--benchmark-compare-fail compares wall time only, gate energy with `python -m harness "
        "check --baseline` (docs/budgets.md)")
