"""Offloaded cells through `python -m harness run`: bad levels exit 2, faults fail one cell only."""
from __future__ import annotations

import pytest

from harness.store import load_run
from tests.conftest import only_run_dir, run_cli, tiny_matrix
from tests.offload import stubs

SCRIPTED = "{sensor: scripted, rate_hz: 50, baseline_s: 0, scripted: {base_w: 3, amplitude_w: 1, period_s: 0.5}}"


def _levels(*entries: str) -> str:
    return "[" + ", ".join(entries) + "]"


@pytest.mark.parametrize("level, key", [
    ("{name: srv, runtime: openai_http, url: 'file:///etc/passwd', model: m}", "levels[0].url"),
    ("{name: srv, runtime: openai_http, url: 'http://127.0.0.1:9/v1'}", "levels[0]: missing required key 'model'"),
])
def test_bad_remote_level_exits_2_naming_the_key(tmp_path, level, key):
    m = tiny_matrix(tmp_path, levels=_levels(level), energy=SCRIPTED)
    r = run_cli("run", str(m), "--dry-run")
    assert r.returncode == 2 and key in r.stderr, r.stderr


def test_fidelity_on_a_remote_level_is_refused(tmp_path):
    m = tiny_matrix(tmp_path, levels=_levels("Q4_K_M", "{name: srv, runtime: openai_http, "
                                             "url: 'http://127.0.0.1:9/v1', model: m}"),
                    workloads="- {name: fid, kind: fidelity, reference_level: Q4_K_M, samples: 1}",
                    energy=SCRIPTED)
    r = run_cli("run", str(m), "--dry-run")
    assert r.returncode == 2 and "workloads[0].kind" in r.stderr
    assert "full next-token distribution" in r.stderr


def test_a_dropped_stream_fails_its_cell_and_the_run_goes_on(tmp_path):
    usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}
    good = stubs.http(200, stubs.sse([stubs.chunk(" a"), stubs.chunk(" b"), stubs.chunk(" c", "length"),
                                      usage, "[DONE]"]), "text/event-stream")
    with stubs.StubServer(stubs.drop_mid_stream) as bad, \
            stubs.StubServer(lambda conn, path: conn.sendall(good)) as ok:
        levels = _levels(f"{{name: flaky, runtime: openai_http, url: '{bad.url}', model: stub-model}}",
                         f"{{name: good, runtime: openai_http, url: '{ok.url}', model: stub-model, "
                         "server_energy: {j_per_output_token: 0.25, source: 'test figure'}}")
        m = tiny_matrix(tmp_path, levels=levels, energy=SCRIPTED, repetitions=2,
                        workloads="- {name: chat, kind: generation, prompt: chat_short, max_tokens: 3}")
        r = run_cli("run", str(m), "--quiet", "--no-report")
    run = load_run(only_run_dir(tmp_path / "results"))
    failed = {f["level"]: f for f in run.failures}
    assert set(failed) == {"flaky"}, r.stderr
    assert "mid-stream" in failed["flaky"]["reason"] and "server's log" in failed["flaky"]["reason"]
    reps = [x for x in run.repetitions if x["level"] == "good"]
    assert len(reps) == 2
    for rec in reps:
        assert rec["runtime"] == "openai_http" and rec["tokens_out"] == 3 and rec["tokens_in"] == 4
        assert rec["network_sent_bytes"] > 300 and rec["network_received_bytes"] > 300
        assert rec["server_energy_j"] == pytest.approx(0.75)
        assert rec["energy_method"] == "scripted" and rec["energy_gross_j"] > 0
        assert rec["offload"]["server_energy"]["method"] == "estimated"
