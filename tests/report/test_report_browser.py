"""The generated page in a real headless Chromium: renders, stays offline, sorts, no errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.report import write_report

pytest.importorskip("matplotlib", reason="charts need the [report] extra (matplotlib)")
pytest.importorskip("websocket", reason="the browser test drives CDP with websocket-client "
                                        "(pip install websocket-client)")
from report_cdp import Browser, ensure_chromium  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "results"
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary, why = ensure_chromium()
    if binary is None:
        pytest.skip(why)
    b = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        for domain in ("Page", "Runtime", "Network", "Log"):
            b.send(f"{domain}.enable")
        b.send("Emulation.setDeviceMetricsOverride", width=1280, height=1600,
               deviceScaleFactor=1, mobile=False)
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    """The fixture report, copied next to its runs so relative audit links resolve."""
    work = tmp_path_factory.mktemp("browser")
    shutil.copytree(FIXTURE, work / "results")
    out = work / "reports" / "fixture.html"
    write_report([work / "results"], out, {"max_hallucination_rate": 0.4})
    browser.send("Page.navigate", url=out.as_uri())
    browser.wait_for("Page.loadEventFired")
    return browser, out


def test_page_renders_offline_without_errors(page):
    b, out = page
    assert b.evaluate("document.title") == "edgebench report"
    assert b.evaluate("document.querySelectorAll('section h2').length") == 7
    assert b.evaluate("document.querySelectorAll('svg').length") >= 4
    # the charts have laid out with a real size (an SVG error would leave them empty)
    assert b.evaluate("document.querySelector('figure svg').getBoundingClientRect().width") > 200
    assert b.evaluate("document.body.innerText").count("Best per device") >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    b.screenshot(ARTIFACTS / "report-top.png")
    urls = b.requests()
    assert urls, "the navigation itself should have been seen"
    assert all(u == out.as_uri() for u in urls), f"unexpected requests: {urls}"
    assert b.console_errors() == []


def test_clicking_a_header_sorts_the_table(page):
    b, _ = page
    col = ("Array.prototype.indexOf.call(t.tHead.rows[0].cells, "
           "Array.prototype.find.call(t.tHead.rows[0].cells, h => h.textContent.startsWith('Energy / decode token')))")
    values = ("(() => { const t = document.querySelector('#devices table.sortable'); const c = " + col +
              "; return Array.prototype.map.call(t.tBodies[0].rows, "
              "r => parseFloat(r.cells[c].getAttribute('data-sort'))); })()")
    before = b.evaluate(values)
    assert before != sorted(before), "fixture rows should start unsorted by energy"
    rect = b.evaluate("(() => { const t = document.querySelector('#devices table.sortable'); "
                      "t.scrollIntoView(); const h = t.tHead.rows[0].cells[" + col + "]; "
                      "const r = h.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    b.click(*rect)
    after = b.evaluate(values)
    assert after == sorted(before)
    b.click(*rect)
    assert b.evaluate(values) == sorted(before, reverse=True)
    b.screenshot(ARTIFACTS / "report-sorted.png")
    assert b.console_errors() == []


def test_hostile_strings_do_not_run(browser, tmp_path):
    from report_runs import HOSTILE, write_run

    write_run(tmp_path / "results", "hostile", model=HOSTILE, output_text=HOSTILE)
    out = tmp_path / "hostile.html"
    write_report([tmp_path / "results"], out)
    browser.events.clear()
    browser.send("Page.navigate", url=out.as_uri())
    browser.wait_for("Page.loadEventFired")
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.body.innerText").count("window.__pwned=1") >= 2
    assert browser.requests() == [out.as_uri()]  # an injected <img src=x> would add a request
    assert browser.console_errors() == []
