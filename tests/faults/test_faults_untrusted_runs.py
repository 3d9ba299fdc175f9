"""Run folders from other machines are untrusted input (issue 16, points 1, 3, 8).

What a run folder names stays inside it; a forged or corrupt folder is one clear line (exit 2) or,
for one cell's file, a warning while the rest of the report renders; a resumed cell's power trace
shows only the attempt that counts.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report import Constraints, load_results, render_all
from harness.report import tables as tables_mod
from harness.runfiles import RunFileError, check_cell_id, read_in_run
from harness.store import RunWriter, load_run, read_outputs
from tests.conftest import run_cli
from tests.report.report_runs import write_run

pytestmark = pytest.mark.faults

SECRET = "SECRET-OUTSIDE-THE-RUN-FOLDER"


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def _write_records(run: Path, recs: list[dict]) -> None:
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _point_samples_file(run: Path, value: str) -> None:
    """The closed-book cell's repetition names `value` as its samples file."""
    recs = _records(run)
    for r in recs:
        if r.get("samples_file"):
            r["samples_file"] = value
    _write_records(run, recs)


def _report(tmp_path: Path, run: Path) -> tuple[str, list[str]]:
    table = load_results([run])
    out = tmp_path / "report.html"
    files = render_all(table, out, Constraints())
    return files[out], table.warnings


def _secret_file(tmp_path: Path) -> Path:
    f = tmp_path / "outside.jsonl"
    f.write_text(json.dumps({"id": "s", "question": SECRET, "output": SECRET,
                             "label": "hallucinated", "references": [SECRET]}) + "\n")
    return f


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_samples_file_outside_the_run_folder_is_refused_and_the_report_still_renders(tmp_path, how):
    run = write_run(tmp_path / "runs", "r1")
    secret = _secret_file(tmp_path)
    if how == "dotdot":
        _point_samples_file(run, "../../outside.jsonl")
    elif how == "absolute":
        _point_samples_file(run, str(secret))
    else:
        (run / "samples" / "link.jsonl").symlink_to(secret)
        _point_samples_file(run, "samples/link.jsonl")
    page, warnings = _report(tmp_path, run)
    assert SECRET not in page
    assert any("samples_file" in w and "outside the run folder" in w for w in warnings), warnings
    assert "gemma" in page or "tiny" in page  # the rest of the report is there


def test_a_fifo_or_dev_zero_as_samples_file_never_hangs_or_fills_memory(tmp_path):
    run = write_run(tmp_path / "runs", "r1")
    sample = next((run / "samples").glob("*.jsonl"))
    sample.unlink()
    os.mkfifo(sample)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=_report(tmp_path, run)), daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the report hung on a FIFO"
    assert any("not a regular file" in w for w in result["r"][1]), result["r"][1]
    _point_samples_file(run, "/dev/zero")
    _, warnings = _report(tmp_path / "b", run)
    assert any("/dev/zero" in w and "outside the run folder" in w for w in warnings), warnings


def test_a_cell_file_above_its_size_cap_is_refused_by_name(tmp_path, monkeypatch):
    run = write_run(tmp_path / "runs", "r1")
    monkeypatch.setattr(tables_mod, "CELL_FILE_MAX_BYTES", 100)
    _, warnings = _report(tmp_path, run)
    assert any("above the 100-byte limit" in w for w in warnings), warnings


def test_read_in_run_rules(tmp_path):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "sub" / "f").write_bytes(b"ok")
    assert read_in_run(run, "sub/f", 10, "t") == b"ok"
    assert read_in_run(run, "sub/missing", 10, "t") is None
    for bad in ("/etc/passwd", "../x", "sub/../../x", "", "a\\b"):
        with pytest.raises(RunFileError):
            read_in_run(run, bad, 10, "t")
    with pytest.raises(RunFileError, match="not a regular file"):
        read_in_run(run, "sub", 10, "t")
    for bad_id in ("../../elsewhere/x", "ABCDEF012345", "abc", None, 12):
        with pytest.raises(RunFileError, match="not a cell id"):
            check_cell_id(bad_id, "t")


