"""Golden tests: the report is a pure function of the results table.

The Markdown and CSV are compared whole; the HTML is compared as its visible text (charts,
style and script left out, so a matplotlib upgrade does not churn the golden file) plus
structural checks. Regenerate after an intended change with:
    UPDATE_GOLDEN=1 python -m pytest tests/report/test_report_golden.py
and review the diff of tests/fixtures/results/expected/.
"""
from __future__ import annotations

import csv
import io
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import render_all, tables
from harness.report.tables import Constraints

pytest.importorskip("matplotlib", reason="charts need the [report] extra (matplotlib)")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results"
EXPECTED = FIXTURE / "expected"
OUT = FIXTURE / "report.html"  # never written: only fixes where relative links point from


class _Text(HTMLParser):
    """Visible text, one line per block element; svg/style/script skipped."""

    SKIP = {"svg", "style", "script", "title"}
    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "li", "tr", "dt", "summary", "section", "pre"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th", "dd"):
            self.parts.append(" | ")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(page: str) -> str:
    p = _Text()
    p.feed(page)
    lines = (" ".join(line.split()) for line in "".join(p.parts).split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


@pytest.fixture(scope="module")
def files():
    table = tables.load_results([FIXTURE])
    out = render_all(table, OUT, Constraints.from_dict({"max_hallucination_rate": 0.4}))
    return {p.suffix: text for p, text in out.items()}


def _golden(name: str, actual: str) -> None:
    path = EXPECTED / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 once and review it"
    assert actual == path.read_text(encoding="utf-8")


def test_markdown_golden(files):
    _golden("report.md", files[".md"])


def test_csv_golden(files):
    _golden("report.csv", files[".csv"])


def test_html_visible_text_golden(files):
    # the page states its own size, which the inline SVG (matplotlib's version) changes
    text = re.sub(r"this page: [0-9.]+ [kM]B", "this page: (size)", visible_text(files[".html"]))
    _golden("report.txt", text)


def test_page_states_its_size(files):
    page = files[".html"]
    kb = float(re.search(r"this page: ([0-9.]+) kB", page).group(1))
    assert abs(kb - len(page.encode()) / 1e3) <= 0.5


def test_rendering_is_deterministic():
    table = tables.load_results([FIXTURE])
    c = Constraints.from_dict({"max_hallucination_rate": 0.4})
    assert render_all(table, OUT, c) == render_all(tables.load_results([FIXTURE]), OUT, c)


def test_html_structure(files):
    page = files[".html"]
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == ["headline", "devices", "levels", "quality", "traces", "failed", "methods"]
    # self-contained: no external resource of any kind
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "@import" not in page and not re.search(r"url\((?!#)", page)  # only in-page clip paths
    # the only URLs are XML namespace names (never fetched)
    assert len(re.findall(r"https?://", page)) == len(re.findall(r'xmlns(:\w+)?="https?://', page))
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    # two Pareto charts per device (matplotlib) and one trace per generation cell
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 720 190"') == 7
    assert len(re.findall(r"<figure><svg", page)) == 4
    assert page.count('class="sortable"') >= 6
    # relative links into the audit files, next to the run they belong to
    links = re.findall(r'href="([^"#]+\.jsonl)"', page)
    assert len(links) == 7 and all(not l.startswith("/") for l in links)
    assert all((OUT.parent / l).exists() for l in links)


def test_every_energy_figure_says_how_it_was_obtained(files):
    page = files[".html"]
    assert page.count(">measured · ina3221_hwmon<") >= 8  # 4 table rows + 4 traces (+ headline)
    assert page.count(">estimated · cpu-tdp-linear (rpi5: 2.7-7.2 W)<") >= 6
    rows = list(csv.DictReader(io.StringIO(files[".csv"])))
    assert {r["energy"] for r in rows} == {"measured (ina3221_hwmon, module_rails)",
                                           "estimated (cpu-tdp-linear (rpi5: 2.7-7.2 W))"}
    assert all(r["energy_method"] in ("measured", "estimated") for r in rows)


def test_flags_failures_and_warnings_are_shown(files):
    text = visible_text(files[".html"])
    assert "requantized from Q4_K_M" in text
    assert 'title="quality cannot exceed the Q4_K_M source"' in files[".html"]
    assert "throttled" in text and "emulated" in text.lower()
    assert "out of memory while loading (peak RSS 7.4 GB of 7.6 GB)" in text
    assert "last line is incomplete or corrupt (torn write?)" in text
    md = files[".md"]
    assert "requantized from Q4\\_K\\_M (quality cannot exceed the source)" in md
    assert "Failed cells (1)" in md and "torn write" in md
