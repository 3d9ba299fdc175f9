"""One unit per figure (issue 17): peak memory is MiB (2^20 bytes) in the terminal table, the
page, the Markdown, `check` and the report's memory bound; the CSV keeps bytes and says so. The
terminal table explains every mark it shows."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from harness.budgets import check_budgets, load_budgets
from harness.report import tables, write_report
from harness.report.terminal import LEGEND, results_table_text
from harness.store import load_run

from merge_runs import BOOK, finish_book, finish_gen, interrupt, new_run



def _run(tmp_path):
    w = new_run(tmp_path / "results", "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)  # peak RSS 380 MiB (+0..2 bytes)
    finish_book(w, "run-1", "a2", 0.5)
    return w.dir


def test_peak_memory_is_mib_everywhere(tmp_path):
    run = _run(tmp_path)
    t = tables.load_results([run])
    term = results_table_text(t)
    assert "peak_MiB" in term.splitlines()[0] and "MiB (2^20 bytes)" in term
    gen = next(line for line in term.splitlines() if "chat-short" in line)
    assert re.search(r"\b380±0\b", gen)
    html, md, csv = write_report([run], tmp_path / "out" / "r.html")
    page, text, table = html.read_text(), md.read_text(), csv.read_text()
    assert "Peak memory (RSS) (MiB)" in page and ">380<" in page
    assert "Peak memory (RSS) (MiB)" in text and "| 380 " in text
    assert "peak_rss_bytes" in table.splitlines()[0]  # the CSV: record units, named
    for out in (page, text):  # no decimal megabytes or gigabytes anywhere but the page's own size
        assert not re.search(r"\d ?(MB|GB)\b|\(MB\)", re.sub(r"this page: [0-9.]+ [kM]B", "", out))
    assert "GiB RAM" in page
    budget = tmp_path / "b.yaml"
    budget.write_text("budgets:\n  - max: {peak_rss_bytes: 400MiB}\n")
    [v] = [v for v in check_budgets(load_run(run), load_budgets(budget)) if v.cell != "-"]
    assert v.expected == "<= 400.0 MiB" and v.measured == "380.0 MiB" and v.ci.endswith("MiB")


def test_the_memory_bound_of_the_report_is_mib(tmp_path):
    run = _run(tmp_path)
    base = [sys.executable, "-m", "harness", "report", str(run), "-o", str(tmp_path / "r.html")]
    done = subprocess.run(base + ["--max-peak-rss-mib", "379"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "No configuration meets the constraints" in (tmp_path / "r.html").read_text()
    done = subprocess.run(base + ["--max-peak-rss-mib", "381"], capture_output=True, text=True,
                          timeout=120)
    assert "No configuration meets the constraints" not in (tmp_path / "r.html").read_text()
    done = subprocess.run(base + ["--max-peak-rss-mb", "400"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "--max-peak-rss-mib 381.47" in done.stderr  # 400 MB written in MiB


def test_every_mark_the_terminal_table_shows_is_in_its_legend(tmp_path):
    w = new_run(tmp_path, "run-1", "2026-11-28T10:00:00Z")
    finish_gen(w, "run-1", "a1", 30.0)
    interrupt(w, "run-1", BOOK, "a2", "closed_book")
    t = tables.load_results([w.dir])
    t.cells[0].update(emulated=True, throttled=True, unstable=["decode_tokens_per_s"],
                      warnings=["w"])
    text = results_table_text(t)
    table, legend = text.split("\n\n")
    rows = table.splitlines()[1:]
    status_and_flags = " ".join(rows)
    for mark in ("ok !", "FAILED", "EMULATED", "throttled", "warning", "interrupted run",
                 "estimated", "±"):
        assert mark in status_and_flags, mark
        assert any(line.strip().startswith(mark) for line in legend.splitlines()), mark
    assert {m for m, _ in LEGEND} >= {"ok !", "FAILED", "EMULATED", "throttled", "warning",
                                       "interrupted run", "±"}
    assert legend.splitlines()[0].startswith("units: ")


@pytest.mark.parametrize("flag", ["EMULATED", "throttled"])
def test_a_plain_table_lists_no_mark_it_does_not_show(tmp_path, flag):
    run = _run(tmp_path)
    legend = results_table_text(tables.load_results([run])).split("\n\n")[1]
    assert flag not in legend
