"""Runtime settings as a matrix axis (llama-bench's `-t 1,2,4`) and their validation."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.matrix import parse_matrix
from harness.records import CellKey
from harness.schema import load_yaml


def _matrix(tmp_path: Path, runtime: str, workloads: str | None = None):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    workloads = workloads or "[{name: chat, kind: generation, prompt: chat_short, max_tokens: 4}]"
    path = tmp_path / "matrix.yaml"
    path.write_text(textwrap.dedent(f"""
        models: [{{name: m, path: {model}}}]
        levels: [Q4_K_M]
        runtime: {runtime}
        workloads: {workloads}
    """))
    return parse_matrix(load_yaml(path), path)


def test_threads_list_expands_into_cells_with_their_own_identity(tmp_path):
    m = _matrix(tmp_path, "{n_threads: [1, 2, 4], n_ctx: 512}")
    cells = m.cells("linux-generic")
    assert [c.runtime_overrides["n_threads"] for c in cells] == [1, 2, 4]
    assert all(c.runtime_overrides["n_ctx"] == 512 for c in cells)
    assert len({c.key.cell_id for c in cells}) == 3
    assert cells[1].key.fields()["swept_settings"] == {"n_threads": 2}
    assert "n_threads=2" in cells[1].key.label()


def test_two_swept_settings_give_their_product(tmp_path):
    m = _matrix(tmp_path, "{n_threads: [1, 2], n_batch: [64, 256]}")
    cells = m.cells("linux-generic")
    got = {(c.runtime_overrides["n_threads"], c.runtime_overrides["n_batch"]) for c in cells}
    assert got == {(1, 64), (1, 256), (2, 64), (2, 256)}


def test_single_value_list_is_a_plain_setting(tmp_path):
    m = _matrix(tmp_path, "{n_threads: [2]}")
    (cell,) = m.cells("linux-generic")
    assert cell.runtime_overrides["n_threads"] == 2 and cell.key.settings == ()


@pytest.mark.parametrize("runtime, words", [
    ("{n_threads: 0}", "runtime.n_threads"),
    ("{n_threads: [1, 0]}", "runtime.n_threads[1]"),
    ("{n_threads: 1.5}", "expected an integer"),
    ("{n_threads: [two]}", "expected an integer"),
    ("{n_threads: []}", "at least 1"),
    ("{n_threads: [2, 2]}", "twice"),
    ("{n_batch: [0]}", "runtime.n_batch[0]"),
])
def test_bad_thread_values_are_refused_naming_the_key(tmp_path, runtime, words):
    with pytest.raises(ConfigError) as e:
        _matrix(tmp_path, runtime)
    assert words in str(e.value)


def test_cell_id_without_sweep_is_unchanged_from_schema_1():
    # the id a schema-1 run recorded for these dimensions: resume of old runs keeps working
    assert CellKey("m", "l", "r", "d", None, "w").cell_id == "dece5b68bcf3"


def test_record_round_trip_keeps_the_swept_settings():
    k = CellKey("m", "Q4_K_M", "llama_cpp", "d", None, "chat", settings=(("n_threads", 2),))
    assert CellKey.from_record(k.fields()) == k
    assert CellKey.from_record({**k.fields(), "swept_settings": None}).settings == ()


def test_llama_bench_test_names_are_validated(tmp_path):
    m = _matrix(tmp_path, "{}", "[{name: tg, kind: llama_bench, test: tg128}, "
                                "{name: pp, kind: llama_bench, test: pp512}]")
    tg, pp = (w.config for w in m.workloads)
    assert (tg.mode, tg.n_tokens, pp.mode, pp.n_tokens) == ("tg", 128, "pp", 512)
    assert m.workloads[0].repetitions == 3 and m.workloads[0].warmup == 1  # a speed workload
    with pytest.raises(ConfigError, match="pp<N>"):
        _matrix(tmp_path, "{}", "[{name: x, kind: llama_bench, test: tg0}]")


def test_llama_bench_cells_size_their_context_to_the_test_others_keep_runtime_n_ctx(tmp_path):
    """llama-bench runs tg128 in a 128-token context and decode speed depends on the context
    size, so llama_bench cells take the test's N as n_ctx; a generation keeps runtime.n_ctx."""
    from harness.devices.profile import get_profile
    from harness.run.execution import settings_for
    from harness.run.planning import DeviceChoice

    m = _matrix(tmp_path, "{n_ctx: 1024, n_threads: 2}",
                "[{name: tg, kind: llama_bench, test: tg128}, {name: pp, kind: llama_bench, test: pp512},"
                " {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}]")
    profile = get_profile("linux-generic")
    device = DeviceChoice(profile=profile, host_profile=profile, emulated=False, detected=None,
                          detection={})
    got = {c.workload.name: settings_for(c, device)[0].n_ctx for c in m.cells("linux-generic")}
    assert got == {"tg": 128, "pp": 512, "chat": 1024}
