"""Agreement of the scoring rules with a careful human grader, on real answers.

tests/quality/graded/*.jsonl hold real outputs of the default model (Gemma 3 270M) at several
compression levels, each with the label a person gave it by reading the question (and, for
HaluEval, the passage) and the reason. Each answer was labelled before the scorer's label for it
was seen, and labels are never tuned to the scorer: a disagreement is printed and counted
(docs/quality.md: how the figure came about, and the blind held-out figure).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.workloads.quality import closed_book, halueval

GRADED = Path(__file__).parent / "graded"
LABELS = {"correct", "hallucinated", "abstained", "unscorable"}
MIN_AGREEMENT = 0.95
HALUEVAL_FIELDS = ("id", "knowledge", "question", "right_answer", "hallucinated_answer")


def graded_rows() -> list[dict]:
    rows = []
    for kind in ("closed_book", "halueval"):
        text = (GRADED / f"{kind}.jsonl").read_text("utf-8")
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def scorer_label(row: dict, cb_items: dict[str, dict]) -> tuple[str, str]:
    if row["kind"] == "closed_book":
        v = closed_book.verdict(cb_items[row["id"]], row["output"])
    else:
        item = halueval.apply_keys([{k: row[k] for k in HALUEVAL_FIELDS}])[0]
        v = halueval.label_answer(item, row["output"])
    return v.label, v.rule


def test_the_graded_set_is_big_varied_and_well_formed():
    rows = graded_rows()
    assert len(rows) >= 150
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["closed_book"] >= 50 and kinds["halueval"] >= 50
    assert len({lvl for r in rows for lvl in r["levels"]}) >= 3
    assert all(r["label"] in LABELS and r["reason"] and r["output"] is not None for r in rows)
    assert len({(r["id"], r["output"]) for r in rows}) == len(rows)  # each answer once
    # the hard cases are in it
    outputs = {(r["id"], r["output"]) for r in rows}
    assert ("cb0433", "It is a planet because it is a star.") in outputs
    assert ("halueval-qa-6891", "the Matra Alice") in outputs
    assert ("halueval-qa-6312", "The D.I.") in outputs
    assert any(r["id"] == "halueval-qa-4243" and "Barking Sands" in r["output"] for r in rows)
    assert Counter(r["label"] for r in rows)["hallucinated"] >= 30


def test_scorer_agrees_with_the_human_grader():
    cb_items = {it["id"]: it for it in closed_book.load_items()}
    rows = graded_rows()
    disagreements = []
    per_kind: Counter = Counter()
    for r in rows:
        label, rule = scorer_label(r, cb_items)
        if label == r["label"]:
            per_kind[r["kind"]] += 1
        else:
            disagreements.append(f"{r['id']} {r['output'][:60]!r}: human {r['label']} "
                                 f"({r['reason']}), scorer {label} by {rule}")
    agreement = 1 - len(disagreements) / len(rows)
    print(f"\nagreement {len(rows) - len(disagreements)}/{len(rows)} = {agreement:.3f}; "
          + ", ".join(f"{k} {n}" for k, n in sorted(per_kind.items())))
    print("\n".join(disagreements))
    assert agreement >= MIN_AGREEMENT, "\n".join(disagreements)
