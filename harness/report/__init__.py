"""Reports: runs -> one self-contained HTML page, a Markdown summary and a CSV (same stem).

`write_report` is what `python -m harness report` and the end of `python -m harness run` call.
"""
from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import Any

from ..errors import HarnessError, WriteError, write_cause, write_error
from .tables import Constraints, ResultsTable, load_results

__all__ = ["write_report", "render_all", "Constraints", "ResultsTable", "load_results"]


def render_all(table: ResultsTable, out_html: Path, constraints: Constraints,
               reference_level: str | None = None, title: str = "edgebench report") -> dict[Path, str]:
    """Pure: file path -> content for the HTML, Markdown and CSV files."""
    from .csvout import render_csv
    from .html import render_html
    from .markdown import render_markdown

    out_dir = out_html.parent
    return {
        out_html: render_html(table, out_dir, constraints, reference_level, title),
        out_html.with_suffix(".md"): render_markdown(table, constraints, out_html.name,
                                                     reference_level),
        out_html.with_suffix(".csv"): render_csv(table),
    }


@contextlib.contextmanager
def _collector_paused() -> Any:
    """Python's cycle collector off while records are read and the page is built.

    Parsed records are trees (no reference cycles), yet each collection of the oldest generation
    walks all of them: 100,000 records (~5 million objects) cost ~1.7 s of collections that free
    nothing. Reference counting still frees everything; cycles made meanwhile (matplotlib
    figures) are collected once the collector is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_report(run_dirs: list[Path], out_html: Path, constraints: dict[str, Any] | None = None,
                 reference_level: str | None = None, title: str = "edgebench report",
                 strict: bool = False) -> list[Path]:
    """Merge the runs and write <stem>.html, <stem>.md and <stem>.csv; returns the paths written.

    Overlapping runs merge by `tables.MERGE_RULE`; `strict` refuses (exit 2) a cell whose
    figures had to be chosen between runs of equal standing, before anything is written.

    Each file is written to a temporary name and renamed, so a report is never half written.
    """
    out_html = Path(out_html)
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise HarnessError(f"{out_html}: the report file must end in .html "
                           "(the .md and .csv files get the same stem)")
    parsed = Constraints.from_dict(constraints)
    with _collector_paused():
        table = load_results([Path(p) for p in run_dirs], strict=strict)
        files = render_all(table, out_html.resolve(), parsed, reference_level, title)
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        cause = "it is a file, not a folder" if isinstance(e, FileExistsError) else write_cause(e)
        raise WriteError(f"cannot write the report into {out_html.parent}: {cause}") from None
    return [_write_file(out_html.parent / path.name, text) for path, text in files.items()]


def _write_file(target: Path, text: str) -> Path:
    """Write to a temporary name and rename (never a half-written report); a failed write
    removes the temporary file and says which file and why, in one line."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise write_error(target, e) from None
    return target
