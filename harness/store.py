"""Run directories: append-only JSONL records, manifest, traces, per-sample files, a lock.

Nothing here ever overwrites: a new run gets a new directory; a resumed run appends. Each record is
flushed and fsync'd so a power cut loses at most the line being written, and readers skip a torn
line with a warning instead of failing or, worse, reading half a number.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import json
import math
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import HarnessError, WriteError, write_cause
from .metrics import METRICS, interval_fields
from .records import (CELL_FAILED, CELL_SUMMARY, KNOWN_SCHEMA_VERSIONS, RECORD_TYPES, REPETITION,
                      expand_repetition, fields_of)
from .runfiles import (CELL_FILE_MAX_BYTES, MANIFEST_MAX_BYTES, RECORDS_MAX_BYTES, cell_file,
                       is_cell_id, read_in_run)

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
OUTPUTS_DIR = "outputs"  # per-repetition generation outputs, one JSONL file per cell (schema 2)
TRACE_HEADER = "attempt,repetition,t_s,power_w\n"  # traces/<cell_id>.csv


class DiskFullError(WriteError):
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
    """Write and fsync; on failure undo the partial write (a created file is removed, an appended
    one cut back to its old length: no empty trace without its header, no torn line) and raise
    one line naming the path and the cause, with a resume hint only for a resumable run folder."""
    try:
        before = path.stat().st_size if mode == "a" else None
    except FileNotFoundError:
        before = None
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _undo_write(path, before)
        raise _run_write_error(path, e) from None


def _undo_write(path: Path, size_before: int | None) -> None:
    """Best effort: put a file back as it was before a failed write."""
    try:
        if size_before is None:
            path.unlink(missing_ok=True)
        else:
            os.truncate(path, size_before)
    except OSError:
        pass


def _run_write_error(path: Path, e: OSError) -> WriteError:
    """The write error of a file in a run folder; `--resume` is offered only when the folder has
    its manifest (a folder without one cannot be resumed)."""
    run_dir = next((d for d in (path.parent, path.parent.parent) if (d / MANIFEST_FILE).is_file()), None)
    if run_dir is not None:
        hint = (f"the run stopped here; records written before are intact. Free space or fix the "
                f"folder, then continue with --resume {run_dir}")
    else:
        hint = "nothing of this run can be resumed"
    cls = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT) else WriteError
    return cls(f"cannot write {path}: {write_cause(e)}; {hint}")


def _first_line(path: Path) -> str | None:
    """A file's first line, or None when it does not exist or is empty (no header yet)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(256) or None
    except FileNotFoundError:
        return None


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
    if not path.exists():
        return [], []
    data = read_in_run(path.parent, path.name, RECORDS_MAX_BYTES, str(path))
    return parse_jsonl(b"" if data is None else data, path)


def parse_jsonl(data: bytes, path: Path | str) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects of a JSONL file's bytes; a torn or corrupt line becomes a warning."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    lines = data.decode("utf-8", errors="replace").split("\n")
    torn_tail = bool(lines) and lines[-1] != ""
    last = len(lines) - (0 if torn_tail else 1)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            where = "last line" if i >= last else f"line {i}"
            warnings.append(f"{path}: {where} is incomplete or corrupt (torn write?); ignored")
            continue
        rows.append(obj)
    return rows, warnings


_SCAN_ONCE = json.JSONDecoder().scan_once

try:  # the [report] extra's faster parser (half the time of a 100,000-record report's parse)
    import orjson as _orjson
except ImportError:  # a device without [report]: the standard library, same results
    _orjson = None


def _loads(line: str) -> Any:
    """json.loads of one line, as fast as the installed parsers allow: orjson when present, else
    the C scanner called directly (json.loads adds a decoder call and two whitespace matches per
    line: ~0.3 s over 110,000 records). A line the fast path does not take whole (NaN, which
    orjson refuses; whitespace; an error) goes to json.loads, which parses it or raises as
    before: the records read are the same with or without orjson."""
    if _orjson is not None:
        try:
            return _orjson.loads(line)
        except _orjson.JSONDecodeError:
            return json.loads(line)
    try:
        obj, end = _SCAN_ONCE(line, 0)
    except (StopIteration, ValueError, RecursionError):
        return json.loads(line)
    return obj if end == len(line) else json.loads(line)


# --------------------------------------------------------------------------------------------
# Locking


