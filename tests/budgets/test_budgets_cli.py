"""`python -m harness check`: exit codes, table, JUnit XML and Markdown outputs."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from budgets_runs import BASE_MANIFEST, cell, key
from harness.cli import main

BUDGETS = """
budgets:
  - name: energy
    max: {energy_per_decode_token_j: 0.05}
  - name: speed
    min: {decode_tokens_per_s: 20}
"""


@pytest.fixture
def good_run(make_run):
    return make_run("good", [cell(key(), {"energy_per_decode_token_j": [0.03, 0.031, 0.029],
                                          "decode_tokens_per_s": [40.0, 41.0, 39.0]})])


@pytest.fixture
def slow_run(make_run):
    return make_run("slow", [cell(key(), {"energy_per_decode_token_j": [0.03, 0.031, 0.029],
                                          "decode_tokens_per_s": [10.0, 11.0, 9.0]})])


def test_exit_0_when_every_budget_holds(good_run, budgets_file, capsys):
    assert main(["check", str(good_run), "--budgets", str(budgets_file(BUDGETS))]) == 0
    out = capsys.readouterr().out
    assert "energy_per_decode_token_j" in out and "<= 0.05 J/token" in out
    assert "[0.02752, 0.03248]" in out  # mean 0.03 +- t(2) * 0.001 / sqrt(3)
    assert out.strip().endswith("OK: 2 check(s), 0 broken")


def test_exit_1_when_a_budget_breaks(slow_run, budgets_file, capsys):
    assert main(["check", str(slow_run), "--budgets", str(budgets_file(BUDGETS))]) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 check(s), 1 broken" in out


@pytest.mark.parametrize("args, message", [
    (["--budgets", "{missing}"], "file not found"),
    (["--budgets", "{bad}"], "budgets[0].max.ttft"),
    ([], "needs --budgets"),
    (["--baseline", "{nowhere}"], "not a run directory"),
    (["--baseline", "{run}", "--tolerance", "5"], "ambiguous"),
    (["--baseline", "{run}", "--metrics", "joules"], "unknown joules"),
])
def test_exit_2_on_bad_input(good_run, budgets_file, tmp_path, capsys, args, message):
    paths = {"missing": str(tmp_path / "none.yaml"), "nowhere": str(tmp_path / "nowhere"),
             "bad": str(budgets_file("budgets:\n  - max: {ttft: 1}\n")), "run": str(good_run)}
    argv = ["check", str(good_run)] + [a.format(**paths) for a in args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_exit_2_when_the_run_dir_is_not_a_run(tmp_path, budgets_file, capsys):
    assert main(["check", str(tmp_path), "--budgets", str(budgets_file(BUDGETS))]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_exit_2_on_mismatched_baseline_hardware(make_run, capsys):
    c = [cell(key(), {"ttft_s": [1.0, 1.0]})]
    base = make_run("base", c)
    cur = make_run("cur", c, {"device": {**BASE_MANIFEST["device"], "profile": "rpi5"}})
    assert main(["check", str(cur), "--baseline", str(base)]) == 2
    assert "different hardware" in capsys.readouterr().err


def test_baseline_regression_exits_1_and_noise_exits_0(make_run, capsys):
    base = make_run("base", [cell(key(), {"energy_gross_j": [10.0, 10.4, 9.7]})])
    same = make_run("same", [cell(key(), {"energy_gross_j": [10.1, 9.8, 10.3]})])
    twice = make_run("twice", [cell(key(), {"energy_gross_j": [20.0, 20.9, 19.5]})])
    assert main(["check", str(same), "--baseline", str(base), "--tolerance", "5%"]) == 0
    assert main(["check", str(twice), "--baseline", str(base), "--tolerance", "5%"]) == 1
    out = capsys.readouterr().out
    assert "at most 5% worse than baseline" in out
    assert "10.03 J -> 20.13 J (+100.7%, worse)" in out


def test_junit_has_one_testcase_per_check_with_failures_marked(slow_run, budgets_file, tmp_path):
    xml_path = tmp_path / "out.xml"
    budgets = BUDGETS + "  - {name: typo, match: {model: nope}, max: {ttft_s: 1}}\n"
    rc = main(["check", str(slow_run), "--budgets", str(budgets_file(budgets)),
               "--junit", str(xml_path)])
    assert rc == 1
    suite = ET.parse(xml_path).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["budget.energy", "budget.speed", "budget.typo"]
    failed = {c.get("classname") for c in cases if c.find("failure") is not None}
    assert failed == {"budget.speed", "budget.typo"}
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    speed = cases[1].find("failure")
    assert "expected >= 20 tokens/s; measured 10 tokens/s" in speed.text


def test_junit_marks_allowed_gaps_as_skipped(good_run, budgets_file, tmp_path):
    xml_path = tmp_path / "out.xml"
    budgets = BUDGETS + "  - {name: typo, match: {model: nope}, max: {ttft_s: 1}}\n"
    rc = main(["check", str(good_run), "--budgets", str(budgets_file(budgets)),
               "--junit", str(xml_path), "--allow-unmatched"])
    assert rc == 0
    suite = ET.parse(xml_path).getroot().find("testsuite")
    assert suite.get("skipped") == "1" and suite.get("failures") == "0"
    assert suite.findall("testcase")[2].find("skipped") is not None


def test_markdown_lists_broken_checks_first(slow_run, budgets_file, tmp_path):
    md = tmp_path / "out.md"
    main(["check", str(slow_run), "--budgets", str(budgets_file(BUDGETS)), "--markdown", str(md)])
    lines = md.read_text().splitlines()
    assert lines[0] == "## edgebench check: slow"
    assert "**FAILED: 2 check(s), 1 broken**" in lines
    rows = [line for line in lines if line.startswith("| speed") or line.startswith("| energy")]
    assert rows[0].startswith("| speed") and "**FAIL**" in rows[0]
    assert "&lt;= 0.05 J/token" in rows[1]  # escaped so the table cannot break


def test_require_measured_via_cli(make_run, budgets_file):
    est = make_run("est", [cell(key(), {"energy_per_decode_token_j": [0.01, 0.01, 0.01],
                                        "decode_tokens_per_s": [40.0, 40.0, 40.0]},
                                method="estimated", sensor="estimate", energy_model="tdp")])
    f = str(budgets_file(BUDGETS))
    assert main(["check", str(est), "--budgets", f]) == 0
    assert main(["check", str(est), "--budgets", f, "--require-measured"]) == 1


def test_module_entry_point_exit_codes(good_run, slow_run, budgets_file):
    f = str(budgets_file(BUDGETS))
    root = Path(__file__).resolve().parents[2]

    def rc(run_dir: Path) -> int:
        return subprocess.run([sys.executable, "-m", "harness", "check", str(run_dir), "--budgets",
                               f, "--quiet"], cwd=root, capture_output=True, timeout=60).returncode
    assert (rc(good_run), rc(slow_run)) == (0, 1)


def test_a_folder_with_exactly_one_run_is_accepted(good_run, make_run, budgets_file, capsys):
    f = str(budgets_file(BUDGETS))
    assert main(["check", str(good_run.parent), "--budgets", f]) == 0
    make_run("second", [cell(key(), {"ttft_s": [1.0]})])
    assert main(["check", str(good_run.parent), "--budgets", f]) == 2
    assert "holds 2 runs (good, second); name the one to check" in capsys.readouterr().err


def test_a_run_still_being_written_is_checked_with_a_warning(good_run, budgets_file, capsys):
    (good_run / ".lock").write_text('{"pid": 1, "host": "elsewhere"}')
    assert main(["check", str(good_run), "--budgets", str(budgets_file(BUDGETS))]) == 0
    assert "is locked: a run is still writing it" in capsys.readouterr().err
