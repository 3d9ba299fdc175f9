"""Fault injection on real runs: every fault is provoked, and the run must record it and go on.

Each fault is injected in the cell's child process through HARNESS_FAULT (harness/faults.py).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store import load_run, read_jsonl
from tests.conftest import REPO, only_run_dir, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

FOUR = """
  - {name: ok, kind: generation, prompt: chat_short, max_tokens: 2}
  - {name: crashes, kind: generation, prompt: chat_short, max_tokens: 2}
  - {name: killed, kind: generation, prompt: chat_short, max_tokens: 2}
  - {name: hangs, kind: generation, prompt: chat_short, max_tokens: 2, timeout_s: 20}
"""


def _fault_for(workload: str, stage: str, action: str) -> dict:
    return {"workload": workload, "stage": stage, "action": action}


def test_crash_oom_kill_and_hang_are_recorded_and_resume_reruns_only_those(tmp_path, matrix_factory,
                                                                           monkeypatch):
    m = matrix_factory(workloads=FOUR)
    # one fault plan per run: the env var takes one plan, so run the faults through a wrapper list
    plans = [_fault_for("crashes", "after_repetition", "crash"),
             _fault_for("killed", "after_load", "sigkill"),
             _fault_for("hangs", "after_load", "hang")]
    env = {"HARNESS_FAULT": json.dumps({"any": plans})}
    r = run_cli("run", str(m), "--quiet", "--no-report", env=env)
    assert r.returncode == 1, (r.stdout, r.stderr)  # some cells failed
    run_dir = only_run_dir(tmp_path / "results")
    run = load_run(run_dir)
    failed = {f["workload"]: f for f in run.failures}
    assert set(failed) == {"crashes", "killed", "hangs"}
    assert failed["crashes"]["failure_kind"] == "crash" and "injected fault" in failed["crashes"]["reason"]
    assert "Traceback" in failed["crashes"]["stderr_tail"]
    assert failed["killed"]["failure_kind"] == "oom" and "out-of-memory" in failed["killed"]["reason"]
    assert failed["hangs"]["failure_kind"] == "timeout" and "20 s" in failed["hangs"]["reason"]
    # the crash came after repetition 0 was recorded: that measurement is kept with the failure
    assert [r["workload"] for r in run.repetitions] == ["ok", "crashes"]
    assert [s["workload"] for s in run.summaries] == ["ok"]
    assert "FAILED" in r.stdout

    # resume without faults: the three failed cells run again, the finished one does not
    r2 = run_cli("run", "--resume", str(run_dir), "--quiet", "--no-report")
    assert r2.returncode == 0, r2.stderr
    run = load_run(run_dir)
    assert sorted(s["workload"] for s in run.summaries) == ["crashes", "hangs", "killed", "ok"]
    rows, _ = read_jsonl(run_dir / "records.jsonl")
    ok_summaries = [x for x in rows if x["record_type"] == "cell_summary" and x["workload"] == "ok"]
    assert len(ok_summaries) == 1  # not rerun


def _wait_for(path: Path, predicate, timeout_s: float = 300) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if path.exists():
            rows, _ = read_jsonl(path)
            if predicate(rows):
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting on {path}")


def _start_run(matrix: Path, env: dict) -> subprocess.Popen:
    full = dict(os.environ, **env)
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(matrix), "--no-report"],
                            cwd=REPO, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


TWO = """
  - {name: first, kind: generation, prompt: chat_short, max_tokens: 2}
  - {name: second, kind: generation, prompt: chat_short, max_tokens: 2}