class RunLock:
    """An exclusive lock file in the run directory: two writers never interleave records.

    The holder keeps an flock on the file for as long as it holds it, and the file appears only
    complete (written and fsync'd under a temp name, flocked, then hard-linked into place), so a
    lock is never seen empty while its holder lives. A lock whose holder is gone (flock free, and
    its pid dead on this host, or the file empty or unreadable) is taken over safely: the taker
    holds the flock on the very inode it removes, so it can never remove a live holder's lock.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(3):
            fd = self._create()
            if fd is not None:
                self._fd = fd
                return
            if not self._take_over_stale():
                raise HarnessError(
                    f"{self.path.parent} is being written by another run ({self._holder()}); "
                    "refusing to interleave records. Wait for it, or remove "
                    f"{self.path} if that process is gone.")
        raise HarnessError(f"could not take the lock {self.path}")

    def _create(self) -> int | None:
        """The locked fd of a new, complete lock file; None when a lock already exists."""
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since_utc": _utc_now()})
        tmp = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.tmp")
        fd = -1
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, me.encode())
            os.fsync(fd)
            try:
                os.link(tmp, self.path)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
                os.close(fd)  # no hard links here (a FAT or FUSE card): create in place
                fd = -1
                fd = self._create_in_place(me)
            return fd
        except FileExistsError:
            if fd >= 0:
                os.close(fd)
            return None
        except OSError as e:
            if fd >= 0:
                os.close(fd)
            raise WriteError(f"cannot write the lock {self.path}: {write_cause(e)}; "
                             "nothing was written to the run folder") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _create_in_place(self, content: str) -> int:
        """Where hard links are not supported: create exclusively, flock, then write; a write
        failure removes the file (never a 0-byte lock left behind)."""
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, content.encode())
            os.fsync(fd)
        except OSError:
            self.path.unlink(missing_ok=True)
            os.close(fd)
            raise
        return fd

    def _take_over_stale(self) -> bool:
        """Remove the existing lock if its holder is gone; True when the caller may retry."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return True  # released meanwhile
        except OSError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # its holder lives and holds it
            if os.fstat(fd).st_ino != _inode(self.path):
                return True  # replaced meanwhile: look again
            if not self._holder_gone(os.read(fd, 4096)):
                return False
            self.path.unlink()
            return True
        finally:
            os.close(fd)

    @staticmethod
    def _holder_gone(content: bytes) -> bool:
        """An empty or unreadable lock (a crash mid-write by an older harness) is stale once
        unflocked; a readable one when its pid is dead on this host."""
        try:
            info = json.loads(content)
            if not isinstance(info, dict):
                return True
        except ValueError:
            return True
        if info.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(info.get("pid", -1)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, TypeError, OverflowError):
            return False
        return False

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since_utc')}"
        except (OSError, ValueError, AttributeError):
            return "unknown holder"

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------
# Writing a run


