"""Report rendering on a large results table (10 models x 8 levels x 3 devices x 4 workloads)."""
from __future__ import annotations

import pytest

from conftest import require, write_results_table


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    return write_results_table(tmp_path_factory.mktemp("results"), n_models=10, n_devices=3,
                               n_workloads=4)


def test_bench_write_report(benchmark, large_run, tmp_path):
    report = require("harness.report", "write_report")
    out = tmp_path / "report.html"
    written = benchmark.pedantic(report.write_report, args=([large_run], out), rounds=2,
                                 iterations=1)
    html = out.read_text()
    assert {p.name for p in written} == {"report.html", "report.md", "report.csv"}
    assert "model-9" in html and "Q2_K" in html
    assert "<b>answer</b>" not in html  # output text is escaped, never injected
    benchmark.extra_info["cells"] = 10 * 8 * 3 * 4
    benchmark.extra_info["html_bytes"] = len(html.encode())


def test_bench_load_results(benchmark, large_run):
    report = require("harness.report", "load_results")
    table = benchmark(report.load_results, [large_run])
    assert table is not None
