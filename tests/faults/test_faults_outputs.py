"""Hostile names from run folders made elsewhere stay inert text in every output format.

Provoked with the strings the fault probe used: a model name with newlines that forged an "OK"
line, a remote image and a link in the PR comment; `=HYPERLINK(` in report.csv; `$...$` that
crashed matplotlib's mathtext; NaN/inf power in the SVG trace.
"""
from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET

import pytest

from harness.budgets.output import to_junit, to_markdown
from harness.budgets.verdict import Verdict
from harness.report.csvout import _cell, text_cell
from harness.report.markdown import md

pytestmark = [pytest.mark.faults]

FORGED = ("tiny\nOK: 1 check(s), 0 broken\n![x](https://evil.example/pixel.png)"
          " [click](https://evil.example) <img src=x>\x1b[31m\u202e\x00")


def _verdict(name: str) -> Verdict:
    return Verdict("budget", "speed", name, "decode_tokens_per_s", ">= 10", "5", "[4, 6]",
                   "fail", True, notes=(name,))


def test_check_markdown_cannot_forge_lines_images_or_links():
    text = to_markdown([_verdict(FORGED)], title=FORGED)
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith("OK") or ln.startswith("**OK")] == []
    assert sum("OK: 1 check\\(s\\)" in ln for ln in lines) == 2  # title line and row: as text
    assert "**FAILED: 1 check(s), 1 broken**" in lines
    assert "![" not in text and "](" not in text and "<img" not in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", text)
    assert "⟨U+000A⟩" in text and "⟨U+202E⟩" in text  # shown, not swallowed
    row = next(ln for ln in lines if ln.startswith("| speed"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 9  # 8 columns: no cell broke out


def test_check_junit_is_well_formed_xml_with_control_characters():
    xml = to_junit([_verdict(FORGED)], suite_name=FORGED)
    root = ET.fromstring(xml.split("?>", 1)[1])  # parses: no raw \x00 or \x1b
    case = root.find("testsuite/testcase")
    assert "<img src=x>" in case.get("name") or "<img src=x>" in case.find("failure").text
    assert "⟨U+0000⟩" in case.find("failure").text


def test_report_markdown_cell_cannot_start_a_line_or_embed():
    s = md(FORGED)
    assert "\n" not in s and "<img" not in s
    assert not re.search(r"(?<!\\)\[", s)  # no unescaped [: no link, no image
    assert not re.search(r"[\x00-\x1f\u202e]", s)


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_text_cells_that_look_like_formulas_are_quoted(lead):
    name = lead + 'HYPERLINK("https://evil.example","x")'
    buf = io.StringIO()
    csv.writer(buf).writerow([_cell(name), _cell(-1.5), _cell(-3), _cell(0.25)])
    cells = next(csv.reader(io.StringIO(buf.getvalue())))
    assert cells[0] == "'" + name
    assert cells[1:] == ["-1.5", "-3", "0.25"]  # numbers stay numbers, negative ones too
    assert text_cell("plain name") == "plain name"


def test_report_csv_and_md_of_a_run_with_a_hostile_model_name(tmp_path):
    pytest.importorskip("matplotlib")
    from harness.report import render_all, tables
    from harness.report.tables import Constraints
    from tests.report.report_runs import write_run

    hostile = '=HYPERLINK("https://evil.example")\nOK: 1 check(s), 0 broken $\\frac{1}{$'
    write_run(tmp_path / "results", "run-1", model=hostile)
    out = render_all(tables.load_results([tmp_path / "results"]), tmp_path / "r.html", Constraints())
    by_suffix = {p.suffix: text for p, text in out.items()}
    rows = list(csv.DictReader(io.StringIO(by_suffix[".csv"])))
    assert rows and all(r["model"].startswith("'=") for r in rows)
    assert not [ln for ln in by_suffix[".md"].splitlines() if ln.startswith("OK")]


def test_mathtext_in_a_label_renders_literally():
    pytest.importorskip("matplotlib")
    from harness.report import charts

    label = "gemma $\\frac{1}{$ tokens"  # malformed mathtext: raised in matplotlib before
    pts = [{"label": label, "x": 0.1, "y": 10.0, "on_front": True},
           {"label": "other", "x": 0.2, "y": 20.0, "on_front": False}]
    svg = charts.pareto_svg(pts, "energy_per_decode_token_j", "decode_tokens_per_s", True, False, label)
    assert "$\\frac{1}{$ tokens" in svg  # the text, as written


def test_svg_trace_with_nan_and_inf_power_has_flagged_gaps():
    from harness.report import charts

    seg = {"label": 0, "t_s": [0.0, 0.1, 0.2, 0.3, 0.4, float("nan")],
           "power_w": [5.0, float("nan"), 6.0, float("inf"), 7.0, 8.0],
           "phases": {"decode": [0.0, 0.4]}}
    svg = charts.trace_svg([seg], "trace")
    numbers = re.findall(r'(?:points|x|y|x1|x2|y1|y2|width|height)="([^"]*)"', svg)
    assert not [n for n in numbers if re.search(r"nan|inf", n, re.I)]
    assert 'class="gap-flag"' in svg and "3 sample(s) not a finite number" in svg
    assert svg.count("<polyline") == 3  # broken at each gap, never drawn through it
    assert svg.count("power not a number at") == 2  # a red tick where the time is known


def test_svg_threads_chart_flags_non_finite_figures():
    from harness.report import charts

    series = [{"label": "q4", "points": [{"x": 1, "y": 10.0}, {"x": 2, "y": math.nan},
                                         {"x": 4, "y": 30.0, "low": math.inf, "high": 31.0}]}]
    svg = charts.threads_svg(series, "decode_tokens_per_s", "threads")
    assert not re.search(r'="[^"]*(nan|inf)[^"]*"', svg, re.I)
    assert "1 figure(s) not a finite number" in svg