class RunWriter:
    """Owns one run directory while a run (or a resume) writes to it."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.records = JsonlAppender(run_dir / RECORDS_FILE)
        for sub in ("traces", "samples", OUTPUTS_DIR):
            try:
                (run_dir / sub).mkdir(exist_ok=True)
            except OSError as e:
                raise _run_write_error(run_dir / sub, e) from None

    @classmethod
    def create(cls, output_dir: Path, run_id: str) -> "RunWriter":
        run_dir = output_dir / run_id
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file in the way, a read-only place
            cause = "it is a file, not a folder" if isinstance(e, FileExistsError) else write_cause(e)
            raise WriteError(f"cannot create the output folder {output_dir}: {cause}") from None
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise HarnessError(f"{run_dir} already exists; runs are never overwritten "
                               f"(use --resume {run_dir} to continue it)") from None
        except OSError as e:
            raise WriteError(f"cannot create the run folder {run_dir}: {write_cause(e)}") from None
        try:
            return cls(run_dir)
        except WriteError:
            shutil.rmtree(run_dir, ignore_errors=True)  # just made, holds nothing: never resumable
            raise

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self.dir / MANIFEST_FILE
        if path.exists():
            raise HarnessError(f"{path} exists; a manifest is written once")
        tmp = path.with_suffix(".json.tmp")
        _write_durably(tmp, json.dumps(_finite(manifest), indent=2, default=_json_default), "w")
        try:
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _run_write_error(path, e) from None

    def append(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)

    def append_trace(self, cell_id: str, rows: Iterable[tuple[Any, float, float]],
                     attempt: str | None = None) -> Path:
        """Raw power samples: (repetition label, t_s since window start, power_w) of one attempt.

        The `attempt` column keeps a resumed cell's attempts apart (readers plot only the one
        load_run keeps). A trace begun by an older harness, without the column, keeps its layout.
        """
        path = self.dir / "traces" / f"{cell_id}.csv"
        header = _first_line(path)
        with_attempt = header is None or header.startswith("attempt,")
        lines = []
        if header is None:
            lines.append(TRACE_HEADER)
        prefix = f"{attempt or ''}," if with_attempt else ""
        for label, t_s, p_w in rows:
            lines.append(f"{prefix}{label},{t_s:.6f},{'' if p_w is None else f'{p_w:.6f}'}\n")
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
    # cells with repetitions but no final record at all: an attempt cut off (kill, power loss)
    unfinished: list[str] = field(default_factory=list)
    lock_left: bool = False  # a .lock in the folder: the run is being written, or its writer died

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

    @property
    def state(self) -> "RunState":
        return run_state(self)


INTERRUPTED_KIND = "interrupted"  # the failure_kind the launcher records when the user stops a run


@dataclass(frozen=True)
class RunState:
    """Whether a run ran to its end, read from what it left behind (records and files).

    `complete`: every cell it started ended with a summary or a failure other than an
    interruption, and no lock was left. Otherwise the run was stopped (Ctrl-C: an `interrupted`
    failure), cut off (repetitions of a cell with no final record), or is still being written (or
    its writer died: a `.lock` left); `evidence` says which, and `cells_cut` lists the cells it
    did not finish. A resumed run that finished is complete: the last final record of each cell
    counts. A run stopped between two cells leaves no such trace and reads as complete.
    """

    complete: bool
    evidence: tuple[str, ...]
    cells_cut: tuple[str, ...]  # cell ids interrupted or cut off in this run

    @property
    def status(self) -> str:
        return "complete" if self.complete else "interrupted"


def run_state(run: Run) -> RunState:
    """The run's RunState (see there); a pure function of the loaded run."""
    stopped = [f["cell_id"] for f in run.failures if f.get("failure_kind") == INTERRUPTED_KIND]
    evidence = []
    if stopped:
        evidence.append(f"stopped by the user during {len(stopped)} cell(s)")
    if run.unfinished:
        evidence.append(f"{len(run.unfinished)} cell(s) cut off with no final record")
    if run.lock_left:
        evidence.append("a .lock is left (still being written, or its writer was killed)")
    return RunState(not evidence, tuple(evidence), tuple(dict.fromkeys(stopped + run.unfinished)))


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
    data = read_in_run(run_dir, MANIFEST_FILE, MANIFEST_MAX_BYTES, str(manifest_path))
    if data is None:
        raise HarnessError(f"{run_dir}: no {MANIFEST_FILE}; not a run directory")
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise HarnessError(f"{manifest_path}: corrupt ({e})") from None
    check_manifest(manifest, manifest_path)
    records_path = run_dir / RECORDS_FILE
    data = read_in_run(run_dir, RECORDS_FILE, RECORDS_MAX_BYTES, str(records_path))
    rows, warnings = parse_jsonl(b"" if data is None else data, records_path)
    for r in rows:
        _check_version(r, records_path)
        check_record(r, records_path)
    finals = {r["cell_id"] for r in rows if r.get("record_type") in (CELL_SUMMARY, CELL_FAILED)}
    unfinished = list(dict.fromkeys(r["cell_id"] for r in rows if r.get("record_type") == REPETITION
                                    and r["cell_id"] not in finals))
    return Run(run_dir, manifest, _final_records(rows, warnings, expand), warnings, unfinished,
               os.path.lexists(run_dir / LOCK_FILE))


# Manifest fields readers use, and the JSON types they may have (null is always allowed).
_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "run_id": str, "created_utc": str, "matrix_path": str, "host": dict, "device": dict,
    "energy": dict, "matrix": dict, "runtime_info": dict, "packages": dict,
    "memory_bandwidth": dict}
_SECTION_TYPES = {("host", "hostname"): str, ("device", "profile"): str}


def check_manifest(manifest: Any, where: Path) -> None:
    """A manifest is a JSON object whose known fields have their types; one clear error if not."""
    if not isinstance(manifest, dict):
        raise HarnessError(f"{where}: a manifest is a JSON object, not {_json_type(manifest)}; "
                           "the run folder is corrupt")
    _check_version(manifest, where)
    for key, types in _MANIFEST_TYPES.items():
        v = manifest.get(key)
        if v is not None and not isinstance(v, types):
            raise HarnessError(f"{where}: '{key}' must be {_json_type(types)}, not "
                               f"{_json_type(v)}; the run folder is corrupt")
    for (section, key), types in _SECTION_TYPES.items():
        v = (manifest.get(section) or {}).get(key)
        if v is not None and not isinstance(v, types):
            raise HarnessError(f"{where}: '{section}.{key}' must be {_json_type(types)}, not "
                               f"{_json_type(v)}; the run folder is corrupt")


