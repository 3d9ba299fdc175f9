"""The fleet's plan: which cells each profile owes, what is finished, and the journal of events.

A fleet folder (`<output>/fleet-<id>/`) holds `fleet.json` (who drove what), copies of the
inventory and the matrix, `journal.jsonl` (every device and cell event, appended and fsync'd, so
a controller killed at any point resumes from it) and `runs/<run-id>/`, the pulled mirrors of
each device's run folder. The device folders stay the source of truth: on resume they are pulled
again and a cell with a summary there counts as finished even if the journal missed its end.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import HarnessError
from ..matrix import AUTO_DEVICE, Cell, Matrix
from ..store import JsonlAppender, load_run, read_jsonl

FLEET_FILE = "fleet.json"
JOURNAL_FILE = "journal.jsonl"


def controller_identity(engine: str) -> dict[str, Any]:
    """Who drove the devices (for every device run's manifest)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {"hostname": socket.gethostname(), "user": user, "pid": os.getpid(),
            "harness_version": __version__, "python": sys.version.split()[0], "engine": engine}


def cells_for_profile(matrix: Matrix, profile: str) -> list[Cell]:
    """The matrix's cells a device of `profile` runs: those naming it, and those of `auto`."""
    return [c for c in matrix.cells(device_for_auto=profile) if c.key.device == profile]


def unclaimed_profiles(matrix: Matrix, profiles: set[str]) -> list[str]:
    """Profiles the matrix names that no ready device has (their cells cannot run)."""
    return sorted({d.profile for d in matrix.devices if d.profile != AUTO_DEVICE} - profiles)


class CellQueue:
    """Cells still to run, per profile; devices of one profile take from the same queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Cell]] = {}
        self.total: dict[str, int] = {}
        self._serving: dict[str, set[str]] = {}

    def add(self, profile: str, cells: list[Cell], device: str) -> None:
        """`device` serves `profile`; the profile's cells are queued once."""
        with self._lock:
            self._serving.setdefault(profile, set()).add(device)
            if profile not in self._queues:
                self._queues[profile] = deque(cells)
                self.total[profile] = len(cells)

    def take(self, profile: str) -> Cell | None:
        with self._lock:
            q = self._queues.get(profile)
            return q.popleft() if q else None

    def put_back(self, profile: str, cell: Cell) -> None:
        with self._lock:
            self._queues[profile].appendleft(cell)

    def retire(self, profile: str, device: str) -> bool:
        """`device` left for good; True when other devices still serve its profile."""
        with self._lock:
            self._serving.get(profile, set()).discard(device)
            return bool(self._serving.get(profile))

    def left(self, profile: str) -> int:
        with self._lock:
            return len(self._queues.get(profile, ()))


@dataclass
class FleetFolder:
    dir: Path
    fleet_id: str

    @classmethod
    def create(cls, output: Path, inventory_file: Path, matrix_file: Path, engine: str) -> "FleetFolder":
        fleet_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid() % 10000:04d}"
        folder = output / f"fleet-{fleet_id}"
        try:
            folder.mkdir(parents=True)
            (folder / "fleet.yaml").write_bytes(inventory_file.read_bytes())
            (folder / "matrix.yaml").write_bytes(matrix_file.read_bytes())
            manifest = {"fleet_id": fleet_id, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "inventory_path": str(inventory_file), "matrix_path": str(matrix_file),
                        "controller": controller_identity(engine), "argv": list(sys.argv)}
            (folder / FLEET_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        except OSError as e:
            raise HarnessError(f"cannot create the fleet folder {folder}: {e.strerror}") from None
        return cls(folder, fleet_id)

    @classmethod
    def open(cls, folder: Path) -> "FleetFolder":
        try:
            manifest = json.loads((folder / FLEET_FILE).read_text())
        except (OSError, ValueError):
            raise HarnessError(f"{folder}: not a fleet folder (no readable {FLEET_FILE})") from None
        return cls(folder, manifest["fleet_id"])

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    def journal(self) -> JsonlAppender:
        return JsonlAppender(self.dir / JOURNAL_FILE)

    def events(self) -> list[dict[str, Any]]:
        path = self.dir / JOURNAL_FILE
        return read_jsonl(path)[0] if path.exists() else []

    def finished(self, device: str) -> set[str]:
        """Cells of this device that finished ok: in the journal, or with a summary in the pulled
        records (the journal may have missed the end). Failed cells run again, as in `run --resume`."""
        done = {e["cell_id"] for e in self.events()
                if e.get("event") == "cell_end" and e.get("device") == device and e.get("status") == "ok"}
        run_dir = self.runs / f"{self.fleet_id}-{device}"
        if (run_dir / "manifest.json").exists():
            done |= load_run(run_dir, expand=False).finished_cell_ids()
        return done


class Journal:
    """Thread-safe appends of events (each with a UTC time) to the fleet's journal."""

    def __init__(self, folder: FleetFolder):
        self._lock = threading.Lock()
        self._out = folder.journal()

    def write(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._out.append({"event": event, "t_utc": time.time(), **fields})
