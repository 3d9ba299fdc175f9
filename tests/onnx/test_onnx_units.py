"""ONNX room checks that need neither onnxruntime-genai nor the export extra (fast, always run)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.backends.base import RuntimeSettings
from harness.backends.onnx_genai import (
    GENAI_CONFIG, OnnxGenaiBackend, Provider, check_model_folder, generation_max_length,
    parse_providers)
from harness.compress import cache
from harness.compress.onnx_export import (
    EXPORT_FORMAT, check_export_deps, export_onnx, flatten_gemma3_rope, onnx_recipe,
    token_agreement)
from harness.errors import HarnessError, ModelError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"
SHA = "ab" * 32


def _folder(tmp_path: Path, with_onnx: bool = True) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(FIXTURES / GENAI_CONFIG, folder / GENAI_CONFIG)
    if with_onnx:
        (folder / "model.onnx").write_bytes(b"\x08\x07")  # content is onnxruntime's business
    return folder


# ---- token agreement ---------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    ([1, 2, 3, 4], [1, 2, 3, 4], 1.0),
    ([1, 2, 3, 4], [1, 2, 9, 4], 0.5),  # the match at index 3 comes after the split: not counted
    ([5, 2, 3, 4], [1, 2, 3, 4], 0.0),
    ([1, 2], [1, 2, 3, 4], 0.5),  # one stopped early: the longer output is the denominator
    ([], [], 1.0),
    ([], [7], 0.0),
])
def test_token_agreement_is_common_prefix_over_longer_output(a, b, expected):
    assert token_agreement(a, b) == expected
    assert token_agreement(b, a) == expected


# ---- model folder checks -----------------------------------------------------------------------

def test_valid_folder_is_read_without_onnxruntime(tmp_path):
    info = check_model_folder(_folder(tmp_path))
    assert info.decoder_file.name == "model.onnx"
    assert info.sliding_window == 512
    assert info.context_length == 32768
    assert info.bos_token_id == 2 and info.eos_token_ids == (1,)
    assert info.model_type == "gemma3_text"


def test_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        check_model_folder(tmp_path / "nowhere")


def test_gguf_file_instead_of_folder_points_to_llama_cpp(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="llama_cpp"):
        check_model_folder(gguf)


def test_missing_genai_config(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="no genai_config.json"):
        check_model_folder(folder)


def test_missing_onnx_file_lists_what_is_there(tmp_path):
    folder = _folder(tmp_path, with_onnx=False)
    (folder / "other.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"'model.onnx' but that file is missing.*other.onnx"):
        check_model_folder(folder)


def test_broken_genai_config(tmp_path):
    folder = _folder(tmp_path)
    (folder / GENAI_CONFIG).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        check_model_folder(folder)
    (folder / GENAI_CONFIG).write_text(json.dumps({"model": {"decoder": {}}}))
    with pytest.raises(ModelError, match="missing key 'filename'"):
        check_model_folder(folder)


def test_backend_load_rejects_bad_folder_before_importing_runtime(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # import would fail
    with pytest.raises(ModelError, match="no genai_config.json"):
        OnnxGenaiBackend().load(tmp_path, RuntimeSettings())


def test_backend_without_onnxruntime_genai_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)
    with pytest.raises(HarnessError, match=r"edgebench\[onnx\]"):
        OnnxGenaiBackend().load(_folder(tmp_path), RuntimeSettings())


def test_backend_used_before_load():
    with pytest.raises(HarnessError, match="load"):
        OnnxGenaiBackend().tokenize("hi")


# ---- providers and lengths ---------------------------------------------------------------------

def test_providers_default_to_cpu_and_keep_order_and_options():
    assert parse_providers(None) == [Provider("cpu")]
    got = parse_providers([{"CUDA": {"device_id": 0}}, "cpu"])
    assert got == [Provider("cuda", (("device_id", "0"),)), Provider("cpu")]
    assert parse_providers("xnnpack") == [Provider("xnnpack")]


@pytest.mark.parametrize("bad", [[], ["tpu"], [{"cuda": 1}], [{"a": {}, "b": {}}], 3])
def test_bad_providers_fail_with_choices(bad):
    with pytest.raises(HarnessError, match="provider|providers"):
        parse_providers(bad)


def test_max_length_is_n_ctx_raised_to_sliding_window(tmp_path):
    folder = check_model_folder(_folder(tmp_path))
    assert generation_max_length(10, 20, n_ctx=256, folder=folder) == 512
    assert generation_max_length(10, 20, n_ctx=2048, folder=folder) == 2048
    with pytest.raises(HarnessError, match="raise n_ctx"):
        generation_max_length(1000, 100, n_ctx=1024, folder=folder)


# ---- export helpers ----------------------------------------------------------------------------

def test_gemma3_rope_is_flattened_and_nested_entries_kept():
    nested = {"full_attention": {"rope_theta": 1e6, "rope_type": "default"},
              "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"}}
    config = SimpleNamespace(model_type="gemma3_text", rope_parameters=dict(nested))
    assert flatten_gemma3_rope(config) is True
    assert config.rope_parameters["rope_type"] == "default"
    assert config.rope_theta == 1e6 and config.rope_local_base_freq == 1e4
    assert config.rope_parameters["sliding_attention"] == nested["sliding_attention"]
    assert flatten_gemma3_rope(config) is False  # already flat: untouched
    other = SimpleNamespace(model_type="llama", rope_parameters=dict(nested))
    assert flatten_gemma3_rope(other) is False and "rope_type" not in other.rope_parameters


def test_int4_recipe_keeps_k_quant_and_recipes_differ():
    assert onnx_recipe("int4")["builder_extra_options"] == {"algo_config": "k_quant"}
    keys = {cache.cache_key(SHA, onnx_recipe(p), EXPORT_FORMAT) for p in
            ("fp32", "fp16", "int8", "int4")}
    assert len(keys) == 4


def test_export_rejects_unknown_precision_and_missing_source(tmp_path):
    with pytest.raises(HarnessError, match="fp32, fp16, int8, int4"):
        export_onnx(tmp_path / "m.gguf", SHA, "int3", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        export_onnx(tmp_path / "m.gguf", SHA, "fp32", tmp_path)


def test_missing_export_extra_is_listed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "onnx_ir") else real(name, *a))
    with pytest.raises(HarnessError, match=r"torch.*onnx-ir.*edgebench\[export\]"):
        check_export_deps()


def test_cached_export_is_returned_without_building(tmp_path, monkeypatch):
    """A committed entry under the same source sha256 + recipe is reused, even with no export deps."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    key = cache.cache_key(SHA, onnx_recipe("int8"), EXPORT_FORMAT)
    with cache.build(tmp_path / "cache", key) as work:
        _folder(work)
        entry = cache.commit(work, tmp_path / "cache", key, "model",
                             {"compression": {"level": "int8", "derived_from": {"sha256": SHA}}})
    calls = []

    def deps_checked():
        calls.append(1)
        raise HarnessError("building needs the export extra")

    monkeypatch.setattr("harness.compress.onnx_export.check_export_deps", deps_checked)
    art = export_onnx(gguf, SHA, "int8", tmp_path / "cache")
    assert art.path == entry.path and art.compression["cache_hit"] is True
    assert calls == []  # a cache hit needs no export extra (a device may only have the cache)
    with pytest.raises(HarnessError, match="export extra"):  # same source, other recipe: a miss
        export_onnx(gguf, SHA, "int4", tmp_path / "cache")
    assert calls == [1]