def check_record(rec: dict[str, Any], where: Path) -> None:
    """A record whose known fields have the wrong types (or no valid cell_id) is refused by name.

    Only types are checked, not completeness: older runs lack fields added since, and readers
    cope with absent fields; a string where a number belongs would crash them.
    """
    rtype = rec.get("record_type")
    if not is_cell_id(rec.get("cell_id")):
        raise HarnessError(f"{_record_name(rec, where)}: cell_id must be 12 lowercase hex digits "
                           "(as the harness writes it); the run folder is corrupt or forged")
    if rtype not in RECORD_TYPES:
        return  # a record type this harness does not read is ignored by every reader
    # Validity of the top-level fields depends only on their names and value types: a record
    # shaped like one already checked (100,000 repetitions share a few shapes) needs no loop.
    shape = (rtype, tuple(rec), tuple(map(type, rec.values())))
    if shape not in _SHAPES_OK:
        _check_fields(rec, rtype, where)
        if len(_SHAPES_OK) >= 4096:
            _SHAPES_OK.clear()
        _SHAPES_OK.add(shape)
    for m, st in (rec.get("metrics") or {}).items():
        if not isinstance(st, dict) or not (_NUMBER_OR_NULL.issuperset(map(type, st.values())) or all(
                v is None or _is_number(v) for v in st.values())):
            raise HarnessError(f"{_record_name(rec, where)}: metrics['{str(m)[:60]}'] must map "
                               "statistic names to numbers or null; the run folder is corrupt")


_SHAPES_OK: set[tuple[Any, ...]] = set()


def _record_name(rec: dict[str, Any], where: Path) -> str:
    return f"{where}: {str(rec.get('record_type')):.40} record of cell {str(rec.get('cell_id'))[:40]!r}"


def _check_fields(rec: dict[str, Any], rtype: str, where: Path) -> None:
    """Each known field's JSON type, and every metric a number or null."""
    checks = _field_checks(rtype)
    for fname, value in rec.items():
        check = checks.get(fname)
        if check is not None and type(value) not in check[0] and not _type_ok(value, check[1]):
            raise HarnessError(f"{_record_name(rec, where)}: '{fname}' must be "
                               f"{' or '.join(check[1])}, not {_json_type(value)}; the run "
                               "folder is corrupt")
    for m in _METRIC_FIELDS.intersection(rec):
        if rec[m] is not None and not _is_number(rec[m]):
            raise HarnessError(f"{_record_name(rec, where)}: metric '{m}' must be a number or "
                               f"null, not {_json_type(rec[m])}; the run folder is corrupt")


@functools.lru_cache(maxsize=None)
def _field_checks(rtype: str) -> dict[str, tuple[frozenset[type], tuple[str, ...]]]:
    """Field name -> (exact Python types json.loads gives for its allowed JSON types, the JSON
    type names), built once per record type instead of once per record."""
    return {f.name: (frozenset(x for t in f.types for x in _EXACT_TYPES[t]), f.types)
            for f in fields_of(rtype)}


_METRIC_FIELDS = frozenset(set(METRICS) | set(interval_fields(METRICS)))
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),)}


_EXACT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),)}
_NUMBER_OR_NULL = frozenset((int, float, type(None)))


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    return any(isinstance(value, _JSON_TYPES[t]) and not (
        t in ("integer", "number") and isinstance(value, bool)) for t in types)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json_type(v: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer",
             float: "a number", bool: "a boolean", type(None): "null"}
    if isinstance(v, type):
        return names.get(v, v.__name__)
    if isinstance(v, tuple) and all(isinstance(t, type) for t in v):
        return " or ".join(names.get(t, t.__name__) for t in v)
    return names.get(type(v), type(v).__name__)


def read_outputs(run_dir: Path | str, cell_id: str, attempt: str | None = None) -> list[dict[str, Any]]:
    """A cell's per-repetition generation outputs (schema 2), of one attempt if given.

    Schema 1 kept them on the repetition records instead; an absent file gives []. The file is
    read inside the run folder only (harness.runfiles), capped in size.
    """
    rel = cell_file(OUTPUTS_DIR, cell_id, ".jsonl", f"{run_dir}: outputs")
    data = read_in_run(Path(run_dir), rel, CELL_FILE_MAX_BYTES, f"{run_dir}: cell {cell_id}")
    rows, _ = parse_jsonl(data or b"", Path(run_dir) / rel)
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
    bases: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("record_type") != REPETITION:
            continue
        f = final.get(r["cell_id"])
        if f is not None and f.get("attempt") == r.get("attempt"):
            out.append(_expand(r, f, bases) if expand else r)
        else:
            orphans += 1
    if orphans:
        warnings.append(f"{orphans} repetition record(s) from unfinished or superseded attempts ignored")
    return out


def _expand(rep: dict[str, Any], final: dict[str, Any], bases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """records.expand_repetition, with the cell's constants gathered once per cell and copied
    (one C-level dict copy) per repetition: ~1 s less at 100,000 repetitions."""
    if rep.get("schema_version") == 1:
        return rep
    base = bases.get(final["cell_id"])
    if base is None:
        base = bases[final["cell_id"]] = expand_repetition({}, final)
    out = base.copy()
    out.update(rep)
    if "warnings" not in rep:
        out["warnings"] = []  # a list of its own per repetition, as expand_repetition gives
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
