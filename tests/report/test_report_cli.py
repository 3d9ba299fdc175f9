"""`python -m harness report`: options, files written, exit codes."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError

from report_runs import HOST, write_run

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def test_report_writes_html_md_csv_with_the_constraint(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    shutil.copytree(FIXTURE, tmp_path / "results", ignore=shutil.ignore_patterns("expected", "*.py"))
    out = tmp_path / "reports" / "cmp.html"
    rc = main(["report", str(tmp_path / "results" / "2026-*"), "-o", str(out),
               "--max-hallucination-rate", "0.3"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out), str(out.with_suffix(".md")), str(out.with_suffix(".csv"))]
    md = out.with_suffix(".md").read_text()
    assert "hallucination rate ≤ 30 %" in md
    assert "jetson-orin-nano (orin-lab-1): **gemma3-270m Q8\\_0" in md
    assert not list(out.parent.glob(".*.tmp"))


def test_conflicting_runs_exit_2_with_the_reason(tmp_path, capsys):
    write_run(tmp_path / "a", "run-a")
    write_run(tmp_path / "b", "run-b", host=HOST | {"ram_bytes": 16_000_000_000})
    rc = main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "r.html")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "hardware differs" in err and "ram_bytes: 8000000000 vs 16000000000" in err
    assert not (tmp_path / "r.html").exists()


def test_output_must_be_an_html_file(tmp_path, capsys):
    write_run(tmp_path / "a", "run-a")
    assert main(["report", str(tmp_path / "a"), "-o", str(tmp_path / "r.pdf")]) == 2
    assert "must end in .html" in capsys.readouterr().err


def test_rate_outside_0_1_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path), "--max-hallucination-rate", "30"])
    assert e.value.code == 2
    assert "0.3 means 30%" in capsys.readouterr().err


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    from harness.report import charts

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(HarnessError, match=r"pip install edgebench\[report\]"):
        charts.pareto_svg([], "hallucination_rate", "energy_per_decode_token_j", True, True, "t")
