"""Closed-book hallucination rate on our own question set (harness/data/quality/closed_book.jsonl).

The default model is a base model, so the prompt is a few-shot "Q: ... A:" transcript that shows
short answers, a plain "I don't know." for unknowable questions and a premise correction: a model
that cannot abstain in the prompt's own format would be punished for the prompt, not for itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...backends.base import Backend
from ...errors import HarnessError
from ...schema import Node
from . import scoring
from ..base import WorkloadContext, WorkloadResult
from .base import ABSTAINED, CORRECT, HALLUCINATED, base_settings, label_metrics, select
from .grounded import NEGATIONS, Verdict

# A premise claim counts as negated when one of these precedes it within CLAIM_NEGATION_WINDOW
# tokens ("is not a planet") or follows it at once ("he won none").
CLAIM_NEGATION_WINDOW = 3
NEGATED_AFTER = frozenset("no none nothing zero 0 neither".split())

DATA_FILE = "closed_book.jsonl"
ITEM_TYPES = ("answerable", "unanswerable", "false_premise")

INSTRUCTION = ("Answer each question with a short answer. If nobody can know the answer, say "
               "\"I don't know.\" If the question assumes something false, say what is true.\n\n")
# Our own examples; none of these questions is in the item set (a test checks it).
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("What is the capital of Italy?", "Rome"),
    ("What did Plato eat for lunch on his twentieth birthday?", "I don't know."),
    ("Who wrote Pride and Prejudice?", "Jane Austen"),
    ("Why did Shakespeare write the novel Moby-Dick?",
     "He did not; Moby-Dick was written by Herman Melville."),
    ("How many wheels does a bicycle have?", "Two"),
    ("Who will win the Olympic marathon in the year 2100?", "I don't know."),
)
STOP = ("\n",)


@dataclass(frozen=True)
class Config:
    name: str
    samples: int
    seed: int
    max_tokens: int

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        b = base_settings(node, extra_keys=(), default_samples=60, default_max_tokens=24)
        return cls(name=b.name, samples=b.samples, seed=b.seed, max_tokens=b.max_tokens)

    @property
    def needs_logits(self) -> bool:
        return False


def load_items() -> list[dict[str, Any]]:
    """The shipped question set, validated so a bad edit fails loudly instead of mis-scoring."""
    text = resources.files("harness").joinpath("data", "quality", DATA_FILE).read_text("utf-8")
    items = [json.loads(line) for line in text.splitlines() if line.strip()]
    for it in items:
        if it.get("type") not in ITEM_TYPES:
            raise HarnessError(f"{DATA_FILE}: item {it.get('id')} has unknown type {it.get('type')!r}")
        if it["type"] == "answerable" and not it.get("answers"):
            raise HarnessError(f"{DATA_FILE}: answerable item {it['id']} lists no answers")
        if it["type"] == "false_premise" and not it.get("premise_keywords"):
            raise HarnessError(f"{DATA_FILE}: false-premise item {it['id']} lists no premise_keywords")
        if it["type"] == "false_premise" and not isinstance(it.get("premise_claims"), list):
            raise HarnessError(f"{DATA_FILE}: false-premise item {it['id']} needs premise_claims "
                               "(a list, maybe empty)")
    return items


def build_prompt(question: str) -> str:
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in FEW_SHOT)
    return f"{INSTRUCTION}{shots}Q: {question}\nA:"


def label_answer(item: dict[str, Any], output: str) -> tuple[str, str | None]:
    """(label, what matched) for one answer; `verdict` also names the rule."""
    v = verdict(item, output)
    return v.label, v.matched


def verdict(item: dict[str, Any], output: str) -> Verdict:
    """The label of one answer and the rule that decided it (docs/quality.md).

    Empty output is always `abstained`, even where declining is right, so a collapsed model
    shows as 100% abstention rather than as partly correct.
    """
    if scoring.is_empty(output):
        return Verdict(ABSTAINED, "empty")
    phrase = scoring.abstention_phrase(output)
    if item["type"] == "answerable":
        alias = scoring.first_match(output, item["answers"])
        if alias is not None:
            return Verdict(CORRECT, "alias", alias)
        if phrase:
            return Verdict(ABSTAINED, "declined", phrase)
        return Verdict(HALLUCINATED, "wrong_answer")
    # unanswerable / false premise: declining or correcting the premise is the right answer
    if phrase is not None:
        return Verdict(CORRECT, "declined", phrase)
    claim = affirmed_claim(output, item.get("premise_claims", []))
    if claim is not None:  # "It is a planet because it is a star": a fact inside an affirmation
        return Verdict(HALLUCINATED, "premise_affirmed", claim)
    keyword = scoring.first_match(output, item.get("premise_keywords", []))
    if keyword is not None:
        return Verdict(CORRECT, "premise_corrected", keyword)
    rule = "answered_unanswerable" if item["type"] == "unanswerable" else "premise_not_corrected"
    return Verdict(HALLUCINATED, rule)


def affirmed_claim(output: str, claims: list[str]) -> str | None:
    """The first premise claim the answer states without negating it, else None."""
    said = scoring.tokens(output)
    for claim in claims:
        need = scoring.tokens(claim)
        for i in range(len(said) - len(need) + 1):
            if said[i:i + len(need)] != need:
                continue
            before = said[max(0, i - CLAIM_NEGATION_WINDOW):i]
            after = said[i + len(need):i + len(need) + 1]
            if not (set(before) & NEGATIONS or set(after) & NEGATED_AFTER):
                return claim
    return None


def run(backend: Backend, config: Config, ctx: WorkloadContext) -> WorkloadResult:
    chosen = select(load_items(), config.samples, config.seed, DATA_FILE)
    rows: list[dict[str, Any]] = []
    tokens_in = tokens_out = 0
    for _, item in chosen:
        prompt = build_prompt(item["question"])
        gen = backend.generate(prompt, config.max_tokens, stop=STOP, add_bos=True)
        output = gen.text.strip()
        v = verdict(item, output)
        tokens_in += gen.tokens_in
        tokens_out += gen.tokens_out
        rows.append({"id": item["id"], "type": item["type"], "category": item["category"],
                     "question": item["question"], "prompt": prompt, "output": output,
                     "label": v.label, "rule": v.rule, "matched": v.matched,
                     "empty": scoring.is_empty(output),
                     "references": item["answers"] or item.get("premise_keywords", []),
                     "stop_reason": gen.stop_reason, "tokens_out": gen.tokens_out})
    metrics, warnings = label_metrics([r["label"] for r in rows], [r["empty"] for r in rows])
    return WorkloadResult(metrics=metrics, samples=rows, tokens_in=tokens_in,
                          tokens_out=tokens_out, warnings=warnings)
