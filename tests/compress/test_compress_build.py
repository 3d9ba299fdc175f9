"""Building levels of the tiny Gemma 3 model with llama.cpp's quantizer: types, cache, pruning,
interruption and the requantization rule."""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import psutil
import pytest

from harness.compress import cache
from harness.gguf import read_header
from harness.compress.gguf_quant import ensure_level, tool_version
from harness.compress.levels import parse_level
from harness.errors import HarnessError, ModelError
from harness.schema import Node


def lv(value):
    return parse_level(Node(value, "matrix.yaml", "levels[0]"))


def matrix_types(path: Path) -> set[str]:
    """Types of the 2-D weight tensors (1-D norms stay F32 in every level)."""
    return {t.type_name for t in read_header(path).tensors if len(t.shape) == 2}


@pytest.fixture(scope="module")
def ladder(tiny_model, tmp_path_factory):
    """(cache dir, {type: Artifact}) for a four-level ladder of the tiny model, built once."""
    path, sha = tiny_model
    cache_dir = tmp_path_factory.mktemp("ladder-cache")
    return cache_dir, {q: ensure_level(path, sha, lv(q), False, cache_dir)
                       for q in ("F16", "Q8_0", "Q4_K_M", "Q2_K")}


def test_quantize_to_several_levels_gives_the_right_tensor_types(tiny_model, ladder):
    path, sha = tiny_model
    _, built = ladder
    assert matrix_types(built["F16"].path) == {"F16"}
    assert matrix_types(built["Q8_0"].path) == {"Q8_0"}
    # K-quant mixes: mostly the named type, a few sensitive tensors one step up (llama.cpp's rule)
    q4 = built["Q4_K_M"].compression["tensor_types"]
    assert q4["Q4_K"] > q4.get("Q6_K", 0) > 0
    assert matrix_types(built["Q4_K_M"].path) <= {"Q4_K", "Q6_K"}
    q2 = built["Q2_K"].compression["tensor_types"]
    assert q2["Q2_K"] > q2.get("Q3_K", 0)
    assert matrix_types(built["Q2_K"].path) <= {"Q2_K", "Q3_K", "Q4_K", "Q6_K"}
    bpw = [built[q].compression["bits_per_weight"] for q in ("F16", "Q8_0", "Q4_K_M", "Q2_K")]
    assert bpw == sorted(bpw, reverse=True) and 15.9 < bpw[0] < 16.1 and 8.4 < bpw[1] < 8.6
    for q, art in built.items():
        rec = art.compression
        assert rec["quant_type"] == q and rec["source_quant_type"] == "F32"
        assert rec["requantized"] is False and rec["cache_hit"] is False
        assert rec["file_size_bytes"] == art.path.stat().st_size
        assert rec["build_time_s"] > 0 and rec["build_peak_rss_bytes"] > 10 * 2**20
        assert rec["params"] == sum(t.n_elements for t in read_header(path).tensors)
        assert rec["llama_cpp_version"] and rec["source_sha256"] == sha


def test_cache_hit_and_miss(tiny_model, ladder):
    path, sha = tiny_model
    cache_dir, built = ladder
    first = built["Q8_0"]
    assert first.compression["cache_hit"] is False
    mtime = first.path.stat().st_mtime_ns
    again = ensure_level(path, sha, lv("Q8_0"), False, cache_dir)
    assert again.path == first.path and again.compression["cache_hit"] is True
    assert again.path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert again.compression["build_time_s"] == first.compression["build_time_s"]
    # each recipe was a miss with its own entry (the key's other parts: test below)
    assert len({art.path.parent for art in built.values()}) == len(built)
    assert all(art.path.parent.parent == cache_dir / "levels" for art in built.values())


def test_cache_key_depends_on_source_recipe_and_tool_version():
    base = cache.cache_key("a" * 64, {"quant": "Q8_0"}, "llama-cpp-python 0.3.36")
    assert base == cache.cache_key("a" * 64, {"quant": "Q8_0"}, "llama-cpp-python 0.3.36")
    assert base != cache.cache_key("b" * 64, {"quant": "Q8_0"}, "llama-cpp-python 0.3.36")
    assert base != cache.cache_key("a" * 64, {"quant": "Q4_0"}, "llama-cpp-python 0.3.36")
    assert base != cache.cache_key("a" * 64, {"quant": "Q8_0"}, "llama-cpp-python 0.3.37")


