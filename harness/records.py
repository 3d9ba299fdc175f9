"""Result records: plain dicts with units in field names, one JSON object per line.

SCHEMA_VERSION history (bump on any change a reader must know about):
  1 (2026-11): first version: record types repetition, cell_summary, cell_failed; see
    docs/ARCHITECTURE.md for the fields.
Readers refuse versions they do not know rather than guess.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = frozenset({1})

REPETITION = "repetition"
CELL_SUMMARY = "cell_summary"
CELL_FAILED = "cell_failed"
RECORD_TYPES = frozenset({REPETITION, CELL_SUMMARY, CELL_FAILED})

# The dimensions that identify a cell; every record carries them as separate fields.
DIMENSIONS = ("model", "level", "runtime", "device", "power_mode", "workload")


@dataclass(frozen=True)
class CellKey:
    """The identity of one cell of the matrix."""

    model: str
    level: str
    runtime: str
    device: str
    power_mode: str | None
    workload: str
    # Runtime settings the matrix sweeps (`runtime: {n_threads: [1, 2, 4]}`), as sorted
    # (name, value) pairs; empty when nothing is swept. Part of the identity, so each setting of
    # a sweep is its own cell; records carry it as the `swept_settings` mapping.
    settings: tuple[tuple[str, int], ...] = ()

    @property
    def cell_id(self) -> str:
        """A short stable hash of the dimensions: a file-name handle, never parsed back.

        Without swept settings the hash is the one schema 1 used, so older runs resume.
        """
        dims: list[Any] = [getattr(self, d) for d in DIMENSIONS]
        if self.settings:
            dims.append(dict(self.settings))
        blob = json.dumps(dims, separators=(",", ":"), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def fields(self) -> dict[str, Any]:
        return ({d: getattr(self, d) for d in DIMENSIONS}
                | {"swept_settings": dict(self.settings), "cell_id": self.cell_id})

    def label(self) -> str:
        """Human-readable, for progress lines and tables (not a key)."""
        mode = f" [{self.power_mode}]" if self.power_mode else ""
        sweep = "".join(f" {k}={v}" for k, v in self.settings)
        return f"{self.model} {self.level} ({self.runtime}) on {self.device}{mode} / {self.workload}{sweep}"

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "CellKey":
        swept = rec.get("swept_settings") or {}
        settings = tuple(sorted((str(k), v) for k, v in swept.items())) if isinstance(swept, dict) else ()
        return cls(**{d: rec.get(d) for d in DIMENSIONS}, settings=settings)


def make_record(record_type: str, run_id: str, key: CellKey, **fields: Any) -> dict[str, Any]:
    if record_type not in RECORD_TYPES:
        raise ValueError(f"unknown record type {record_type!r}")
    return {"schema_version": SCHEMA_VERSION, "record_type": record_type, "run_id": run_id,
            **key.fields(), **fields}
