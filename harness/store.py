"""Run directories: append-only JSONL records, manifest, traces, per-sample files, a lock.

Nothing here ever overwrites: a new run gets a new directory; a resumed run appends. Each record is
flushed and fsync'd so a power cut loses at most the line being written, and readers skip a torn
line with a warning instead of failing or, worse, reading half a number.
"""
from __future__ import annotations

import errno
import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import HarnessError
from .records import (CELL_FAILED, CELL_SUMMARY, KNOWN_SCHEMA_VERSIONS, REPETITION,
                      expand_repetition)

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
OUTPUTS_DIR = "outputs"  # per-repetition generation outputs, one JSONL file per cell (schema 2)


class DiskFullError(HarnessError):
    """The disk filled while writing; records written before are intact."""


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(rec: dict[str, Any]) -> str:
    """One line of JSON; NaN/inf become null so every reader can parse it."""
    return json.dumps(_finite(rec), default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _write_durably(path: Path, text: str, mode: str = "a") -> None:
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"disk full while writing {path}: the run stopped here; records written before "
                f"are intact. Free space, then continue with --resume {path.parent}") from None
        raise


def _ends_with_newline(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class JsonlAppender:
    """Append-only JSONL writer; repairs a torn tail so the next record starts on its own line."""

    def __init__(self, path: Path):
        self.path = path
        if not _ends_with_newline(path):
            _write_durably(path, "\n")

    def append(self, rec: dict[str, Any]) -> None:
        _write_durably(self.path, dumps(rec) + "\n")


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Read every complete JSON line; unparsable lines (a torn write) are skipped with a warning."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    if not path.exists():
        return rows, warnings
    with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
        lines = list(f)  # one string per line, not the file's text and its lines at once
    last = len(lines) - (1 if lines and not lines[-1].endswith("\n") else 0)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            where = "last line" if i >= last else f"line {i}"
            warnings.append(f"{path}: {where} is incomplete or corrupt (torn write?); ignored")
            continue
        rows.append(obj)
    return rows, warnings


# --------------------------------------------------------------------------------------------
# Locking


class RunLock:
    """An exclusive lock file in the run directory: two writers never interleave records."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since_utc": _utc_now()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                raise HarnessError(
                    f"{self.path.parent} is being written by another run ({self._holder()}); "
                    "refusing to interleave records. Wait for it, or remove "
                    f"{self.path} if that process is gone.") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            return
        raise HarnessError(f"could not take the lock {self.path}")

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since_utc')}"
        except (OSError, ValueError):
            return "unknown holder"

    def _stale(self) -> bool:
        """A lock left by a dead process on this host (power cut, kill -9) may be taken over."""
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        if info.get("host") != socket.gethostname():
            return False
        pid = int(info.get("pid", -1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------
# Writing a run


class RunWriter:
    """Owns one run directory while a run (or a resume) writes to it."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.records = JsonlAppender(run_dir / RECORDS_FILE)
        (run_dir / "traces").mkdir(exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        (run_dir / OUTPUTS_DIR).mkdir(exist_ok=True)

    @classmethod
    def create(cls, output_dir: Path, run_id: str) -> "RunWriter":
        output_dir.mkdir(parents=True, exist_ok=True)
        run_dir = output_dir / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise HarnessError(f"{run_dir} already exists; runs are never overwritten "
                               f"(use --resume {run_dir} to continue it)") from None
        return cls(run_dir)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self.dir / MANIFEST_FILE
        if path.exists():
            raise HarnessError(f"{path} exists; a manifest is written once")
        tmp = path.with_suffix(".json.tmp")
        _write_durably(tmp, json.dumps(_finite(manifest), indent=2, default=_json_default), "w")
        os.replace(tmp, path)

    def append(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)

    def append_trace(self, cell_id: str, rows: Iterable[tuple[Any, float, float]]) -> Path:
        """Raw power samples: (repetition label, t_s since window start, power_w)."""
        path = self.dir / "traces" / f"{cell_id}.csv"
        new = not path.exists()
        lines = []
        if new:
            lines.append("repetition,t_s,power_w\n")
        for label, t_s, p_w in rows:
            lines.append(f"{label},{t_s:.6f},{'' if p_w is None else f'{p_w:.6f}'}\n")
        _write_durably(path, "".join(lines))
        return path

    def append_samples(self, cell_id: str, rows: Iterable[dict[str, Any]]) -> Path:
        path = self.dir / "samples" / f"{cell_id}.jsonl"
        _write_durably(path, "".join(dumps(r) + "\n" for r in rows))
        return path

    def append_outputs(self, cell_id: str, rows: Iterable[dict[str, Any]]) -> Path:
        """Generation outputs (attempt, repetition, text, stop reason, token ids) of a cell."""
        path = self.dir / OUTPUTS_DIR / f"{cell_id}.jsonl"
        path.parent.mkdir(exist_ok=True)  # a run written before schema 2, resumed
        _write_durably(path, "".join(dumps(r) + "\n" for r in rows))
        return path


# --------------------------------------------------------------------------------------------
# Reading a run


@dataclass
class Run:
    """One run directory as read back: the manifest and the records that count."""

    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]  # final records only (see load_run)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, record_type: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("record_type") == record_type]

    @property
    def summaries(self) -> list[dict[str, Any]]:
        return self.of_type(CELL_SUMMARY)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return self.of_type(CELL_FAILED)

    @property
    def repetitions(self) -> list[dict[str, Any]]:
        return self.of_type(REPETITION)

    def finished_cell_ids(self) -> set[str]:
        return {r["cell_id"] for r in self.summaries}


def load_run(run_dir: Path | str, expand: bool = True) -> Run:
    """Read a run directory.

    A cell may have been attempted more than once (resume after a crash). For each cell the last
    final record (summary or failure) wins, and only repetitions of that same attempt are kept;
    repetitions of an attempt that never finished are dropped with a warning.

    Schema 2 writes a cell's dimensions and constants once, on its final record; with `expand`
    (the default) each repetition dict gets them back (shared values, not copies), so readers
    see repetitions as schema 1 wrote them. `expand=False` gives the lean records as stored.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: not a run directory")
    manifest_path = run_dir / MANIFEST_FILE
    if not manifest_path.exists():
        raise HarnessError(f"{run_dir}: no {MANIFEST_FILE}; not a run directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise HarnessError(f"{manifest_path}: corrupt ({e})") from None
    _check_version(manifest, manifest_path)
    records_path = run_dir / RECORDS_FILE
    rows, warnings = read_jsonl(records_path)
    for r in rows:
        _check_version(r, records_path)
    return Run(run_dir, manifest, _final_records(rows, warnings, expand), warnings)


def read_outputs(run_dir: Path | str, cell_id: str, attempt: str | None = None) -> list[dict[str, Any]]:
    """A cell's per-repetition generation outputs (schema 2), of one attempt if given.

    Schema 1 kept them on the repetition records instead; an absent file gives [].
    """
    rows, _ = read_jsonl(Path(run_dir) / OUTPUTS_DIR / f"{cell_id}.jsonl")
    return [r for r in rows if attempt is None or r.get("attempt") == attempt]


def _check_version(obj: dict[str, Any], where: Path) -> None:
    v = obj.get("schema_version")
    if v not in KNOWN_SCHEMA_VERSIONS:
        raise HarnessError(f"{where}: schema_version {v!r} is not one this harness reads "
                           f"({sorted(KNOWN_SCHEMA_VERSIONS)}); upgrade edgebench")


def _final_records(rows: list[dict[str, Any]], warnings: list[str],
                   expand: bool = True) -> list[dict[str, Any]]:
    final: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("record_type") in (CELL_SUMMARY, CELL_FAILED):
            final[r["cell_id"]] = r
    out = list(final.values())
    orphans = 0
    for r in rows:
        if r.get("record_type") != REPETITION:
            continue
        f = final.get(r["cell_id"])
        if f is not None and f.get("attempt") == r.get("attempt"):
            out.append(expand_repetition(r, f) if expand else r)
        else:
            orphans += 1
    if orphans:
        warnings.append(f"{orphans} repetition record(s) from unfinished or superseded attempts ignored")
    return out


def iter_run_dirs(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand arguments that are run dirs, parents of run dirs, or globs."""
    import glob

    for p in paths:
        hits = sorted(glob.glob(str(p))) or [str(p)]
        for h in hits:
            hp = Path(h)
            if (hp / MANIFEST_FILE).exists():
                yield hp
            elif hp.is_dir():
                subs = sorted(d for d in hp.iterdir() if (d / MANIFEST_FILE).exists())
                if not subs:
                    raise HarnessError(f"{hp}: no run directories found (no {MANIFEST_FILE})")
                yield from subs
            else:
                raise HarnessError(f"{hp}: no such run directory")
