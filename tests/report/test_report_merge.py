"""Merges that never mislead (issue 17): overlapping runs, one of them abandoned mid-way."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.report import tables, write_report
from harness.report.terminal import results_table_text
from harness.store import LOCK_FILE, load_run

from merge_runs import BOOK, GEN, finish_book, finish_gen, interrupt, issue_sequence, new_run


def test_the_issue_sequence_uses_complete_figures_and_flags_the_abandoned_run(tmp_path):
    issue_sequence(tmp_path / "results")
    t = tables.load_results([tmp_path / "results"])
    by_workload = {c["workload"]: c for c in t.cells}
    # run-3 is the latest, but abandoned: run-2's complete figures are shown
    assert by_workload["chat-short"]["run_id"] == "run-2"
    assert by_workload["chat-short"]["decode_tokens_per_s"] == pytest.approx(32.0)
    assert by_workload["closed-book"]["run_id"] == "run-2"
    assert not any(c.get("interrupted_run") for c in t.cells)
    # closed-book finished in two runs: it is not a failed (interrupted) cell of the report
    assert t.failures == []
    assert any("run-3 (interrupted) and run-2 (complete); the complete run's figures are shown"
               in w for w in t.warnings)
    [note] = t.run_notes
    assert note.startswith("Run run-3 is interrupted (stopped by the user during 1 cell(s))")
    assert "holds 1 finished cell(s), 0 of them shown" in note
    assert "gemma3-270m Q4_K_M / closed-book (finished in run run-2)" in note


def test_the_page_markdown_and_terminal_say_it(tmp_path):
    issue_sequence(tmp_path / "results")
    html, md, csv = write_report([tmp_path / "results"], tmp_path / "out" / "r.html")
    page = html.read_text()
    assert "Interrupted runs" in page and "Run run-3 is interrupted" in page
    assert "Merging runs: When the same cell" in page  # the rule, in Methods
    assert "Status</dt><dd>interrupted (stopped by the user" in page
    assert page.count("Status</dt><dd>complete") == 2
    assert "No cell failed." in page
    text = md.read_text()
    assert "**Interrupted runs (1)**" in text and "0 failed" in text
    assert "interrupted" not in csv.read_text()
    terminal = results_table_text(tables.load_results([tmp_path / "results"]))
    assert "FAILED" not in terminal and "32.0" in terminal


def test_a_cell_only_an_interrupted_run_finished_is_shown_flagged(tmp_path):
    w = new_run(tmp_path, "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)
    interrupt(w, "run-1", BOOK, "a2", "closed_book")
    t = tables.load_results([w.dir])
    [cell] = t.cells
    assert cell["interrupted_run"] is True
    [failed] = t.failures  # it finished nowhere: listed, as what it is
    assert failed["failure_kind"] == "interrupted"
    assert "(finished in no run given)" in t.run_notes[0]
    assert "interrupted run" in results_table_text(t)


def test_a_resumed_run_that_finished_is_complete(tmp_path):
    w = new_run(tmp_path, "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)
    interrupt(w, "run-1", BOOK, "a2", "closed_book")
    finish_book(w, "run-1", "a3", 0.5)  # --resume: the cell's last final record wins
    state = load_run(w.dir).state
    assert state.complete and state.status == "complete"
    assert tables.load_results([w.dir]).run_notes == []


def test_a_run_cut_off_or_still_locked_is_not_complete(tmp_path):
    w = new_run(tmp_path, "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)
    state = load_run(w.dir).state
    assert state.complete
    (w.dir / LOCK_FILE).write_text("{}")
    assert "a .lock is left" in load_run(w.dir).state.evidence[0]
    (w.dir / LOCK_FILE).unlink()
    # killed mid-cell: repetitions of closed-book, no final record
    w.append({"schema_version": 2, "record_type": "repetition", "cell_id": BOOK.cell_id,
              "attempt": "a2", "repetition": 0, "hallucination_rate": 0.5})
    state = load_run(w.dir).state
    assert not state.complete and state.cells_cut == (BOOK.cell_id,)
    assert state.evidence == ("1 cell(s) cut off with no final record",)


def test_a_real_failure_of_a_cell_that_finished_elsewhere_is_noted_not_listed(tmp_path):
    from harness.records import CellFailed

    w = new_run(tmp_path, "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)
    w2 = new_run(tmp_path, "run-2", "2026-11-29T10:00:00Z")
    w2.append(CellFailed("run-2", GEN, "a1", reason="out of memory", failure_kind="oom",
                         exit_code=-9, stderr_tail="", n_repetitions_done=0,
                         elapsed_s=1.0).to_dict())
    t = tables.load_results([tmp_path])
    assert [c["run_id"] for c in t.cells] == ["run-1"] and t.failures == []
    assert any("failed in run run-2 (oom: out of memory) but finished in run run-1" in w
               for w in t.warnings)


def test_strict_refuses_equal_standing_overlaps_and_names_the_cells(tmp_path):
    issue_sequence(tmp_path / "results")
    with pytest.raises(HarnessError) as e:
        tables.load_results([tmp_path / "results"], strict=True)
    msg = str(e.value)
    assert msg.startswith("--strict: 2 cell(s) finished in more than one run of equal standing")
    assert "gemma3-270m Q4_K_M / chat-short · 2 threads on laptop (box-1) in runs run-1, run-2" in msg
    assert "closed-book · 2 threads on laptop (box-1) in runs run-1, run-2" in msg
    # complete vs interrupted is decided by the rule, not ambiguous: strict accepts it
    shutil.rmtree(tmp_path / "results" / "run-1")
    t = tables.load_results([tmp_path / "results"], strict=True)
    assert {c["run_id"] for c in t.cells} == {"run-2"}


def test_report_strict_exits_2_naming_the_cells(tmp_path):
    issue_sequence(tmp_path / "results")
    cmd = [sys.executable, "-m", "harness", "report", str(tmp_path / "results"), "--strict",
           "-o", str(tmp_path / "out" / "r.html")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "chat-short · 2 threads on laptop (box-1) in runs run-1, run-2" in done.stderr
    assert not (tmp_path / "out").exists()
    done = subprocess.run(cmd[:-3] + cmd[-2:], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_results_frames_keep_every_run_with_its_status(tmp_path):
    from harness import results

    issue_sequence(tmp_path / "results")
    cells = results.load([tmp_path / "results"], kind="cell")
    status = dict(zip(cells.run_id, cells.run_status))
    assert status == {"run-1": "complete", "run-2": "complete", "run-3": "interrupted"}
    reps = results.load([tmp_path / "results"])
    assert set(reps[reps.run_id == "run-3"].run_status) == {"interrupted"}