def _generate(path: Path, n_tokens: int = 6) -> tuple[list[int], np.ndarray]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, verbose=False, logits_all=True)
    prompt = llm.tokenize(b"hello world")
    llm.eval(prompt)
    logits = np.array(llm.scores[llm.n_tokens - 1])
    out = [t for _, t in zip(range(n_tokens), llm.generate(prompt, temp=0.0))]
    llm.close()
    return out, logits


def test_magnitude_pruned_file_loads_and_runs(tiny_model, cache_dir):
    path, sha = tiny_model
    art = ensure_level(path, sha, lv({"name": "f16-prune50", "quant": "F16",
                                      "prune": {"method": "magnitude", "sparsity": 0.5}}), False, cache_dir)
    prune = art.compression["prune"]
    assert prune["sparsity_achieved"] == 0.5 and prune["sparsity_after_quant"] == 0.5
    assert prune["pruned_tensors"] == 6 * 7  # q, k, v, output, gate, up, down in 6 blocks
    assert prune["params_after"] == prune["params_before"] == art.compression["params"]
    header = read_header(art.path)
    down = next(t for t in header.tensors if t.name == "blk.2.ffn_down.weight")
    values = np.asarray(header.tensor_data(down), dtype=np.float32)
    assert abs(np.mean(values == 0) - 0.5) < 1e-6
    embd = next(t for t in header.tensors if t.name == "token_embd.weight")
    assert np.count_nonzero(np.asarray(header.tensor_data(embd)) == 0) == 0  # not a linear layer
    tokens, logits = _generate(art.path)
    assert len(tokens) == 6 and np.all(np.isfinite(logits))
    _, dense_logits = _generate(path)
    assert not np.allclose(logits, dense_logits)  # pruning changed the function


def test_dropped_layers_file_loads_runs_and_keeps_attention_types(tiny_model, cache_dir):
    path, sha = tiny_model
    art = ensure_level(path, sha, lv({"name": "q8-drop2", "quant": "Q8_0",
                                      "prune": {"method": "drop_layers", "n_layers": 2}}), False, cache_dir)
    prune = art.compression["prune"]
    assert prune["dropped_blocks"] == [3, 4] and prune["block_count_after"] == 4
    header = read_header(art.path)
    assert header.get("gemma3.block_count") == 4
    blocks = sorted({int(t.name.split(".")[1]) for t in header.tensors if t.name.startswith("blk.")})
    assert blocks == [0, 1, 2, 3]
    # original pattern (period 6): blocks 0-4 sliding window, block 5 global; 5 becomes block 3
    assert header.get("gemma3.attention.sliding_window_pattern") == [True, True, True, False]
    src = read_header(path)
    per_block = sum(t.n_elements for t in src.tensors if t.name.startswith("blk.0."))
    assert prune["params_before"] - prune["params_after"] == 2 * per_block
    # the old block 5 is the new block 3, weights intact (Q8_0 of the same values)
    import gguf
    new = next(t for t in header.tensors if t.name == "blk.3.ffn_up.weight")
    old = next(t for t in src.tensors if t.name == "blk.5.ffn_up.weight")
    deq = gguf.quants.dequantize(header.tensor_data(new), gguf.GGMLQuantizationType.Q8_0)
    assert np.max(np.abs(deq - np.asarray(src.tensor_data(old)))) < 0.01
    tokens, logits = _generate(art.path)
    assert len(tokens) == 6 and np.all(np.isfinite(logits))


def test_level_equal_to_source_type_is_the_source(tiny_model, cache_dir):
    path, sha = tiny_model
    art = ensure_level(path, sha, lv("F32"), False, cache_dir)
    assert art.path == path and art.compression["kind"] == "source"
    assert art.compression["cache_hit"] is None and art.compression["build_time_s"] is None
    assert not (cache_dir / "levels").exists()


