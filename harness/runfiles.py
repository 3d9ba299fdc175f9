"""Reading the files a run folder names, confined to that folder.

Run folders are copied from devices and shared between labs: whatever a record names (a
`samples_file`, a `cell_id` that becomes a file name) is untrusted. Every reader of a run folder
opens its files through `read_in_run`, which refuses absolute paths, `..`, symlinks that leave the
folder and anything that is not a regular file (a FIFO would hang the report, /dev/zero would fill
memory), and caps how much it reads. One place, so no reader can forget a rule.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

from .errors import HarnessError

CELL_ID_RE = re.compile(r"[0-9a-f]{12}")  # what CellKey.cell_id produces: 12 hex digits

MANIFEST_MAX_BYTES = 16 * 2**20
RECORDS_MAX_BYTES = 1 * 2**30
CELL_FILE_MAX_BYTES = 256 * 2**20  # traces/, samples/, outputs/ of one cell


class RunFileError(HarnessError):
    """A run folder names a file it may not (outside the folder, not a regular file, too big)."""


def is_cell_id(value: object) -> bool:
    return isinstance(value, str) and CELL_ID_RE.fullmatch(value) is not None


def check_cell_id(value: object, where: str) -> str:
    """A cell id as CellKey.cell_id writes it, or an error naming where the bad one came from."""
    if not is_cell_id(value):
        raise RunFileError(f"{where}: cell_id {str(value)[:80]!r} is not a cell id "
                           "(12 lowercase hex digits)")
    return str(value)


def cell_file(folder: str, cell_id: object, suffix: str, where: str) -> str:
    """`<folder>/<cell_id><suffix>`, the relative name of a per-cell file, with the id checked."""
    return f"{folder}/{check_cell_id(cell_id, where)}{suffix}"


def resolve_in_run(run_dir: Path, rel: object, where: str) -> Path:
    """The path `rel` names inside `run_dir`, refused when it could point anywhere else."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise RunFileError(f"{where}: file name {str(rel)[:120]!r} is not a relative path "
                           "inside the run folder")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise RunFileError(f"{where}: {rel[:120]!r} points outside the run folder "
                           "(absolute paths and '..' are refused)")
    root = Path(run_dir).resolve()
    path = (root / pure).resolve()
    if path != root and root not in path.parents:
        raise RunFileError(f"{where}: {rel[:120]!r} leads outside the run folder "
                           "(a symlink?); refused")
    return path


def read_in_run(run_dir: Path, rel: str, max_bytes: int, where: str) -> bytes | None:
    """The bytes of `rel` inside `run_dir`, or None when it does not exist.

    Refused (RunFileError naming `where`): a path outside the folder, a file that is not a
    regular file, a file larger than `max_bytes`.
    """
    path = resolve_in_run(run_dir, rel, where)
    try:
        # O_NONBLOCK: opening a FIFO without a writer must not hang; the type check refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunFileError(f"{where}: cannot read {rel}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunFileError(f"{where}: {rel} is not a regular file; refused")
        if st.st_size > max_bytes:
            raise RunFileError(f"{where}: {rel} is {st.st_size:,} bytes, above the "
                               f"{max_bytes:,}-byte limit for this file; refused")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew while being read
                raise RunFileError(f"{where}: {rel} is above the {max_bytes:,}-byte limit; "
                                   "refused")
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text_in_run(run_dir: Path, rel: str, max_bytes: int, where: str) -> str | None:
    data = read_in_run(run_dir, rel, max_bytes, where)
    return None if data is None else data.decode("utf-8", errors="replace")
