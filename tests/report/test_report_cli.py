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


def test_a_run_whose_cells_all_failed_still_reports(tmp_path):
    pytest.importorskip("matplotlib")
    from harness.records import CELL_FAILED, CellKey, make_record
    from harness.report import write_report
    from harness.store import RunWriter

    w = RunWriter.create(tmp_path / "res", "only-failed")
    w.write_manifest({"schema_version": 1, "run_id": "only-failed", "created_utc": "2026-11-23T10:00:00Z",
                      "host": HOST, "device": {"profile": "p"}, "energy": {}})
    w.append(make_record(CELL_FAILED, "only-failed", CellKey("m", "Q4_K_M", "llama_cpp", "p", None, "gen"),
                         attempt="a", status="failed", reason="model file truncated: re-download it",
                         failure_kind="error", exit_code=1, stderr_tail="<tail>"))
    html_path, md_path, csv_path = write_report([tmp_path / "res"], tmp_path / "r.html")
    assert "model file truncated: re-download it" in html_path.read_text()
    assert "&lt;tail&gt;" in html_path.read_text()
    assert "- no finished cells" in md_path.read_text()
    assert len(csv_path.read_text().splitlines()) == 1  # the header only


def test_without_a_quality_workload_nothing_qualifies_for_a_quality_bound(tmp_path):
    pytest.importorskip("matplotlib")
    import json

    from harness.report import write_report

    run = write_run(tmp_path / "r", "gen-only")
    recs = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs if r["workload"] == "gen"))
    html_path, md_path, _ = write_report([run], tmp_path / "r.html", {"max_hallucination_rate": 0.3})
    assert "none of 1 configurations meets the constraints (tiny Q4\\_K\\_M: no hallucination rate)" \
        in md_path.read_text()
    assert "no configuration has both metrics on this device" in html_path.read_text()
    assert "No quality workload in these runs." in html_path.read_text()