def test_requantizing_needs_permission_and_is_recorded(ladder, cache_dir):
    q8 = ladder[1]["Q8_0"].path
    q8_sha = "1" * 64
    with pytest.raises(HarnessError, match="allow_requantize: true"):
        ensure_level(q8, q8_sha, lv("Q4_K_M"), False, cache_dir)
    with pytest.raises(HarnessError, match="allow_requantize"):  # pruning dequantizes too
        ensure_level(q8, q8_sha, lv({"name": "p", "quant": "Q8_0", "prune": {
            "method": "magnitude", "sparsity": 0.1}}), False, cache_dir)
    f16 = ensure_level(q8, q8_sha, lv("F16"), True, cache_dir).compression
    assert f16["requantized"] is True and f16["source_quant_type"] == "Q8_0"
    assert f16["quant_type"] == "F16"


def _worker_child() -> psutil.Process:
    kids = [p for p in psutil.Process().children()
            if "harness.compress.worker" in " ".join(p.cmdline())]
    assert len(kids) == 1, kids
    return kids[0]


def test_killed_build_leaves_no_usable_file_and_next_run_rebuilds(tiny_model, cache_dir):
    path, sha = tiny_model
    level = lv({"name": "p", "quant": "Q4_K_M", "prune": {"method": "magnitude", "sparsity": 0.2}})
    seen_partial: list[int] = []

    def kill_mid_write(message: str) -> None:
        if "wrote tensor 1/" in message:  # the worker has started writing the pruned file
            partials = list((cache_dir / "levels").glob(".partial-*/*.gguf"))
            seen_partial.extend(p.stat().st_size for p in partials)
            _worker_child().send_signal(signal.SIGKILL)

    with pytest.raises(ModelError, match="killed by signal 9"):
        ensure_level(path, sha, level, False, cache_dir, progress=kill_mid_write)
    assert seen_partial and seen_partial[0] > 0  # a half-written file existed at the kill
    key = cache.cache_key(sha, level.recipe, tool_version())
    assert cache.lookup(cache_dir, key) is None
    assert list((cache_dir / "levels").iterdir()) == []  # the build folder was removed
    rebuilt = ensure_level(path, sha, level, False, cache_dir)
    assert rebuilt.compression["cache_hit"] is False
    assert rebuilt.compression["prune"]["sparsity_achieved"] == pytest.approx(0.2, abs=1e-5)


def test_partial_folder_of_a_dead_process_is_never_used_and_is_swept(tiny_model, cache_dir):
    """A killed *parent* cannot clean up: its folder stays but is invisible and swept later."""
    path, sha = tiny_model
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = cache.cache_key(sha, lv("Q8_0").recipe, "llama-cpp-python x")
    stale = cache_dir / "levels" / f".partial-{key}-{dead.pid}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "half.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    (stale / "meta.json").write_text('{"artifact": "half.gguf"}')
    assert cache.lookup(cache_dir, key) is None
    live = cache.begin(cache_dir, "f" * 32)
    assert not stale.exists() and live.exists()  # only the dead process's folder went
    cache.discard(live)


def test_commit_race_keeps_the_first_entry(tmp_path):
    for i in range(2):
        work = cache.begin(tmp_path, "k" * 32)
        (work / "a.gguf").write_bytes(b"x" * (i + 1))
        entry = cache.commit(work, tmp_path, "k" * 32, "a.gguf", {"n": i})
        assert not work.exists()
    assert entry.meta["n"] == 0 and entry.path.read_bytes() == b"x"


def test_failing_quantizer_reports_the_llama_log(cache_dir, tmp_path):
    import gguf

    bad = tmp_path / "unknown-arch.gguf"
    w = gguf.GGUFWriter(str(bad), "no_such_arch")
    w.add_block_count(1)
    w.add_tensor("blk.0.ffn_up.weight", np.ones((32, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelError, match="building level 'Q8_0' failed") as e:
        ensure_level(bad, "2" * 64, lv("Q8_0"), False, cache_dir)
    assert "no_such_arch" in str(e.value)  # the llama.cpp log tail names the cause
    assert list((cache_dir / "levels").iterdir()) == []
