"""Report rendering on large results tables.

`test_bench_write_report`: 10 models x 8 levels x 3 devices x 4 workloads (960 cells).
`test_report_at_scale`: 100,000 repetition records (10,000 cells of 10 repetitions), the scale
issue 14 asks for: the report takes <= 10 s of CPU and <= 1 GB of peak RSS, measured in a fresh
process with resource.getrusage (CPU time, not wall time, so a busy CI host does not fail it;
on an idle host they agree), and the page states its size and pages its long tables.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require, write_results_table

REPORT_CPU_S_MAX = 10.0
REPORT_PEAK_RSS_BYTES_MAX = 2**30

MEASURE = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from harness.report import write_report
write_report([Path(sys.argv[1])], Path(sys.argv[2]))
wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime,
                  "peak_rss_bytes": u.ru_maxrss * 1024}))
"""


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
    benchmark.extra_info["cells"] = 10 * 8 * 3 * 4
    benchmark.extra_info["html_bytes"] = len(html.encode())


def test_bench_load_results(benchmark, large_run):
    report = require("harness.report", "load_results")
    table = benchmark(report.load_results, [large_run])
    assert table is not None


def test_report_at_scale(tmp_path):
    """100,000 repetitions: within the CPU-time and memory limits, a page that says its size."""
    require("harness.report", "write_report")
    run = write_results_table(tmp_path / "runs", n_models=25, n_devices=5, n_workloads=10,
                              repetitions=10)
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(run), str(out)], check=True,
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    page = out.read_text(encoding="utf-8")
    page_mb = len(page.encode()) / 1e6
    print(f"100k repetitions / 10k cells: {got['wall_s']:.1f} s wall, {got['cpu_s']:.1f} s CPU, "
          f"peak RSS {got['peak_rss_bytes'] / 2**20:.0f} MiB, page {page_mb:.1f} MB")
    assert f"this page: {page_mb:.1f} MB" in page
    assert 'data-page="100"' in page
    # 5,000 dominated configurations per Pareto chart are shaded by count, and the chart says so
    assert "shaded by count" in page
    assert got["cpu_s"] <= REPORT_CPU_S_MAX, got
    assert got["peak_rss_bytes"] <= REPORT_PEAK_RSS_BYTES_MAX, got
