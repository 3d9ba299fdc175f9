"""Cell processes: the timeout bounds the whole child, a child dies with its parent, a resumed run
refuses while an orphan of the run still computes, and other processes on the cores are flagged.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import launcher
from harness.backends.base import RuntimeSettings
from harness.cell import CellPayload
from harness.devices.contention import OTHERS_LIMIT_CORES, ContentionWindow
from harness.errors import HarnessError
from harness.matrix import load_matrix
from harness.run.execution import refuse_orphans
from harness.store import RunWriter, load_run, read_jsonl
from tests.conftest import only_run_dir, run_cli, tiny_matrix

pytestmark = [pytest.mark.faults]


def _stalls_mid_message(payload, conn) -> None:
    """A child stopped midway through a large message: the header promises 84 KB, 1 KB arrives."""
    os.write(conn.fileno(), struct.pack("!i", 84_000) + b"\x80" * 1000)
    time.sleep(600)


def _payload(tmp_path: Path) -> CellPayload:
    cell = load_matrix(tiny_matrix(tmp_path)).cells("laptop")[0]
    return CellPayload(cell, "run-1", "attempt-1", tmp_path / "none.gguf", None, {}, None, None,
                       False, RuntimeSettings(), 400.0, "test")


def test_timeout_fires_while_a_message_is_half_received(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "cell_main", _stalls_mid_message)
    writer = RunWriter.create(tmp_path / "results", "run-1")
    done: dict = {}
    t = threading.Thread(target=lambda: done.update(
        out=launcher.run_cell_process(_payload(tmp_path), writer, timeout_s=1.0)), daemon=True)
    t.start()
    t.join(90)  # before: blocked in recv() until the child's 600 s sleep ended
    assert not t.is_alive(), "the parent waited in a pipe read past the cell's timeout"
    assert done["out"].failure["failure_kind"] == "timeout"
    assert not list((writer.dir / launcher.RUNNING_DIR).glob("*.pid"))  # the mark is cleared


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])


def _mark(run_dir: Path, pid: int, start_ticks: int | None, cell_id: str = "c1") -> Path:
    d = run_dir / launcher.RUNNING_DIR
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{cell_id}.pid").write_text(json.dumps({"pid": pid, "start_ticks": start_ticks,
                                                   "cell_id": cell_id}))
    return d / f"{cell_id}.pid"


def test_resume_refuses_while_an_orphan_of_the_run_is_alive(tmp_path):
    orphan = _sleeper()
    try:
        _mark(tmp_path, orphan.pid, launcher._start_ticks(orphan.pid))
        with pytest.raises(HarnessError, match=rf"pid {orphan.pid} \(cell c1\).*kill {orphan.pid}"):
            refuse_orphans(tmp_path)
        reused = _mark(tmp_path, orphan.pid, -1, "c2")  # same pid, another process: not ours
        with pytest.raises(HarnessError) as e:
            refuse_orphans(tmp_path)
        assert "c2" not in str(e.value) and not reused.exists()
    finally:
        orphan.kill()
        orphan.wait()
    refuse_orphans(tmp_path)  # dead: its stale mark is removed, nothing refused
    assert not list((tmp_path / launcher.RUNNING_DIR).glob("*.pid"))


def test_contention_window_flags_other_processes_from_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "proc" / "stat"
    stat.parent.mkdir()
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    hz = os.sysconf("SC_CLK_TCK")

    def busy(ticks: int) -> None:
        stat.write_text(f"cpu  {ticks} 0 0 100000 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")

    busy(1000)
    w = ContentionWindow().start()
    time.sleep(0.3)
    busy(1000 + 4 * hz)  # four core-seconds of someone else's work in a fraction of a second
    assert w.others_cores() > OTHERS_LIMIT_CORES
    assert "shared cores" in w.warning("repetition 0")
    busy(5000)
    quiet = ContentionWindow().start()
    time.sleep(0.1)
    assert quiet.warning("repetition 1") is None  # the machine did no more than this process
    stat.unlink()
    assert ContentionWindow().start().warning("repetition 2") is None  # unknown: nothing claimed


TWO = """
  - {name: first, kind: generation, prompt: chat_short, max_tokens: 2}
  - {name: second, kind: generation, prompt: chat_short, max_tokens: 2}
"""


def _first_done(results: Path) -> bool:
    rows = [r for f in results.glob("*/records.jsonl") for r in read_jsonl(f)[0]]
    return any(r.get("record_type") == "cell_summary" and r.get("workload") == "first" for r in rows)


def _child_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.e2e
def test_child_dies_with_its_parent_and_resume_checks_for_orphans(tmp_path):
    m = tiny_matrix(tmp_path, workloads=TWO)
    fault = {"workload": "second", "stage": "after_load", "action": "hang"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(m), "--no-report"],
                            env=dict(os.environ, HARNESS_FAULT=json.dumps(fault)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    results, t0 = tmp_path / "results", time.monotonic()
    marks: list[Path] = []
    while not (marks and _first_done(results)):  # the first cell's mark is cleared before its summary
        if time.monotonic() - t0 > 240 or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the second cell never started: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
        marks = list(results.glob(f"*/{launcher.RUNNING_DIR}/*.pid")) if results.exists() else []
    child = json.loads(marks[-1].read_text())["pid"]
    time.sleep(1.0)  # hanging in its child now
    os.kill(proc.pid, signal.SIGKILL)  # the parent only, as a crash of the harness would
    proc.communicate(timeout=30)
    t0 = time.monotonic()
    while _child_alive(child) and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    assert not _child_alive(child), "the cell process outlived its parent"

    run_dir = only_run_dir(results)
    orphan = _sleeper()  # stands in for an orphan that survived (no PR_SET_PDEATHSIG elsewhere)
    try:
        _mark(run_dir, orphan.pid, launcher._start_ticks(orphan.pid), "x")
        r = run_cli("run", "--resume", str(run_dir), "--quiet", "--no-report")
        assert r.returncode == 2 and f"pid {orphan.pid}" in r.stderr, r.stderr
    finally:
        orphan.kill()
        orphan.wait()
    r = run_cli("run", "--resume", str(run_dir), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    assert sorted(s["workload"] for s in load_run(run_dir).summaries) == ["first", "second"]


@pytest.mark.e2e
def test_a_second_benchmark_on_the_cores_is_flagged(tmp_path):
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        m = tiny_matrix(tmp_path, workloads="""
          - {name: chat, kind: generation, prompt: chat_short, max_tokens: 16}
        """, repetitions=2)
        r = run_cli("run", str(m), "--quiet", "--no-report")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert r.returncode == 0, r.stderr
    run = load_run(only_run_dir(tmp_path / "results"))
    assert any("shared cores" in w for w in run.summaries[0]["warnings"])
