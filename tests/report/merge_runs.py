"""Run folders for the merge tests, written the way `run` writes them: harness.store's RunWriter,
the record types the launcher writes (Repetition, CellSummary, CellFailed: schema 2), and the
interrupted failure the launcher records when the user presses Ctrl-C."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import stats
from harness.records import SCHEMA_VERSION, CellFailed, CellKey, CellSummary, Repetition
from harness.store import RunWriter

HOST = {"cpu_model": "Test CPU", "cpu_vendor": "Test", "cores_logical": 4, "cores_physical": 2,
        "ram_bytes": 8 * 2**30, "os": "Linux", "kernel": "6.1", "machine": "x86_64",
        "hostname": "box-1"}
PROFILE = "laptop"
GEN = CellKey("gemma3-270m", "Q4_K_M", "llama_cpp", PROFILE, None, "chat-short")
BOOK = CellKey("gemma3-270m", "Q4_K_M", "llama_cpp", PROFILE, None, "closed-book")
CONSTANTS = {"emulated": False, "energy_method": "estimated", "energy_sensor": "estimate",
             "energy_model": "cpu-tdp-linear", "n_threads": 2, "n_threads_batch": 2,
             "n_batch": 512, "n_ctx": 2048, "threads_source": "physical_cores"}


def new_run(out: Path, run_id: str, created: str) -> RunWriter:
    w = RunWriter.create(out, run_id)
    w.write_manifest({"schema_version": SCHEMA_VERSION, "run_id": run_id, "created_utc": created,
                      "harness_version": "0.1.0", "git_commit": "abc", "matrix_path": "m.yaml",
                      "matrix": {"repetitions": 3}, "python": "3.11", "packages": {},
                      "runtime_info": {}, "host": dict(HOST),
                      "device": {"profile": PROFILE, "detected_profile": PROFILE,
                                 "emulated": False, "detection": "test"},
                      "energy": {"sensor_requested": "auto", "rate_hz": 10}})
    return w


def finish_gen(w: RunWriter, run_id: str, attempt: str, tps: float) -> None:
    """chat-short: 3 repetitions at about `tps` decode tokens/s, then its summary."""
    reps = [Repetition(GEN.cell_id, attempt, i, {
        "decode_tokens_per_s": tps + i - 1, "ttft_s": 0.2, "peak_rss_bytes": 380.0 * 2**20 + i,
        "energy_per_decode_token_j": 10.0 / tps, "energy_valid": True}).to_dict() for i in range(3)]
    _finish(w, run_id, GEN, attempt, reps, "generation")


def finish_book(w: RunWriter, run_id: str, attempt: str, hallucination_rate: float) -> None:
    lo, hi = stats.wilson_ci(round(hallucination_rate * 10), 10)
    reps = [Repetition(BOOK.cell_id, attempt, 0, {
        "hallucination_rate": hallucination_rate, "hallucination_rate_ci95_low": lo,
        "hallucination_rate_ci95_high": hi, "accuracy": 1 - hallucination_rate,
        "n_items": 10}).to_dict()]
    _finish(w, run_id, BOOK, attempt, reps, "closed_book")


def _finish(w: RunWriter, run_id: str, key: CellKey, attempt: str, reps: list[dict[str, Any]],
            kind: str) -> None:
    for r in reps:
        w.append(r)
    names = sorted({k for r in reps for k, v in r.items() if isinstance(v, float)})
    w.append(CellSummary(run_id, key, attempt, n_repetitions=len(reps), warmup=1,
                         metrics={n: stats.summarize([r.get(n) for r in reps]) for n in names},
                         cell={"workload_kind": kind, **CONSTANTS}).to_dict())


def interrupt(w: RunWriter, run_id: str, key: CellKey, attempt: str, kind: str) -> None:
    """What the launcher writes when the user stops the run during this cell."""
    w.append(CellFailed(run_id, key, attempt, reason="interrupted by the user; rerun with --resume",
                        failure_kind="interrupted", exit_code=None, stderr_tail="",
                        n_repetitions_done=0, elapsed_s=3.0,
                        cell={"workload_kind": kind, **CONSTANTS}).to_dict())


def issue_sequence(out: Path) -> list[Path]:
    """Issue 17's sequence: a complete run, a second complete run, then a run abandoned after
    its single finished cell (chat-short, the latest of the three) with closed-book interrupted."""
    dirs = []
    for run_id, created, tps, rate in (("run-1", "2026-11-28T10:00:00Z", 30.0, 0.5),
                                       ("run-2", "2026-11-29T10:00:00Z", 32.0, 0.4)):
        w = new_run(out, run_id, created)
        finish_gen(w, run_id, "a1", tps)
        finish_book(w, run_id, "a2", rate)
        dirs.append(w.dir)
    w = new_run(out, "run-3", "2026-11-30T10:00:00Z")
    finish_gen(w, "run-3", "a1", 5.0)  # a slow, abandoned attempt: must not replace run-2's
    interrupt(w, "run-3", BOOK, "a2", "closed_book")
    dirs.append(w.dir)
    return dirs
