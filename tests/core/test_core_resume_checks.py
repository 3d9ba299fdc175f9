"""`run --resume`: the stored matrix is kept (a different one is refused with the differences),
the dry run lists only the cells left, a finished run says so. Run folders are written by hand
(manifest + summary records), so nothing is measured here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import devices
from harness.errors import HarnessError
from harness.matrix import load_matrix
from harness.records import CELL_SUMMARY, SCHEMA_VERSION, make_record
from harness.run import RunOptions, run_matrix
from harness.run.flow import matrix_differences
from harness.schema import load_yaml
from tests.conftest import tiny_matrix

WORKLOADS = """
  - {name: a, kind: generation, prompt: chat_short, max_tokens: 4}
  - {name: b, kind: generation, prompt: story_long, max_tokens: 4}
"""


def _run_folder(tmp_path: Path, matrix_path: Path, finished: set[str], emulated: str | None = None) -> Path:
    """A run folder of `matrix_path` in which the cells of the workloads `finished` are done."""
    profile = emulated or devices.detect().profile
    matrix = load_matrix(matrix_path, set(devices.load_profiles()))
    run_dir = tmp_path / "results" / "run-1"
    run_dir.mkdir(parents=True)
    manifest = {"schema_version": SCHEMA_VERSION, "run_id": "run-1", "created_utc": "2026-11-30T00:00:00Z",
                "matrix_path": str(matrix_path), "matrix": load_yaml(matrix_path),
                "device": {"profile": profile, "emulated": bool(emulated), "detected_profile": profile}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    lines = [json.dumps(make_record(CELL_SUMMARY, "run-1", c.key, status="ok"))
             for c in matrix.cells(device_for_auto=profile) if c.workload.name in finished]
    (run_dir / "records.jsonl").write_text("".join(line + "\n" for line in lines))
    return run_dir


def test_resume_with_a_different_matrix_is_refused_with_the_difference(tmp_path):
    m = tiny_matrix(tmp_path, workloads=WORKLOADS)
    run_dir = _run_folder(tmp_path, m, {"a"})
    other = tmp_path / "other.yaml"
    other.write_text(m.read_text().replace("story_long, max_tokens: 4", "story_long, max_tokens: 8"))
    with pytest.raises(HarnessError) as e:
        run_matrix(RunOptions(matrix=str(other), resume=str(run_dir), dry_run=True))
    text = str(e.value)
    assert "workloads[1].max_tokens: run has 4, given 8" in text
    assert f"--resume {run_dir}" in text  # how to resume with the run's own matrix


def test_resume_with_the_same_matrix_named_is_accepted(tmp_path, capsys):
    m = tiny_matrix(tmp_path, workloads=WORKLOADS)
    run_dir = _run_folder(tmp_path, m, {"a"})
    assert run_matrix(RunOptions(matrix=str(m), resume=str(run_dir), dry_run=True)) == 0
    assert "1 cells left" in capsys.readouterr().out


def test_resume_dry_run_lists_only_the_cells_left(tmp_path, capsys):
    m = tiny_matrix(tmp_path, workloads=WORKLOADS)
    run_dir = _run_folder(tmp_path, m, {"a"})
    assert run_matrix(RunOptions(resume=str(run_dir), dry_run=True)) == 0
    out = capsys.readouterr().out
    assert f"run {run_dir}: 1 of 2 cells finished, 1 cells left" in out
    listed = [ln for ln in out.splitlines() if ln.strip().startswith("1.") or ln.strip().startswith("2.")]
    assert len(listed) == 1 and listed[0].rstrip().split(" / ")[1].startswith("b "), listed


@pytest.mark.parametrize("dry_run", [False, True])
def test_resuming_a_finished_run_says_so(tmp_path, capsys, dry_run):
    m = tiny_matrix(tmp_path, workloads=WORKLOADS)
    run_dir = _run_folder(tmp_path, m, {"a", "b"})
    before = sorted(p.name for p in run_dir.iterdir())
    assert run_matrix(RunOptions(resume=str(run_dir), dry_run=dry_run)) == 0
    out = capsys.readouterr().out
    assert f"run {run_dir} is complete: all 2 cells finished" in out
    assert "cell " not in out.splitlines()[0][:5]  # no (empty) results table
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written, no lock left


def test_resume_under_another_device_is_refused(tmp_path):
    m = tiny_matrix(tmp_path, workloads=WORKLOADS)
    run_dir = _run_folder(tmp_path, m, {"a"}, emulated="raspberry-pi-4")
    with pytest.raises(HarnessError, match="measured --emulate raspberry-pi-4"):
        run_matrix(RunOptions(resume=str(run_dir), emulate="raspberry-pi-5", dry_run=True))


def test_matrix_differences_name_key_paths():
    stored = {"levels": ["Q4_K_M"], "energy": {"sensor": "auto"}, "workloads": [{"samples": 24}]}
    given = {"levels": ["Q4_K_M", "Q8_0"], "energy": {}, "workloads": [{"samples": 1000}],
             "cooldown": {"max_temp_c": 60}}
    assert matrix_differences(stored, given) == [
        'levels: run has ["Q4_K_M"], given ["Q4_K_M", "Q8_0"]',
        'energy.sensor: only in the run\'s matrix ("auto")',
        "workloads[0].samples: run has 24, given 1000",
        'cooldown: only in the given matrix ({"max_temp_c": 60})']
    assert matrix_differences(stored, json.loads(json.dumps(stored))) == []
