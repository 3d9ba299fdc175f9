"""Command-line flags a researcher types in either place: --debug and --quiet before or after the
subcommand, --version; and a failed cell's reason printed whole under the run's table."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

import harness
from harness.cli import build_parser
from harness.launcher import CellOutcome
from harness.records import CELL_FAILED, CellKey, make_record
from harness.run.execution import RunResult
from harness.run.flow import print_table
from tests.conftest import run_cli, tiny_matrix


# each subcommand with the positional arguments it requires
COMMANDS = {"run": [], "report": ["results/r1"], "check": ["results/r1"], "devices": [],
            "compress": ["model.gguf"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_and_quiet_before_or_after_the_subcommand(command, where):
    flags = ["--debug", "--quiet"]
    full = [command, *COMMANDS[command]]
    argv = flags + full if where == "before" else full + flags
    args = build_parser(argv).parse_args(argv)
    assert args.debug is True and args.quiet is True
    plain = build_parser(full).parse_args(full)
    assert plain.debug is False and plain.quiet is False


def test_run_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    m = tiny_matrix(tmp_path, levels="[Q4_K_MM]")
    r = run_cli("run", str(m), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "Q4_K_MM" in r.stderr


def test_version_prints_the_package_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"edgebench {harness.__version__}"


def test_a_failed_cell_reason_is_printed_whole_under_the_table(tmp_path):
    key = CellKey(model="gemma3-270m", level="Q4_K_M", runtime="llama_cpp", device="laptop",
                  power_mode=None, workload="closed-book", settings=())
    reason = ("samples: 1000 requested but closed_book.jsonl has only 438 items; set samples to at "
              "most 438 (workloads[1].samples)")
    failure = make_record(CELL_FAILED, "r1", key, attempt="a1", status="failed", reason=reason,
                          failure_kind="error", exit_code=1, stderr_tail="", n_repetitions_done=0,
                          elapsed_s=1.0)

    class _Cell:  # print_table reads only the cell's key
        pass

    cell = _Cell()
    cell.key = key
    out = io.StringIO()
    print_table(RunResult(Path(tmp_path), [(cell, CellOutcome(False, None, failure))], False), set(), out)
    assert f"FAILED {key.label()}: {reason}\n" in out.getvalue()
