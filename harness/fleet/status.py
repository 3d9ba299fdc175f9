"""`fleet status FLEET_DIR`: per device, what ran, what failed and what it is doing, from the journal."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import FleetFolder


def device_states(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per device: its state (ready, refused, running CELL, lost, done), cells ok and failed."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        name = e.get("device")
        if not name:
            continue
        d = out.setdefault(name, {"state": "", "ok": 0, "failed": 0, "lost": 0, "last": None})
        kind = e["event"]
        if kind == "device_ready":
            d["state"] = "ready"
        elif kind == "device_refused":
            d["state"] = f"refused: {e.get('reason')}"
        elif kind == "cell_start":
            d["state"] = f"running {e['cell_id']} (attempt {e.get('attempt')})"
        elif kind == "cell_end":
            d["state"] = "idle"
            d["last"] = e
            if e.get("status") == "ok":
                d["ok"] += 1
            elif e.get("final"):
                d["failed"] += 1
            if e.get("status") == "device_lost":
                d["lost"] += 1
        elif kind in ("device_lost", "device_back", "device_gone"):
            d["state"] = kind.replace("_", " ")
    return out


def show_status(fleet_dir: str) -> int:
    folder = FleetFolder.open(Path(fleet_dir))
    events = folder.events()
    ended = any(e.get("event") == "run_end" for e in events)
    print(f"fleet {folder.fleet_id}: {'finished' if ended else 'not finished (running, or stopped: --resume)'}")
    for name, d in sorted(device_states(events).items()):
        print(f"  {name:16s} {d['ok']} ok, {d['failed']} failed, {d['lost']} lost; {d['state']}")
    return 0
