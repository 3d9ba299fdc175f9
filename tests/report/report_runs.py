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


# --------------------------------------------------------------------------------------------
# Runs with the runtime-settings fields (n_threads ..., swept_settings, roofline, llama_bench)

SETTINGS = ("n_threads", "n_threads_batch", "n_batch", "n_ctx")
NOT_METRICS = {"schema_version", "repetition", "memory_bandwidth_bytes_per_s",
               "decode_bytes_per_token", *SETTINGS}
BANDWIDTH_BYTES_PER_S = 20e9
BYTES_PER_TOKEN = 253e6
# threads -> (decode tok/s, J per decode token): 2 threads is faster, 1 thread uses less energy
SWEEP = {1: (48.0, 0.050), 2: (72.0, 0.060)}


def cell_id_with(key: CellKey, swept: dict[str, Any]) -> str:
    """A cell id that differs per swept setting, as the lead's runner gives each swept cell."""
    import hashlib
    import json

    if not swept:
        return key.cell_id
    blob = json.dumps([key.cell_id, sorted(swept.items())], separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def write_settings_cell(w: RunWriter, run_id: str, key: CellKey, kind: str, threads: int,
                        swept: dict[str, Any], per_rep: list[dict[str, Any]], emulated: bool = False,
                        warnings: list[str] | None = None, test: str | None = None,
                        attempt: str = "a1") -> None:
    """Repetitions and their summary with the settings fields, the way the runner writes them:
    settings and constants top level (not metrics), warnings on each record."""
    cid = cell_id_with(key, swept)
    common = {"attempt": attempt, "workload_kind": kind, "cell_id": cid, "n_threads": threads,
              "n_threads_batch": threads, "n_batch": 512, "n_ctx": 2048,
              "threads_source": "matrix" if "n_threads" in swept else "physical_cores",
              "swept_settings": dict(swept), "emulated": emulated, "throttled": False,
              "energy_method": "measured", "energy_sensor": "rapl", "energy_coverage": "package",
              "warnings": list(warnings or [])}
    if test is not None:
        common["llama_bench_test"] = test
    if any("decode_tokens_per_s" in r for r in per_rep):
        common |= {"memory_bandwidth_bytes_per_s": BANDWIDTH_BYTES_PER_S,
                   "decode_bytes_per_token": BYTES_PER_TOKEN}
    reps = []
    for i, fields in enumerate(per_rep):
        fields = dict(fields)
        if "decode_tokens_per_s" in fields:
            fields["decode_roofline_fraction"] = (fields["decode_tokens_per_s"] * BYTES_PER_TOKEN
                                                  / BANDWIDTH_BYTES_PER_S)
        reps.append(make_record(REPETITION, run_id, key, repetition=i, **common, **fields))
    for r in reps:
        w.append(r)
    numeric = {k for r in reps for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_METRICS}
    carried = {k: v for k, v in common.items() if k not in ("attempt", "warnings")}
    w.append(make_record(CELL_SUMMARY, run_id, key, status="ok", n_repetitions=len(reps),
                         metrics={k: stats.summarize([r.get(k) for r in reps]) for k in sorted(numeric)},
                         unstable=[], warnings=list(warnings or []), **carried,
                         attempt=attempt))


def _gen_reps(tps: float, j_per_token: float, n: int = 3) -> list[dict[str, Any]]:
    return [{"decode_tokens_per_s": tps * (1 + 0.01 * (i - 1)), "tokens_out": 128,
             "energy_per_decode_token_j": j_per_token * (1 - 0.01 * (i - 1)),
             "prefill_tokens_per_s": 10 * tps, "ttft_s": 0.05, "peak_rss_bytes": 300e6 + i,
             "power_avg_w": tps * j_per_token} for i in range(n)]


def write_sweep_run(out: Path, run_id: str = "2026-12-01T10-00-00Z-sweep", emulated: bool = False,
                    profile: str = "laptop", hostname: str = "box-1",
                    created: str = "2026-12-01T10:00:00Z", capped: bool = False,
                    llama_bench: bool = True) -> Path:
    """One model and level on one device with `runtime: {n_threads: [1, 2]}` (plus 4 when
    `capped`: it ran 2 threads, with a warning), two generation workloads (gen-short, gen-long),
    a closed_book quality workload per thread count, and llama_bench pp512/tg128 at 2 threads."""
    w = RunWriter.create(out, run_id)
    host = dict(HOST, hostname=hostname, cores_logical=2, cores_physical=2)
    w.write_manifest({"schema_version": 1, "run_id": run_id, "created_utc": created,
                      "harness_version": "0.1.0", "git_commit": "abc", "matrix_path": "m.yaml",
                      "matrix": {"repetitions": 3, "runtime": {"n_threads": [1, 2]}},
                      "python": "3.11", "packages": {}, "runtime_info": {}, "host": host,
                      "device": {"profile": profile, "detected_profile": profile,
                                 "emulated": emulated, "detection": "test"},
                      "energy": {"sensor": "rapl", "method": "measured", "rate_hz": 10}})
    asked = [1, 2] + ([4] if capped else [])
    for n in asked:
        ran = min(n, 2)
        warn = [f"n_threads {n} capped to the host's {ran} cores"] if ran != n else []
        tps, jpt = SWEEP[ran]
        for wl, scale in (("gen-short", 1.0), ("gen-long", 0.9)):
            write_settings_cell(w, run_id, CellKey("tiny", "Q4_K_M", "llama_cpp", profile, None, wl),
                                "generation", ran, {"n_threads": n},
                                _gen_reps(tps * scale, jpt / scale), emulated, warn)
        lo, hi = stats.wilson_ci(2 + ran, 10)
        write_settings_cell(w, run_id, CellKey("tiny", "Q4_K_M", "llama_cpp", profile, None,
                                               "closed-book"), "closed_book", ran, {"n_threads": n},
                            [{"hallucination_rate": (2 + ran) / 10,
                              "hallucination_rate_ci95_low": lo, "hallucination_rate_ci95_high": hi,
                              "accuracy": 0.6, "n_items": 10}], emulated, warn, attempt="a2")
    if llama_bench:
        for test, fields in (("pp512", {"prefill_tokens_per_s": 669.0, "tokens_in": 512,
                                        "tokens_out": 0, "energy_per_prefill_token_j": 0.004}),
                             ("tg128", {"decode_tokens_per_s": 72.7, "tokens_out": 128,
                                        "energy_per_decode_token_j": 0.058})):
            reps = [{k: v * (1 + 0.01 * (i - 1)) if k.endswith(("_per_s", "_j")) else v
                     for k, v in fields.items()} for i in range(3)]
            write_settings_cell(w, run_id, CellKey("tiny", "Q4_K_M", "llama_cpp", profile, None,
                                                   test), "llama_bench", 2, {}, reps, emulated,
                                test=test, attempt="a3")
    return w.dir
