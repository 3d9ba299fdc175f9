"""ONNX levels through the whole harness: token agreement (report analysis) and cross-runtime fidelity."""
import pytest

from harness.report.analysis import token_agreements
from harness.store import load_run
from tests.conftest import only_run_dir, run_cli

pytestmark = [pytest.mark.export, pytest.mark.e2e]
pytest.importorskip("onnxruntime_genai", reason="needs the [onnx] extra")


def test_onnx_fp32_level_in_a_run_agrees_with_its_llama_cpp_source(tmp_path, matrix_factory):
    from harness.compress.onnx_export import check_export_deps

    try:  # the fp32 folder is built once (export extra) and then cached
        check_export_deps()
    except Exception as e:
        pytest.skip(f"ONNX export dependencies missing: {e}")
    m = matrix_factory(levels="[Q4_K_M, fp32]", workloads="""
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 8}
      - {name: fid, kind: fidelity, samples: 1, window_tokens: 32, reference_level: Q4_K_M}
    """)
    r = run_cli("run", str(m), "--quiet", "--no-report", timeout=1800)
    assert r.returncode == 0, r.stderr
    run = load_run(only_run_dir(tmp_path / "results"))
    reps = {(x["level"], x["workload"]): x for x in run.repetitions}
    onnx_chat = reps[("fp32", "chat")]
    assert onnx_chat["runtime"] == "onnx" and onnx_chat["quant_type"] == "fp32"
    # fp32 reproduces the GGUF source's greedy tokens (computed by the report, across cells)
    agreement = token_agreements(run.records)
    assert agreement[onnx_chat["cell_id"]] == [1.0]
    assert reps[("Q4_K_M", "chat")]["cell_id"] not in agreement
    fid = reps[("fp32", "fid")]
    assert 0 <= fid["kl_divergence_mean"] < 0.1 and fid["top1_agreement"] > 0.8
    assert "onnx" in run.manifest["runtime_info"]
