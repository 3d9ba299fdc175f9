import json
import os
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.records import CELL_FAILED, CELL_SUMMARY, REPETITION, CellKey, make_record
from harness.store import JsonlAppender, RunLock, RunWriter, load_run, read_jsonl

KEY = CellKey("m", "Q4_K_M", "llama_cpp", "linux-generic", None, "chat")


def _write_run(tmp_path: Path) -> RunWriter:
    w = RunWriter.create(tmp_path, "run1")
    w.write_manifest({"schema_version": 1, "run_id": "run1"})
    return w


def test_run_directory_is_never_overwritten(tmp_path):
    _write_run(tmp_path)
    with pytest.raises(HarnessError, match="never overwritten"):
        RunWriter.create(tmp_path, "run1")


def test_manifest_written_once(tmp_path):
    w = _write_run(tmp_path)
    with pytest.raises(HarnessError):
        w.write_manifest({"schema_version": 1})


def test_torn_last_line_is_skipped_with_warning_and_repaired_on_append(tmp_path):
    w = _write_run(tmp_path)
    w.append(make_record(REPETITION, "run1", KEY, attempt="a", repetition=0, ttft_s=0.1))
    with open(w.dir / "records.jsonl", "a") as f:
        f.write('{"schema_version": 1, "record_type": "repet')  # power cut mid-write
    rows, warnings = read_jsonl(w.dir / "records.jsonl")
    assert len(rows) == 1 and "last line" in warnings[0]
    # a resumed writer starts on a fresh line, so the next record is intact
    JsonlAppender(w.dir / "records.jsonl").append(
        make_record(CELL_SUMMARY, "run1", KEY, attempt="a", status="ok", metrics={}))
    rows, warnings = read_jsonl(w.dir / "records.jsonl")
    assert [r["record_type"] for r in rows] == [REPETITION, CELL_SUMMARY]
    assert len(warnings) == 1


def test_load_run_keeps_only_the_final_attempt(tmp_path):
    w = _write_run(tmp_path)
    w.append(make_record(REPETITION, "run1", KEY, attempt="a", repetition=0))
    w.append(make_record(CELL_FAILED, "run1", KEY, attempt="a", status="failed", reason="crash"))
    w.append(make_record(REPETITION, "run1", KEY, attempt="b", repetition=0))
    w.append(make_record(REPETITION, "run1", KEY, attempt="b", repetition=1))
    w.append(make_record(CELL_SUMMARY, "run1", KEY, attempt="b", status="ok", metrics={}))
    run = load_run(w.dir)
    assert [r["attempt"] for r in run.repetitions] == ["b", "b"]
    assert run.failures == [] and len(run.summaries) == 1
    assert run.finished_cell_ids() == {KEY.cell_id}
    assert "ignored" in run.warnings[0]


def test_unknown_schema_version_is_refused(tmp_path):
    w = _write_run(tmp_path)
    rec = make_record(REPETITION, "run1", KEY, attempt="a")
    rec["schema_version"] = 99
    w.append(rec)
    with pytest.raises(HarnessError, match="schema_version 99"):
        load_run(w.dir)


def test_nan_becomes_null(tmp_path):
    w = _write_run(tmp_path)
    w.append(make_record(REPETITION, "run1", KEY, attempt="a", decode_tokens_per_s=float("nan")))
    line = (w.dir / "records.jsonl").read_text().strip()
    assert json.loads(line)["decode_tokens_per_s"] is None


def test_second_writer_is_refused_by_the_lock(tmp_path):
    w = _write_run(tmp_path)
    with RunLock(w.dir):
        with pytest.raises(HarnessError, match="another run"):
            RunLock(w.dir).acquire()
    RunLock(w.dir).acquire()  # released: free again


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    w = _write_run(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (w.dir / ".lock").write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    lock = RunLock(w.dir)
    lock.acquire()
    assert json.loads((w.dir / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_disk_full_raises_a_clear_error_and_keeps_earlier_records(tmp_path, monkeypatch):
    import errno

    import harness.store as store

    w = _write_run(tmp_path)
    w.append(make_record(REPETITION, "run1", KEY, attempt="a", repetition=0))
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(store.DiskFullError, match="disk full.*--resume"):
        w.append(make_record(REPETITION, "run1", KEY, attempt="a", repetition=1))
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    rows, _ = read_jsonl(w.dir / "records.jsonl")
    assert rows[0]["repetition"] == 0


def test_cell_id_is_stable_and_distinguishes_dimensions():
    a = CellKey("m", "Q4_K_M", "llama_cpp", "pi5", None, "chat")
    assert a.cell_id == CellKey("m", "Q4_K_M", "llama_cpp", "pi5", None, "chat").cell_id
    assert a.cell_id != CellKey("m", "Q8_0", "llama_cpp", "pi5", None, "chat").cell_id
    assert a.cell_id != CellKey("m", "Q4_K_M", "llama_cpp", "pi5", "MAXN", "chat").cell_id


def test_fast_parse_reads_the_same_records_with_or_without_orjson(monkeypatch):
    """orjson (the [report] extra) refuses NaN, which records may hold: such lines fall back to
    json.loads; a torn line is a warning either way."""
    import harness.store as store

    data = (b'{"a": 1, "b": 0.1, "c": [1, 2], "d": null}\n{"x": NaN, "y": Infinity}\n'
            b' {"s": "\\u00e9"} \n{"torn": ')
    with_fast = store.parse_jsonl(data, "r.jsonl")
    monkeypatch.setattr(store, "_orjson", None)
    without = store.parse_jsonl(data, "r.jsonl")
    assert repr(with_fast) == repr(without)
    rows, warnings = without
    assert rows[0] == {"a": 1, "b": 0.1, "c": [1, 2], "d": None} and rows[2] == {"s": "é"}
    assert str(rows[1]["x"]) == "nan" and rows[1]["y"] == float("inf")
    assert len(warnings) == 1 and "last line" in warnings[0]
