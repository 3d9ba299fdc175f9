"""Pure text-scoring rules shared by the quality workloads (documented in docs/quality.md).

SQuAD normalisation is the common yardstick so labels stay comparable with published numbers.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Sequence

# The version of the label rules (closed_book, halueval); bump it whenever a rule or a shipped
# key changes a label, so rescored answers say which rules labelled them (harness.rescore).
# 1: HaluEval by token F1 to both references; 2: grounded HaluEval rules, premise claims.
RULES_VERSION = 2

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("‘’“”–—…«»¿¡")
PUNCTUATION = frozenset(_PUNCT)  # what normalisation deletes

# Phrases that mark a decline (matched as whole-token runs after normalisation). Kept short and
# explicit so anyone can audit why an answer counted as an abstention.
ABSTENTION_PHRASES: tuple[str, ...] = (
    "i don't know", "i do not know", "i dont know", "don't know", "do not know",
    "not known", "unknown", "no one knows", "nobody knows", "cannot be known", "can't be known",
    "impossible to know", "not possible to know", "no way to know",
    "i'm not sure", "i am not sure", "not sure", "i have no idea", "no idea",
    "i cannot answer", "i can't answer", "cannot be answered", "can't be answered",
    "unanswerable", "no answer", "no comment", "i have no comment",
    "no record", "no records", "not recorded", "was not recorded", "never recorded",
    "there is no", "there was no", "there are no", "there were no", "there has never been",
    "does not exist", "doesn't exist", "did not exist", "didn't exist", "never existed",
    "no such", "not a real", "fictional", "not yet happened", "hasn't happened", "has not happened",
    # declines that point at the evidence (grounded questions): "the passage does not say"
    "not clear", "unclear", "cannot say", "can't say", "cannot tell", "can't tell",
    "does not say", "doesn't say", "not mentioned", "not stated", "not given",
)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation, drop a/an/the, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 (bag of normalised tokens); 1.0 when both are empty, 0.0 when one is."""
    return f1_from_tokens(tokens(prediction), tokens(reference))


def f1_from_tokens(pred: Sequence[str], ref: Sequence[str]) -> float:
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def contains_phrase(text: str, phrase: str) -> bool:
    """True when the normalised phrase occurs as a run of whole tokens in the normalised text.

    Whole tokens, so the alias "4" does not match "1984" and "art" does not match "party".
    """
    needle = tokens(phrase)
    hay = tokens(text)
    if not needle or len(needle) > len(hay):
        return False
    n = len(needle)
    return any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


def first_match(text: str, phrases: Iterable[str]) -> str | None:
    """The first phrase (in list order) contained in `text`, else None."""
    for p in phrases:
        if contains_phrase(text, p):
            return p
    return None


def is_empty(text: str) -> bool:
    """Nothing to score: no characters, or only whitespace/punctuation (collapsed models emit these)."""
    return not tokens(text)


def abstention_phrase(text: str) -> str | None:
    """The abstention phrase found in `text`, or None. Empty output is handled by is_empty."""
    return first_match(text, ABSTENTION_PHRASES)