def test_folder_digest_covers_names_and_contents(tmp_path):
    from harness.compress.onnx_export import folder_sha256

    folder = _folder(tmp_path)
    first = folder_sha256(folder)
    assert first == folder_sha256(folder)
    (folder / "model.onnx").write_bytes(b"\x08\x08")
    second = folder_sha256(folder)
    assert second != first
    (folder / "model.onnx").rename(folder / "renamed.onnx")
    assert folder_sha256(folder) not in (first, second)


def test_logits_need_the_load_flag_like_every_runtime():
    with pytest.raises(HarnessError, match="need_logits"):
        OnnxGenaiBackend().logits([2, 3])


def test_runtimes_matrix_compares_both_runtimes_on_the_same_workloads():
    pytest.importorskip("llama_cpp", reason="level names come from llama-cpp-python")
    from harness.matrix import load_matrix

    repo = Path(__file__).resolve().parents[2]
    matrix = load_matrix(repo / "benchmarks" / "runtimes.yaml")
    cells = matrix.cells("linux-generic")
    by_runtime: dict[str, set[str]] = {}
    for c in cells:
        by_runtime.setdefault(c.key.runtime, set()).add(c.key.level)
    assert by_runtime == {"llama_cpp": {"Q4_K_M", "Q8_0"}, "onnx": {"fp32", "int8", "int4"}}
    workloads = {r: {c.key.workload for c in cells if c.key.runtime == r} for r in by_runtime}
    assert workloads["onnx"] == workloads["llama_cpp"]
    assert matrix.runtime_overrides["providers"] == ["cpu"]
