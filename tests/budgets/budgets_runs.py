"""Builders for small run directories written through the real store (RunWriter + make_record).

Imported by the budgets tests as `budgets_runs` (a unique module name: tests have no packages)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from harness.records import CELL_FAILED, CELL_SUMMARY, REPETITION, CellKey, make_record
from harness.stats import summarize
from harness.store import RunWriter

BASE_MANIFEST: dict[str, Any] = {
    "schema_version": 1,
    "host": {"cpu_model": "Test CPU 2000", "cpu_vendor": "test", "cores_logical": 2,
             "cores_physical": 2, "ram_bytes": 24 * 2**30, "os": "Linux", "kernel": "6.1",
             "machine": "x86_64", "hostname": "ci"},
    "device": {"profile": "laptop-x86", "detected_profile": "laptop-x86", "emulated": False,
               "detection": "test"},
    "energy": {"sensor": "rapl", "method": "measured", "rate_hz": 20.0},
}


def key(model: str = "gemma3-270m", level: str = "Q4_K_M", device: str = "laptop-x86",
        workload: str = "chat-short", power_mode: str | None = None) -> CellKey:
    return CellKey(model=model, level=level, runtime="llama_cpp", device=device,
                   power_mode=power_mode, workload=workload)


def cell(k: CellKey, values: dict[str, list[float]], *, method: str = "measured",
         sensor: str = "rapl", energy_model: str | None = None, failed: str | None = None,
         extra: dict[str, Any] | None = None, rep_extra: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    """A cell spec: per-metric repetition values (all lists the same length)."""
    return {"key": k, "values": values, "method": method, "sensor": sensor,
            "energy_model": energy_model, "failed": failed, "extra": extra or {},
            "rep_extra": rep_extra}


def write_run(root: Path, name: str, cells: list[dict[str, Any]],
              manifest: dict[str, Any] | None = None) -> Path:
    run_id = name
    writer = RunWriter.create(root, run_id)
    writer.write_manifest({**BASE_MANIFEST, "run_id": run_id, **(manifest or {})})
    for spec in cells:
        _write_cell(writer, run_id, spec)
    return writer.dir


def _write_cell(writer: RunWriter, run_id: str, spec: dict[str, Any]) -> None:
    k: CellKey = spec["key"]
    attempt = uuid.uuid4().hex[:8]
    dims = {"workload_kind": "generation", "attempt": attempt}
    if spec["failed"]:
        writer.append(make_record(CELL_FAILED, run_id, k, **dims, status="failed",
                                  reason=spec["failed"], failure_kind="oom", exit_code=-9,
                                  stderr_tail=""))
        return
    values = spec["values"]
    n = len(next(iter(values.values()))) if values else 0
    energy = {"energy_method": spec["method"], "energy_sensor": spec["sensor"]}
    for i in range(n):
        rep = {m: v[i] for m, v in values.items()} | energy | {"energy_valid": True}
        if spec["energy_model"]:
            rep["energy_model"] = spec["energy_model"]
        if spec["rep_extra"]:
            rep |= spec["rep_extra"][i]
        writer.append(make_record(REPETITION, run_id, k, **dims, repetition=i, **rep))
    metrics = {m: summarize(v) for m, v in values.items()}
    writer.append(make_record(CELL_SUMMARY, run_id, k, **dims, status="ok", n_repetitions=n,
                              metrics=metrics, **energy, **spec["extra"]))
