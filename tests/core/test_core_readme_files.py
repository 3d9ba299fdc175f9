"""The README's list of what a run writes is what `run` writes (issue 17: it once listed a
`summary.csv` the run never wrote and left out the `matrix.yaml` copy)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, only_run_dir, run_cli

pytestmark = pytest.mark.e2e

CELL_ID = r"[0-9a-f]{12}"


def readme_run_files() -> dict[str, str]:
    """Entries of "What a run writes": top-level name -> the pattern of its files ('' for a file)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## What a run writes", 1)[1].split("\n## ", 1)[0]
    out: dict[str, str] = {}
    for line in section.splitlines():
        head = re.match(r"- ((?:`[^`]+`(?:, )?)+)", line)  # the names a bullet starts with
        if head is None:
            continue
        for name in re.findall(r"`([^`]+)`", head.group(1)):
            top, _, rest = name.partition("/")
            out[top] = re.escape(rest).replace(re.escape("<cell_id>"), CELL_ID) if rest else ""
    return out


def test_the_readme_lists_the_run_folder_files():
    listed = readme_run_files()
    assert {"manifest.json", "matrix.yaml", "records.jsonl", "traces", "samples", "outputs",
            "report.html", "report.md", "report.csv"} <= set(listed)
    assert "summary.csv" not in listed


def test_a_real_run_writes_exactly_what_the_readme_lists(tmp_path, matrix_factory):
    m = matrix_factory(energy="{sensor: estimate, rate_hz: 20, baseline_s: 0.2}", workloads="""
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}
      - {name: book, kind: closed_book, samples: 2, max_tokens: 4}
    """)
    r = run_cli("run", str(m), "--quiet")
    assert r.returncode == 0, r.stderr
    run = only_run_dir(tmp_path / "results")
    listed = readme_run_files()
    written = {p.name for p in run.iterdir() if not p.name.startswith(".")}
    assert written == set(listed), f"README lists {sorted(listed)}, the run wrote {sorted(written)}"
    for top, pattern in listed.items():
        path = run / top
        if not pattern:
            assert path.is_file() and path.stat().st_size > 0, top
            continue
        names = [p.name for p in path.iterdir()]
        assert names and all(re.fullmatch(pattern, n) for n in names), (top, names)
    assert (run / "matrix.yaml").read_bytes() == m.read_bytes()
