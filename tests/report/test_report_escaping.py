"""Hostile strings from records (model names, model output, sample answers) stay text."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from html.parser import HTMLParser

import pytest

from harness.report import render_all, tables
from harness.report.html import SORT_JS
from harness.report.markdown import md
from harness.report.tables import Constraints

from report_runs import HOSTILE, write_run

pytest.importorskip("matplotlib", reason="charts need the [report] extra (matplotlib)")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def _tags(page: str) -> list[tuple[str, list]]:
    """Every element a browser would build (what matters, not how text looks)."""
    p = _Tags()
    p.feed(page)
    return p.tags


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    write_run(root / "results", "run-1", model=HOSTILE, output_text=HOSTILE,
              profile='dev"><script>alert(1)</script>')
    table = tables.load_results([root / "results"])
    out = render_all(table, root / "r.html", Constraints())
    return {p.suffix: text for p, text in out.items()}


def test_html_has_no_live_markup_from_records(rendered):
    page = rendered[".html"]
    assert "<script>window.__pwned" not in page
    assert "<img src=x" not in page
    assert "<script>alert(1)" not in page
    tags = _tags(page)
    assert not [(t, a) for t, attrs in tags for a, _ in attrs if a.startswith("on")]
    assert [t for t, _ in tags if t in ("script", "img", "iframe", "object", "embed")] == ["script"]
    # the text is there, escaped, in tables, excerpts, outputs and chart labels
    assert page.count("&lt;script&gt;window.__pwned=1&lt;/script&gt;") >= 4
    # exactly one script element: ours
    assert len(re.findall(r"<script\b", page)) == 1


def test_the_only_script_is_allowed_by_hash(rendered):
    page = rendered[".html"]
    digest = base64.b64encode(hashlib.sha256(SORT_JS.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    body = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    assert body == SORT_JS


def test_markdown_escapes_markup_and_table_pipes(rendered):
    text = rendered[".md"]
    assert "<script>" not in text and "<img" not in text
    for line in text.splitlines():
        if line.startswith("| ") and "Device" not in line:
            # cells: an unescaped | would add columns
            assert len(re.findall(r"(?<!\\)\|", line)) == 11  # 10 columns
    assert md("a|b*c_d`e") == "a\\|b\\*c\\_d\\`e"
    assert md("<b>\nx") == "&lt;b&gt; x"


def test_csv_round_trips_hostile_text(rendered):
    rows = list(csv.DictReader(io.StringIO(rendered[".csv"])))
    assert rows[0]["model"] == HOSTILE
