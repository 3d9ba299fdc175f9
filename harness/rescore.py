"""Re-label saved quality answers with the current scoring rules.

Scoring rules improve (HaluEval's first rules called most wrong answers `other`); the answers a
run saved in `samples/<cell_id>.jsonl` do not change. Rescoring applies today's rules to them, so
old runs can be compared under new rules without re-running a model. It never overwrites: the
new samples and metrics go to `<run>/rescore/v<RULES_VERSION>/` (or a folder the caller names),
and an existing target is refused. Run folders are untrusted input: they are read through
harness.store.load_run and harness.runfiles (confined, size-capped reads).
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import HarnessError
from .runfiles import CELL_FILE_MAX_BYTES, cell_file, read_text_in_run, resolve_in_run
from .store import RunLock, dumps, load_run, parse_jsonl
from .workloads.quality.base import label_metrics
from .workloads.quality.grounded import Verdict
from .workloads.quality.scoring import RULES_VERSION, is_empty

RESCORE_DIR = "rescore"
SAMPLES_MAX_BYTES = 64 * 2**20  # a --samples file
# What a rescored row gets from the current rules; the old values are kept as `<field>_before`.
RELABELLED = ("label", "rule", "matched")
SUMMARY_METRICS = ("accuracy", "hallucination_rate", "hallucination_rate_attempted",
                   "abstention_rate", "unscorable_rate")


class Scorers:
    """The current rules of each rescorable kind, with its shipped items loaded on first use."""

    KINDS = ("closed_book", "halueval")

    def __init__(self, halueval_file: str | None = None) -> None:
        self._items: dict[str, dict[str, dict[str, Any]]] = {}
        self._halueval_file = halueval_file

    def items(self, kind: str, where: str = "") -> dict[str, dict[str, Any]]:
        if kind not in self.KINDS:
            raise HarnessError(f"{where}: kind {kind[:40]!r} cannot be rescored; rescorable "
                               f"kinds: {', '.join(self.KINDS)}")
        if kind not in self._items:
            if kind == "closed_book":
                from .workloads.quality import closed_book
                loaded = closed_book.load_items()
            else:
                from .workloads.quality import halueval
                loaded = halueval.load_items(self._halueval_file)
            self._items[kind] = {it["id"]: it for it in loaded}
        return self._items[kind]

    def verdict(self, kind: str, item_id: object, output: object, question: object = None,
                where: str = "") -> Verdict:
        """The current label of `output` for the shipped item `item_id` of `kind`."""
        item = self.items(kind, where).get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise HarnessError(f"{where}: id {str(item_id)[:80]!r} is not an item of the shipped "
                               f"{kind} data set")
        if question is not None and question != item["question"]:
            raise HarnessError(f"{where}: id {item_id} asks {str(question)[:80]!r} in the run but "
                               f"{item['question'][:80]!r} in the shipped data set (another "
                               "data file?); not rescored")
        if not isinstance(output, str):
            raise HarnessError(f"{where}: output of {item_id} is not a string")
        return self._label(kind)(item, output)

    @staticmethod
    def _label(kind: str) -> Callable[[dict[str, Any], str], Verdict]:
        if kind == "closed_book":
            from .workloads.quality import closed_book
            return closed_book.verdict
        from .workloads.quality import halueval
        return halueval.label_answer


# ---- --samples FILE -----------------------------------------------------------------------------

def rescore_rows(path: Path, scorers: Scorers) -> Iterable[dict[str, Any]]:
    """One result per JSONL row {kind, id, output}: the row plus label, rule and matched."""
    if not path.is_file():
        raise HarnessError(f"{path}: no such file (--samples takes a JSONL of {{kind, id, output}})")
    if path.stat().st_size > SAMPLES_MAX_BYTES:
        raise HarnessError(f"{path}: above the {SAMPLES_MAX_BYTES:,}-byte limit for --samples")
    for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {n}"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise HarnessError(f"{where}: not JSON ({e})") from None
        if not isinstance(row, dict) or not {"kind", "id", "output"} <= row.keys():
            raise HarnessError(f"{where}: a row is an object with kind, id and output")
        v = scorers.verdict(str(row["kind"]), row["id"], row["output"], where=where)
        yield {"kind": row["kind"], "id": row["id"], "output": row["output"], "label": v.label,
               "rule": v.rule, "matched": v.matched}


# ---- a run folder -------------------------------------------------------------------------------

@dataclass
class CellRescore:
    """One quality cell's answers under the current rules."""

    cell_id: str
    dims: dict[str, Any]
    kind: str
    rows: list[dict[str, Any]]
    metrics: dict[int, dict[str, float]]  # per repetition
    metrics_before: dict[int, dict[str, Any]]
    changed: int
    warnings: list[str] = field(default_factory=list)


