"""Writers for check verdicts: a terminal table, Markdown (PR comments), JUnit XML (CI systems).

All three are pure functions of the verdict list, so what CI shows is exactly what was decided.
"""
from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Callable

from .verdict import INCONCLUSIVE, NO_DATA, Verdict

COLUMNS = ("check", "cell", "metric", "expected", "measured", "95% CI", "status", "notes")


def _cells(v: Verdict) -> tuple[str, ...]:
    return (v.group, v.cell, v.metric, v.expected, v.measured, v.ci, v.label, "; ".join(v.notes))


def summary_line(verdicts: list[Verdict]) -> str:
    broken = sum(v.breaks for v in verdicts)
    counts = Counter(v.status for v in verdicts)
    parts = [f"{len(verdicts)} check(s)", f"{broken} broken"]
    parts += [f"{counts[s]} {s.replace('_', ' ')}" for s in (INCONCLUSIVE, NO_DATA) if counts[s]]
    verdict = "FAILED" if broken else "OK"
    return f"{verdict}: " + ", ".join(parts)


def format_table(verdicts: list[Verdict]) -> str:
    """Plain aligned text; the notes column is last so long notes do not push numbers around."""
    rows = [COLUMNS] + [_cells(v) for v in verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n" + summary_line(verdicts) + "\n"


_MD_PUNCT = "\\`*_[]()!#~|"  # Markdown syntax that could start emphasis, code, a link or an image


def visible_controls(text: str) -> str:
    """Every control, format or line/paragraph separator character as a visible ⟨U+XXXX⟩.

    Names come from matrices and run folders made elsewhere: a newline in a model name must not
    start a new line of the comment (a forged "OK" summary), and invisible characters (bidi
    overrides, zero-width) must not disguise what a name says.
    """
    return "".join(f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c) in _CONTROL_CATEGORIES else c
                   for c in text)


_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _md_escape(text: str) -> str:
    """Text as literal Markdown inline text: no HTML, no link, image, emphasis or new line."""
    s = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = "".join("\\" + c if c in _MD_PUNCT else c for c in s)
    return visible_controls(s)


def to_markdown(verdicts: list[Verdict], title: str) -> str:
    """A table of every check, broken ones first, ready to paste into a PR comment."""
    ordered = sorted(verdicts, key=lambda v: (not v.breaks, v.status != INCONCLUSIVE))
    out = [f"## {_md_escape(title)}", "", f"**{summary_line(verdicts)}**", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for v in ordered:
        cells = [_md_escape(c) for c in _cells(v)]
        cells[6] = f"**{cells[6]}**" if v.breaks else cells[6]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _xml_safe(text: str) -> str:
    """Characters XML 1.0 cannot hold at all (most C0 controls), shown as ⟨U+XXXX⟩.

    ElementTree escapes `<`, `&` and quotes but writes a raw \\x1b or \\x00, which makes the whole
    report unreadable for the CI system; tab and newline are legal and stay.
    """
    return "".join(f"⟨U+{ord(c):04X}⟩" if (ord(c) < 0x20 and c not in "\t\n\r")
                   or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" else c for c in text)


def to_junit(verdicts: list[Verdict], suite_name: str) -> str:
    """One <testcase> per verdict: <failure> when it breaks the build, <skipped> for allowed gaps."""
    return _junit(verdicts, _xml_safe(suite_name), _xml_safe)


def _junit(verdicts: list[Verdict], suite_name: str, x: Callable[[str], str]) -> str:
    root = ET.Element("testsuites", name="edgebench check")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(verdicts)),
                          failures=str(sum(v.breaks for v in verdicts)), errors="0",
                          skipped=str(sum(v.status == NO_DATA and not v.breaks for v in verdicts)))
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=x(f"{v.check}.{v.group}"),
                             name=x(v.test_name), time="0")
        detail = x(f"expected {v.expected}; measured {v.measured}; 95% CI {v.ci}; status {v.label}"
                   + (f"; {'; '.join(v.notes)}" if v.notes else ""))
        if v.breaks:
            failure = ET.SubElement(case, "failure", message=x(f"{v.metric}: {v.label}"), type=v.status)
            failure.text = detail
        elif v.status == NO_DATA:
            ET.SubElement(case, "skipped", message=detail)
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
