"""A tiny deterministic Backend for the quality tests (no model, no llama.cpp)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.backends.base import Backend, Generation, RuntimeSettings

VOCAB = 64
BOS = 0


def word_id(word: str) -> int:
    return 1 + int(hashlib.sha1(word.encode()).hexdigest(), 16) % (VOCAB - 1)


def random_logits(prefix: Sequence[int]) -> np.ndarray:
    seed = int(hashlib.sha1(bytes(str(list(prefix)), "ascii")).hexdigest()[:8], 16)
    return np.random.default_rng(seed).normal(0, 2, VOCAB).astype(np.float32)


class FakeBackend(Backend):
    """Word-level tokenizer (prefix-stable), canned answers, logits from a function of the prefix."""

    name = "fake"

    def __init__(self, answers: dict[str, str] | Callable[[str], str] | None = None,
                 logit_fn: Callable[[Sequence[int]], np.ndarray] = random_logits):
        self.answers = answers or {}
        self.logit_fn = logit_fn
        self.prompts: list[str] = []
        self.logit_calls = 0
        self.unloaded = False

    def load(self, model: Path, settings: RuntimeSettings) -> None:
        pass

    def _answer(self, question: str) -> str:
        if callable(self.answers):
            return self.answers(question)
        return self.answers.get(question, "")

    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True) -> Generation:
        self.prompts.append(prompt)
        q = re.findall(r"(?:^|\n)(?:Q|Question): (.*)\n", prompt)[-1]
        text = self._answer(q)
        for s in stop:
            text = text.split(s)[0]
        n_out = len(text.split())
        return Generation(text=text, tokens_in=len(prompt.split()), tokens_out=n_out,
                          t_start_s=0.0, t_first_token_s=0.1, t_end_s=0.2,
                          token_times_s=tuple(0.1 for _ in range(n_out)), stop_reason="stop")

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return ([BOS] if add_bos else []) + [word_id(w) for w in text.split()]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return " ".join(f"<{t}>" for t in tokens)

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        self.logit_calls += 1
        return np.stack([self.logit_fn(tokens[:i + 1]) for i in range(len(tokens))])

    def unload(self) -> None:
        self.unloaded = True

    def info(self) -> dict[str, Any]:
        return {"runtime": "fake"}

    @property
    def eos_token(self) -> int:
        return VOCAB - 1


class FakeContext:
    def __init__(self, reference: Backend | None = None, seed: int = 0):
        self.reference = reference
        self.seed = seed
        self.opened = 0

    def open_reference_backend(self) -> Backend:
        self.opened += 1
        assert self.reference is not None, "this test did not expect a reference backend"
        return self.reference
