"""Pulls are incremental and idempotent: a record is never lost or duplicated, whenever a pull
runs, stops half-way, or the device rewrites a file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.fleet.pull import pull_run
from harness.fleet.transports.local import LocalTransport


def _rec(i: int) -> bytes:
    return (json.dumps({"record_type": "repetition", "cell_id": "c", "attempt": "a", "repetition": i,
                        "pad": "x" * (i % 7)}) + "\n").encode()


def _ids(path: Path) -> list[int]:
    return [json.loads(line)["repetition"] for line in path.read_text().splitlines()]


class FlakyTransport(LocalTransport):
    """Reads fail after `reads_left` calls: a link that drops during a pull."""

    def __init__(self, reads_left: int):
        super().__init__(None)
        self.reads_left = reads_left

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        if self.reads_left <= 0:
            raise OSError("link dropped")
        self.reads_left -= 1
        return super().read_range(path, offset, min(length, 100))  # small reads: many calls


def test_pull_while_the_device_appends_never_loses_or_duplicates(tmp_path):
    remote, local = tmp_path / "device" / "run", tmp_path / "mirror"
    (remote / "traces").mkdir(parents=True)
    (remote / "manifest.json").write_text('{"run_id": "r"}')
    rec = remote / "records.jsonl"
    t = LocalTransport(None)
    with open(rec, "ab") as f:
        for i in range(50):
            f.write(_rec(i))
            if i % 9 == 0:
                f.write(_rec(1000 + i)[:11])  # a record half-written when the pull comes
                f.flush()
                pull_run(t, str(remote), local)
                f.seek(0, 2)
                f.truncate(f.tell() - 11)  # (the writer completes it below, as the same bytes)
                f.write(b"")
            f.flush()
            pull_run(t, str(remote), local)
    assert _ids(local / "records.jsonl") == list(range(50))
    assert (local / "records.jsonl").read_bytes() == rec.read_bytes()
    again = pull_run(t, str(remote), local)
    assert again.bytes == 0  # nothing new: nothing fetched
    assert json.loads((local / "manifest.json").read_text()) == {"run_id": "r"}


def test_a_torn_line_is_pulled_only_once_complete(tmp_path):
    remote, local = tmp_path / "run", tmp_path / "mirror"
    remote.mkdir()
    rec = remote / "records.jsonl"
    line = _rec(1)
    rec.write_bytes(_rec(0) + line[:10])
    pull_run(LocalTransport(None), str(remote), local)
    assert _ids(local / "records.jsonl") == [0]
    rec.write_bytes(_rec(0) + line)
    pull_run(LocalTransport(None), str(remote), local)
    assert _ids(local / "records.jsonl") == [0, 1]


def test_a_pull_cut_off_half_way_resumes_without_duplicates(tmp_path):
    remote, local = tmp_path / "run", tmp_path / "mirror"
    remote.mkdir()
    (remote / "records.jsonl").write_bytes(b"".join(_rec(i) for i in range(200)))
    for reads in (3, 5, 8):
        with pytest.raises(OSError):
            pull_run(FlakyTransport(reads), str(remote), local)
        ids = _ids(local / "records.jsonl")
        assert ids == list(range(len(ids)))  # a prefix of whole records
    pull_run(LocalTransport(None), str(remote), local)
    assert _ids(local / "records.jsonl") == list(range(200))


def test_a_file_rewritten_on_the_device_is_pulled_whole_again(tmp_path):
    remote, local = tmp_path / "run", tmp_path / "mirror"
    remote.mkdir()
    rec = remote / "records.jsonl"
    rec.write_bytes(_rec(0) + _rec(1) + _rec(2))
    pull_run(LocalTransport(None), str(remote), local)
    rec.write_bytes(_rec(0) + _rec(5) + _rec(6) + _rec(7))  # same size or more, different bytes
    result = pull_run(LocalTransport(None), str(remote), local)
    assert result.rewritten == 1 and _ids(local / "records.jsonl") == [0, 5, 6, 7]
    rec.write_bytes(_rec(0))  # truncated
    pull_run(LocalTransport(None), str(remote), local)
    assert _ids(local / "records.jsonl") == [0]


def test_locks_and_process_marks_are_not_pulled(tmp_path):
    remote, local = tmp_path / "run", tmp_path / "mirror"
    (remote / ".running").mkdir(parents=True)
    (remote / ".lock").write_text("{}")
    (remote / ".running" / "c.pid").write_text("1")
    (remote / "records.jsonl").write_bytes(_rec(0))
    pull_run(LocalTransport(None), str(remote), local)
    assert sorted(p.name for p in local.rglob("*")) == ["records.jsonl"]
