"""Content-addressed cache of built compression artifacts (GGUF files or ONNX folders).

Layout: `<cache_dir>/levels/<key>/` holds the artifact (a file or a folder) and `meta.json`.
Each entry is built in a `.partial-<key>-<pid>-<token>` folder next to it and becomes visible
only by one atomic rename of that whole folder, after its files are fsync'd. So a lookup never
sees a half-written file: a killed build leaves only a `.partial-*` folder, which lookups ignore
and the next build of any level removes once its process is gone.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..models import cache_dir
from ..processes import pid_alive

META_FILE = "meta.json"
_PARTIAL = ".partial-"


@dataclass(frozen=True)
class Entry:
    """A committed cache entry: the artifact path and the metadata stored with it."""

    path: Path
    meta: dict[str, Any]


def default_cache_dir() -> Path:
    """The model cache (harness.models.cache_dir: HARNESS_CACHE_DIR or ~/.cache/edgebench)."""
    return Path(cache_dir())


def cache_key(source_sha256: str, recipe: dict[str, Any], tool_version: str) -> str:
    """Key of one artifact: what it is built from, how, and with which tool version."""
    canonical = json.dumps({"source_sha256": source_sha256, "recipe": recipe,
                            "tool_version": tool_version}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _levels_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "levels"


def lookup(cache_dir: Path, key: str) -> Entry | None:
    """The committed entry for `key`, or None (partial builds are never returned)."""
    entry_dir = _levels_dir(cache_dir) / key
    try:
        meta = json.loads((entry_dir / META_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    path = entry_dir / meta.get("artifact", "")
    if not meta.get("artifact") or not path.exists():
        return None
    return Entry(path=path, meta=meta)


def begin(cache_dir: Path, key: str) -> Path:
    """A fresh private folder to build `key` in; stale folders of dead builds are removed first."""
    levels = _levels_dir(cache_dir)
    levels.mkdir(parents=True, exist_ok=True)
    sweep_partials(cache_dir)
    work = levels / f"{_PARTIAL}{key}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    return work


def commit(work: Path, cache_dir: Path, key: str, artifact: str, meta: dict[str, Any]) -> Entry:
    """Make `work/<artifact>` the entry for `key` in one rename; a concurrent winner is kept."""
    if not (work / artifact).exists():
        raise FileNotFoundError(f"{work / artifact}: artifact missing, nothing to commit")
    full_meta = dict(meta, artifact=artifact, key=key)
    (work / META_FILE).write_text(json.dumps(full_meta, indent=1, sort_keys=True))
    _fsync_tree(work)
    final = _levels_dir(cache_dir) / key
    try:
        os.rename(work, final)
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        discard(work)  # another process committed the same key first; theirs is as good
        existing = lookup(cache_dir, key)
        if existing is None:
            raise
        return existing
    _fsync_dir(final.parent)
    return Entry(path=final / artifact, meta=full_meta)


def discard(work: Path) -> None:
    """Remove a build folder (after a failure or when losing a race)."""
    shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def build(cache_dir: Path, key: str) -> Iterator[Path]:
    """`with build(dir, key) as work: ...; commit(work, ...)`; anything left uncommitted is removed."""
    work = begin(cache_dir, key)
    try:
        yield work
    finally:
        if work.exists():
            discard(work)


def sweep_partials(cache_dir: Path) -> list[Path]:
    """Remove `.partial-*` folders whose building process no longer exists; returns them."""
    removed = []
    levels = _levels_dir(cache_dir)
    if not levels.is_dir():
        return removed
    for p in levels.glob(f"{_PARTIAL}*"):
        pid = _partial_pid(p.name)
        if pid is not None and not pid_alive(pid):
            discard(p)
            removed.append(p)
    return removed


def _partial_pid(name: str) -> int | None:
    parts = name[len(_PARTIAL):].split("-")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