def test_a_forged_cell_id_is_refused_before_any_file_is_built_from_it(tmp_path):
    run = write_run(tmp_path / "runs", "r1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text("repetition,t_s,power_w\n0,0.0,99.0\n")
    recs = _records(run)
    recs[0]["cell_id"] = "../../elsewhere/x"
    _write_records(run, recs)
    r = run_cli("report", str(run), "-o", str(tmp_path / "r.html"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "../../elsewhere/x" in r.stderr
    assert "not a cell id" in str(pytest.raises(RunFileError, read_outputs, run, "../../x").value)


def _traced_run(tmp_path: Path, header_with_attempt: bool) -> Path:
    run = write_run(tmp_path / "runs", "r1")
    recs = _records(run)
    gen = next(r for r in recs if r["record_type"] == "cell_summary" and
               r.get("workload") == "gen")
    trace = run / "traces" / f"{gen['cell_id']}.csv"
    trace.unlink()
    w = RunWriter(run)
    if header_with_attempt:  # a resumed cell: attempt a0 was killed, a1 (the summary's) finished
        w.append_trace(gen["cell_id"], [("load", 0.0, 50.0), (0, 5.0, 50.0)], attempt="a0")
        w.append_trace(gen["cell_id"], [("load", 0.0, 5.0), (0, 0.1, 5.0)], attempt=gen["attempt"])
    else:  # written before the attempt column
        trace.write_text("repetition,t_s,power_w\nload,0.0,5.0\n0,0.1,5.0\n")
    return run


def test_a_resumed_cell_trace_shows_only_the_attempt_load_run_keeps(tmp_path):
    run = _traced_run(tmp_path, header_with_attempt=True)
    text = next((run / "traces").glob("*.csv")).read_text()
    assert text.startswith("attempt,repetition,t_s,power_w\n") and "a0,load" in text
    table = load_results([run])
    (trace,) = table.traces.values()
    powers = [p for seg in trace.segments for p in seg["power_w"]]
    assert powers and set(powers) == {5.0}  # none of attempt a0's 50 W rows
    assert trace.n_raw == 2


def test_a_trace_without_the_attempt_column_still_reads(tmp_path):
    run = _traced_run(tmp_path, header_with_attempt=False)
    (trace,) = load_results([run]).traces.values()
    assert trace.n_raw == 2


def test_appending_to_an_old_trace_keeps_its_layout(tmp_path):
    run = _traced_run(tmp_path, header_with_attempt=False)
    trace = next((run / "traces").glob("*.csv"))
    RunWriter(run).append_trace(trace.stem, [(1, 0.2, 6.0)], attempt="a9")
    assert trace.read_text().splitlines()[-1] == "1,0.200000,6.000000"


def _corrupt(run: Path, how: str) -> None:
    manifest = run / "manifest.json"
    if how in ("[]", "null", '"text"'):
        manifest.write_text(how)
    elif how == "host-is-a-string":
        m = json.loads(manifest.read_text())
        m["host"] = "box-1"
        manifest.write_text(json.dumps(m))
    elif how == "run_id-is-a-number":
        m = json.loads(manifest.read_text())
        m["run_id"] = 5
        manifest.write_text(json.dumps(m))
    elif how == "record-without-cell_id":
        recs = _records(run)
        del recs[-1]["cell_id"]
        _write_records(run, recs)
    elif how == "metrics-wrong-type":
        recs = _records(run)
        next(r for r in recs if r["record_type"] == "cell_summary")["metrics"] = {"x": 5}
        _write_records(run, recs)
    elif how == "metric-is-a-string":
        recs = _records(run)
        next(r for r in recs if r["record_type"] == "repetition")["decode_tokens_per_s"] = "fast"
        _write_records(run, recs)
    elif how == "records-is-a-folder":
        (run / "records.jsonl").unlink()
        (run / "records.jsonl").mkdir()


CORRUPTIONS = {"[]": "manifest is a JSON object", "null": "manifest is a JSON object",
               '"text"': "manifest is a JSON object", "host-is-a-string": "'host' must be",
               "run_id-is-a-number": "'run_id' must be", "record-without-cell_id": "cell_id",
               "metrics-wrong-type": "metrics['x']", "metric-is-a-string": "decode_tokens_per_s",
               "records-is-a-folder": "not a regular file"}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_run_folder_is_one_line_exit_2(tmp_path, how):
    run = write_run(tmp_path / "runs", "r1")
    _corrupt(run, how)
    with pytest.raises(HarnessError, match=CORRUPTIONS[how].replace("[", r"\[")):
        load_run(run)
    for cmd in (("report", str(run), "-o", str(tmp_path / "r.html")), ("check", str(run))):
        r = run_cli(*cmd)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
