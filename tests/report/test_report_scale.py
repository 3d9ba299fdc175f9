"""A report over many cells stays usable: long tables page, traces beyond a few are links."""
from __future__ import annotations

from harness.report import Constraints, load_results, render_all
from harness.report import html as html_mod

from report_runs import write_run


def _page(tmp_path, monkeypatch, **limits):
    for name, value in limits.items():
        monkeypatch.setattr(html_mod, name, value)
    run = write_run(tmp_path / "runs", "r1")
    out = tmp_path / "report.html"
    files = render_all(load_results([run]), out, Constraints())
    return files[out], run


def test_short_tables_are_not_paged(tmp_path, monkeypatch):
    page, _ = _page(tmp_path, monkeypatch)
    assert "data-page=" not in page


def test_tables_longer_than_a_page_are_paged(tmp_path, monkeypatch):
    page, _ = _page(tmp_path, monkeypatch, PAGE_ROWS=0)
    assert 'data-page="0"' in page
    assert "'Show all '" in html_mod.SORT_JS  # the script that pages them is the hashed one


def test_traces_beyond_the_inline_limit_are_linked_not_drawn(tmp_path, monkeypatch):
    page, run = _page(tmp_path, monkeypatch, TRACES_INLINE=0)
    trace = next((run / "traces").glob("*.csv"))
    assert f'href="runs/r1/traces/{trace.name}"' in page
    assert "1 more cell(s)" in page and 'class="trace"' not in page
    inline, _ = _page(tmp_path / "b", monkeypatch, TRACES_INLINE=24)
    assert 'class="trace"' in inline and "more cell(s)" not in inline