"""


def _first_done(rows):
    return any(r["record_type"] == "cell_summary" and r["workload"] == "first" for r in rows)


def _run_until_second_cell_hangs(matrix_factory, tmp_path):
    """Start a two-cell run whose second cell hangs; return once the first cell is on disk."""
    m = matrix_factory(workloads=TWO)
    proc = _start_run(m, {"HARNESS_FAULT": json.dumps(_fault_for("second", "after_load", "hang"))})
    results = tmp_path / "results"
    t0 = time.monotonic()
    while not results.exists() or not any(results.iterdir()):
        assert time.monotonic() - t0 < 120, "the run did not create its directory"
        time.sleep(0.2)
    run_dir = only_run_dir(results)
    _wait_for(run_dir / "records.jsonl", _first_done)
    return proc, run_dir


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_after_writing_what_is_finished_and_resume_continues(tmp_path, matrix_factory, sig):
    proc, run_dir = _run_until_second_cell_hangs(matrix_factory, tmp_path)
    time.sleep(1.0)  # the second cell is now hanging in its child
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"--resume {run_dir}" in err
    assert not (run_dir / ".lock").exists()
    run = load_run(run_dir)
    assert [s["workload"] for s in run.summaries] == ["first"]
    assert run.failures[0]["failure_kind"] == "interrupted"
    r = run_cli("run", "--resume", str(run_dir), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    assert sorted(s["workload"] for s in load_run(run_dir).summaries) == ["first", "second"]


def test_second_interrupt_stops_at_once_without_corrupting_files(tmp_path, matrix_factory):
    proc, run_dir = _run_until_second_cell_hangs(matrix_factory, tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = load_run(run_dir)  # parses: nothing torn beyond what the reader tolerates
    assert [s["workload"] for s in run.summaries] == ["first"]


def test_power_loss_loses_at_most_the_cell_in_progress(tmp_path, matrix_factory):
    proc, run_dir = _run_until_second_cell_hangs(matrix_factory, tmp_path)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a power cut would
    proc.communicate(timeout=30)
    with open(run_dir / "records.jsonl", "a") as f:
        f.write('{"schema_version":1,"record_type":"repet')  # and a torn write for good measure
    assert (run_dir / ".lock").exists()  # left behind by the dead run: stale, taken over on resume
    r = run_cli("run", "--resume", str(run_dir), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    run = load_run(run_dir)
    assert sorted(s["workload"] for s in run.summaries) == ["first", "second"]
    assert any("torn" in w for w in run.warnings)


def test_emulated_profile_too_small_is_reported_as_not_fitting(tmp_path, matrix_factory):
    devs = tmp_path / "devs"
    devs.mkdir()
    base = (REPO / "devices" / "raspberry-pi-4.yaml").read_text()
    for name, mem in (("tiny-board", 200 * 2**20), ("snug-board", 330 * 2**20)):
        text = base.replace("name: raspberry-pi-4", f"name: {name}")
        text = text.replace("memory_bytes: 4294967296", f"memory_bytes: {mem}")
        (devs / f"{name}.yaml").write_text(text)
    env = {"HARNESS_DEVICES_DIR": str(devs)}
    m = matrix_factory()
    # 200 MiB: refused before loading (the 241 MiB model alone does not fit)
    r = run_cli("run", str(m), "--quiet", "--no-report", "--emulate", "tiny-board", env=env)
    assert r.returncode == 1
    run = load_run(only_run_dir(tmp_path / "results"))
    f = run.failures[0]
    assert f["failure_kind"] == "does_not_fit" and "tiny-board" in f["reason"] and f["emulated"]
    assert run.manifest["device"]["emulated"] is True
    # 330 MiB: passes the lower-bound check, then the RSS watch stops it when it grows past the limit
    for d in (tmp_path / "results").iterdir():
        import shutil
        shutil.rmtree(d)
    r = run_cli("run", str(m), "--quiet", "--no-report", "--emulate", "snug-board", env=env)
    assert r.returncode == 1
    f = load_run(only_run_dir(tmp_path / "results")).failures[0]
    assert f["failure_kind"] == "does_not_fit" and "MiB" in f["reason"]


def test_profile_that_does_not_match_this_machine_is_refused_without_emulate(tmp_path, matrix_factory):
    r = run_cli("run", str(matrix_factory()), "--device", "jetson-orin-nano", "--quiet")
    assert r.returncode == 2 and "--emulate jetson-orin-nano" in r.stderr
    assert not (tmp_path / "results").exists()


def test_sensor_failing_mid_cell_marks_energy_invalid_never_an_estimate(tmp_path, matrix_factory):
    m = matrix_factory(energy="{sensor: scripted, rate_hz: 20, baseline_s: 0, "
                              "scripted: {base_w: 4, fail_after_s: 0.3}}", repetitions=2)
    r = run_cli("run", str(m), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr  # the latency and memory measurements are still good
    run = load_run(only_run_dir(tmp_path / "results"))
    for rec in run.repetitions:
        assert rec["energy_valid"] is False and rec["energy_invalid_reason"]
        assert rec["energy_gross_j"] is None and rec["energy_per_decode_token_j"] is None
        assert rec["energy_method"] == "scripted" and rec["energy_sensor"] == "scripted"
        assert rec["ttft_s"] > 0
    assert any("energy invalid" in w for w in run.summaries[0]["warnings"])
    assert "energy_gross_j" not in run.summaries[0]["metrics"] or \
        run.summaries[0]["metrics"]["energy_gross_j"]["n"] == 0
