"""Small run directories written through harness.store for tests that need a variation of the
stored fixture (hostile strings, conflicting hardware)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import stats
from harness.records import CELL_SUMMARY, REPETITION, CellKey, make_record
from harness.store import RunWriter

HOSTILE = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
           '|pipe|*star* `tick` & "quote" \'apos\'')
HOST = {"cpu_model": "Test CPU", "cpu_vendor": "Test", "cores_logical": 4, "cores_physical": 2,
        "ram_bytes": 8_000_000_000, "os": "Linux", "kernel": "6.1", "machine": "x86_64",
        "hostname": "box-1"}


def write_run(out: Path, run_id: str, model: str = "tiny", output_text: str = "hello",
              host: dict[str, Any] | None = None, profile: str = "laptop",
              created: str = "2026-11-22T10:00:00Z", tps: float = 20.0) -> Path:
    """One generation cell (3 repetitions, a trace) and one closed_book cell with samples."""
    w = RunWriter.create(out, run_id)
    w.write_manifest({"schema_version": 1, "run_id": run_id, "created_utc": created,
                      "harness_version": "0.1.0", "git_commit": "abc", "matrix_path": "m.yaml",
                      "matrix": {"repetitions": 3}, "python": "3.11", "packages": {},
                      "runtime_info": {}, "host": dict(host or HOST),
                      "device": {"profile": profile, "detected_profile": profile,
                                 "emulated": False, "detection": "test"},
                      "energy": {"sensor": "rapl", "method": "measured", "rate_hz": 10}})
    gen = CellKey(model, "Q4_K_M", "llama_cpp", profile, None, "gen")
    reps = []
    for i in range(3):
        reps.append(make_record(
            REPETITION, run_id, gen, attempt="a1", repetition=i, workload_kind="generation",
            decode_tokens_per_s=tps + i, energy_per_decode_token_j=0.1 + 0.01 * i,
            peak_rss_bytes=400e6 + i, energy_method="measured", energy_sensor="rapl",
            energy_coverage="package", energy_valid=True, output_text=output_text,
            phases={"prefill": [0.0, 0.2], "decode": [0.2, 1.0]}, emulated=False, throttled=False))
    for r in reps:
        w.append(r)
    w.append_trace(gen.cell_id, [(lab, t / 10, 5.0) for lab in ("load", "baseline", 0, 1, 2)
                                 for t in range(10)])
    w.append(_summary(run_id, gen, reps, energy_method="measured", energy_sensor="rapl",
                      energy_coverage="package"))
    cb = CellKey(model, "Q4_K_M", "llama_cpp", profile, None, "closed-book")
    w.append_samples(cb.cell_id, [{"id": "q1", "question": output_text, "output": output_text,
                                   "label": "hallucinated", "references": [output_text]},
                                  {"id": "q2", "question": "ok?", "output": "yes",
                                   "label": "correct", "references": ["yes"]}])
    lo, hi = stats.wilson_ci(1, 2)
    rep = make_record(REPETITION, run_id, cb, attempt="a2", repetition=0,
                      workload_kind="closed_book", hallucination_rate=0.5,
                      hallucination_rate_ci95_low=lo, hallucination_rate_ci95_high=hi,
                      accuracy=0.5, accuracy_ci95_low=lo, accuracy_ci95_high=hi, n_items=2,
                      samples_file=f"samples/{cb.cell_id}.jsonl")
    w.append(rep)
    w.append(_summary(run_id, cb, [rep]))
    return w.dir


def _summary(run_id: str, key: CellKey, reps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    numeric = {k for r in reps for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("schema_version", "repetition")}
    return make_record(CELL_SUMMARY, run_id, key, attempt=reps[0]["attempt"], status="ok",
                       n_repetitions=len(reps), workload_kind=reps[0]["workload_kind"],
                       metrics={k: stats.summarize([r.get(k) for r in reps]) for k in sorted(numeric)},
                       unstable=[], warnings=[], **extra)