def rescore_run(run_dir: Path, scorers: Scorers, skipped: list[str] | None = None) -> list[CellRescore]:
    """Every closed_book / halueval cell of a run, relabelled (nothing written). A cell without
    its samples file is skipped (named in `skipped`); a run with none to rescore is an error."""
    run = load_run(run_dir)
    before = _metrics_before(run.repetitions)
    out = []
    skipped = [] if skipped is None else skipped
    for summary in run.summaries:
        kind = summary.get("workload_kind")
        if kind not in Scorers.KINDS:
            continue
        where = f"{run_dir}: cell {summary.get('cell_id')}"
        rel = summary.get("samples_file") or cell_file("samples", summary.get("cell_id"),
                                                       ".jsonl", where)
        text = read_text_in_run(run_dir, str(rel), CELL_FILE_MAX_BYTES, where)
        if text is None:
            skipped.append(f"{where}: no samples file {rel}; not rescored")
            continue
        rows, warnings = parse_jsonl(text.encode("utf-8"), run_dir / str(rel))
        out.append(_rescore_cell(summary, kind, rows, scorers, where, before, warnings))
    if not out:
        raise HarnessError(f"{run_dir}: no closed_book or halueval cell with saved answers"
                           + "".join(f"\n  {x}" for x in skipped))
    return out


def _rescore_cell(summary: dict[str, Any], kind: str, rows: list[dict[str, Any]],
                  scorers: Scorers, where: str, before: dict[tuple[str, int], dict[str, Any]],
                  warnings: list[str]) -> CellRescore:
    new_rows, changed = [], 0
    by_rep: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        v = scorers.verdict(kind, row.get("id"), row.get("output"), row.get("question"), where)
        new = {**row, **{f"{k}_before": row.get(k) for k in RELABELLED},
               "label": v.label, "rule": v.rule, "matched": v.matched,
               "rules_version": RULES_VERSION}
        changed += v.label != row.get("label")
        new_rows.append(new)
        rep = row.get("repetition", 0)
        by_rep[rep if isinstance(rep, int) else 0].append(new)
    metrics = {}
    for rep, reps in sorted(by_rep.items()):
        metrics[rep], w = label_metrics([r["label"] for r in reps],
                                        [is_empty(r["output"]) for r in reps])
        warnings += w
    cid = str(summary["cell_id"])
    dims = {k: summary.get(k) for k in ("model", "level", "runtime", "device", "workload")}
    return CellRescore(cid, dims, kind, new_rows, metrics,
                       {rep: before.get((cid, rep), {}) for rep in metrics}, changed, warnings)


def _metrics_before(repetitions: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The quality figures each repetition record carried, by (cell id, repetition)."""
    out = {}
    for r in repetitions:
        rep = r.get("repetition")
        keep = {k: r.get(k) for k in (*SUMMARY_METRICS, "neither_rate", "n_items") if k in r}
        out[(str(r.get("cell_id")), rep if isinstance(rep, int) else 0)] = keep
    return out


def write_rescore(run_dir: Path, cells: list[CellRescore], out_dir: Path | None = None) -> Path:
    """Write `samples/<cell_id>.jsonl` and `metrics.jsonl` into a new folder and return it.

    Default folder: `<run>/rescore/v<RULES_VERSION>`. An existing folder is refused (nothing is
    ever overwritten); `out_dir` names another one. Writing inside the run takes its lock.
    """
    if out_dir is None:
        target = resolve_in_run(run_dir, f"{RESCORE_DIR}/v{RULES_VERSION}", f"{run_dir}: rescore")
        with RunLock(run_dir):
            _write(target, cells, run_dir, inside=True)
        return target
    _write(out_dir, cells, run_dir, inside=False)
    return out_dir


def _write(target: Path, cells: list[CellRescore], run_dir: Path, inside: bool) -> None:
    if os.path.lexists(target):
        raise HarnessError(f"{target} already exists; rescoring never overwrites. Remove it or "
                           "pass --out with a new folder")
    if inside:
        parent = target.parent
        if not os.path.lexists(parent):
            parent.mkdir()
        resolve_in_run(run_dir, f"{RESCORE_DIR}/{target.name}", f"{run_dir}: rescore")
    target.mkdir(parents=not inside)
    (target / "samples").mkdir()
    lines = []
    for c in cells:
        with open(target / "samples" / f"{c.cell_id}.jsonl", "x", encoding="utf-8") as f:
            f.writelines(dumps(r) + "\n" for r in c.rows)
        for rep, m in c.metrics.items():
            lines.append(dumps({"cell_id": c.cell_id, **c.dims, "workload_kind": c.kind,
                                "repetition": rep, "rules_version": RULES_VERSION,
                                "labels_changed": c.changed, "metrics": m,
                                "metrics_before": c.metrics_before.get(rep, {}),
                                "source_run": str(run_dir)}))
    with open(target / "metrics.jsonl", "x", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def summary_lines(cells: list[CellRescore]) -> list[str]:
    """A plain table: each cell's rates before -> after."""
    out = [f"{'level':<10} {'workload':<14} {'labels changed':>14}  " + "  ".join(
        f"{m:<26}" for m in ("accuracy", "hallucination_rate", "unscorable_rate"))]
    for c in cells:
        for rep, m in c.metrics.items():
            b = c.metrics_before.get(rep, {})
            cols = "  ".join(f"{_fmt(b.get(k))} -> {_fmt(m.get(k)):<16}"
                             for k in ("accuracy", "hallucination_rate", "unscorable_rate"))
            out.append(f"{str(c.dims.get('level')):<10} {str(c.dims.get('workload')):<14} "
                       f"{c.changed:>14}  {cols}")
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and v == v else "-"
