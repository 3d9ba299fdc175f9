"""Pulling a device's run folder to the controller: incremental, idempotent, safe to repeat.

The device's run folder is the source of truth; the controller's copy is a byte mirror of it.
Append-only files (records.jsonl, traces/*.csv, samples/*.jsonl, outputs/*.jsonl) are pulled
from the local copy's size onwards, and only up to the last complete line, so:
- a record is never duplicated: bytes before the local size are never fetched again, and a pull
  that stopped half-way left only whole lines behind (each chunk is appended and fsync'd whole);
- a record is never lost: the next pull starts where the local copy ends, whenever it comes;
- a record half-written on the device is not pulled until its line is complete;
- a file the device rewrote or truncated (harness.store undoes a failed write) is detected by
  comparing the bytes just before the local size with the device's, and pulled whole again.
Other files (manifest.json, matrix.yaml) are written once by a run and pulled whole when their
size differs. Lock and process marks (.lock, .running/) are never pulled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APPEND_SUFFIXES = (".jsonl", ".csv")
SKIP_PREFIXES = (".lock", ".running")
CHUNK_BYTES = 8 * 2**20
CHECK_BYTES = 64  # bytes before the local end compared with the device's: a rewritten file shows


@dataclass
class PullResult:
    files: int = 0
    bytes: int = 0
    rewritten: int = 0  # files the device rewrote or truncated, pulled whole again


def pull_run(transport: Any, remote_dir: str, local_dir: Path) -> PullResult:
    """Bring `local_dir` up to date with the device's `remote_dir`; call as often as wanted."""
    result = PullResult()
    local_dir.mkdir(parents=True, exist_ok=True)
    for rel, size in sorted(transport.list_files(remote_dir).items()):
        if rel.startswith(SKIP_PREFIXES) or "/." in rel or ".tmp" in rel:
            continue
        remote, local = f"{remote_dir}/{rel}", local_dir / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(APPEND_SUFFIXES):
            got = _pull_append(transport, remote, local, size, result)
        else:
            got = _pull_whole(transport, remote, local, size)
        result.bytes += got
        result.files += 1 if got else 0
    return result


def _pull_append(transport: Any, remote: str, local: Path, size: int, result: PullResult) -> int:
    have = local.stat().st_size if local.exists() else 0
    if have and (size < have or not _same_tail(transport, remote, local, have)):
        result.rewritten += 1
        local.unlink()
        have = 0
    got = 0
    while have < size:
        data = transport.read_range(remote, have, min(CHUNK_BYTES, size - have))
        if not data:
            break
        whole = data[:data.rfind(b"\n") + 1]  # complete lines only
        if not whole:
            if len(data) < CHUNK_BYTES:
                break  # the last line is still being written: next pull
            whole = data  # a line longer than a chunk: its bytes are final once followed
        _append(local, whole)
        have += len(whole)
        got += len(whole)
    return got


def _same_tail(transport: Any, remote: str, local: Path, have: int) -> bool:
    start = max(0, have - CHECK_BYTES)
    with open(local, "rb") as f:
        f.seek(start)
        mine = f.read()
    return transport.read_range(remote, start, have - start) == mine


def _append(local: Path, data: bytes) -> None:
    with open(local, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _pull_whole(transport: Any, remote: str, local: Path, size: int) -> int:
    if local.exists() and local.stat().st_size == size:
        return 0
    data = b"".join(_chunks(transport, remote, size))
    tmp = local.with_name(local.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, local)
    return len(data)


def _chunks(transport: Any, remote: str, size: int) -> Any:
    offset = 0
    while offset < size:
        data = transport.read_range(remote, offset, min(CHUNK_BYTES, size - offset))
        if not data:
            return
        offset += len(data)
        yield data
