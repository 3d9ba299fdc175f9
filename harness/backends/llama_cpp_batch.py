"""Several greedy generations decoded together in one llama.cpp context (quality workloads).

Why: a quality workload sends hundreds of short prompts that share a long few-shot prefix and
produce a few tokens each. One at a time, every answer token is a pass over the weights for one
row; decoded together, one pass serves every active sequence, and the shared prefix is evaluated
once (`llama_memory_seq_cp` from sequence 0, which only holds the prefix, to each worker's
stream). Each prompt's own tokens are still fed alone, as one-at-a-time decoding feeds them:
feeding several prompts in one call was 1.3x faster on the default model but changed 1 of 60
answers. On a 2-core x86 machine the default 270M model is compute-bound, so sharing the decode
passes gained nothing measurable there (docs/quality.md, "Sample sizes"); a memory-bound model
(larger weights, longer answers) gains more.

Continuous batching: a sequence that stops (EOS, stop string, max_tokens) frees its cells
(`llama_memory_seq_rm`) and the next prompt takes its sequence id, so the batch stays full. Each
sequence's next token is the argmax of its own logits row (ties to the lowest id, as llama.cpp's
greedy sampler); stop rules are those of `LlamaCppBackend.generate`.

Not identical to one-at-a-time decoding on llama-cpp-python 0.3.36 (measured on the default
model, docs/quality.md "Sample sizes"): a row's matrix products depend on how many rows share
the call (repacked q4_K gemm vs gemv kernels; multi-row vs single-row kernels in the plain
layout), so a near-tie can flip. With n_parallel 1 every call has one-at-a-time shapes, which
tests/core/test_core_batch_identity.py uses to check the bookkeeping (positions, prefix copy,
stops) against `generate`.
"""
from __future__ import annotations

import ctypes
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HarnessError
from .base import Generation

PREFIX_SEQ = 0  # sequence that holds the shared prefix; workers are 1..n_parallel


@dataclass
class _Seq:
    """One prompt in flight: what is left to feed, what came out, when."""

    index: int
    seq_id: int
    pending: list[int]  # prompt tokens not yet decoded
    pos: int  # position of the next token fed
    n_prompt: int
    t_start_s: float
    out: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    reason: str = "length"
    text: str | None = None


def common_prefix_len(token_lists: Sequence[Sequence[int]]) -> int:
    """Tokens every list starts with, leaving each list at least one token of its own.

    The last prompt token must be decoded in the sequence's own batch row, since its logits give
    the first answer token.
    """
    first = token_lists[0]
    n = min(len(t) for t in token_lists) - 1
    for i in range(max(n, 0)):
        tok = first[i]
        if any(t[i] != tok for t in token_lists):
            return i
    return max(n, 0)


class BatchDecoder:
    """A second llama.cpp context on the loaded model, with n_parallel + 1 sequences.

    Each sequence has its own KV stream (`kv_unified` off), so a sequence's cells sit at the
    same indices as in a context of its own: attention sums in the same order as one-at-a-time
    decoding. (A unified cache interleaves the sequences' cells; on llama-cpp-python 0.3.36 that
    changed 3 of 24 greedy answers of the default model, the separate streams none.) The shared
    prefix is copied stream to stream. The context copies the backend's own context parameters
    (threads, batch sizes, attention type); only the sequence count and the cells differ.
    """

    def __init__(self, llm: Any, n_parallel: int, n_ctx_seq: int) -> None:
        import llama_cpp

        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_seq_max = n_parallel + 1
        params.n_ctx = n_ctx_seq * (n_parallel + 1)  # split evenly into one stream per sequence
        params.kv_unified = False
        ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if ctx is None:
            raise HarnessError(f"llama.cpp could not create a batched context "
                               f"({n_parallel} sequences of {n_ctx_seq} cells)")
        self._lib = llama_cpp
        self.ctx = ctx
        self.n_parallel = n_parallel
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.n_vocab = int(llm.n_vocab())
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def close(self) -> None:
        if self.ctx is not None:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self.ctx)
            self.ctx = None

    # -- decoding -------------------------------------------------------------------------

    def run(self, prompts: Sequence[Sequence[int]], max_tokens: int, eos: int,
            detokenize: Callable[[list[int]], str], stop: Sequence[str] = ()) -> list[Generation]:
        """Greedy generations for every prompt, in prompt order, stopping as
        `LlamaCppBackend.generate` does (EOS, the first stop string, max_tokens)."""
        longest = max(len(p) for p in prompts) + max_tokens
        if longest > self.n_ctx_seq:
            raise HarnessError(f"a prompt needs {longest} KV cells with max_tokens {max_tokens}; "
                               f"each sequence of the batched context has {self.n_ctx_seq}")
        prefix_len = common_prefix_len(prompts)
        self._lib.llama_memory_clear(self._mem, True)
        self._decode_prefix(prompts[0][:prefix_len])
        queue = deque(range(len(prompts)))
        free = list(range(self.n_parallel, 0, -1))
        active: dict[int, _Seq] = {}
        results: list[Generation | None] = [None] * len(prompts)
        while queue or active:
            self._admit(queue, free, active, prompts, prefix_len)
            rows = self._fill_batch(active)
            self._decode()
            now = time.monotonic()
            for seq, row in rows:
                if self._take_token(seq, row, now, max_tokens, eos, detokenize, stop):
                    results[seq.index] = _finish(seq, now, detokenize)
                    del active[seq.seq_id]
                    self._lib.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
                    free.append(seq.seq_id)
        return [g for g in results if g is not None]

    def _decode_prefix(self, tokens: Sequence[int]) -> None:
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self._batch.n_tokens = 0
            for i, tok in enumerate(chunk):
                self._add(tok, start + i, PREFIX_SEQ, False)
            self._decode()

    def _admit(self, queue: deque, free: list[int], active: dict[int, _Seq],
               prompts: Sequence[Sequence[int]], prefix_len: int) -> None:
        """Start queued prompts while a sequence id is free; each gets a copy of the prefix."""
        while queue and free:
            index = queue.popleft()
            seq_id = free.pop()
            if prefix_len:
                self._lib.llama_memory_seq_cp(self._mem, PREFIX_SEQ, seq_id, -1, -1)
            active[seq_id] = _Seq(index=index, seq_id=seq_id, pending=list(prompts[index][prefix_len:]),
                                  pos=prefix_len, n_prompt=len(prompts[index]),
                                  t_start_s=time.monotonic())

    def _fill_batch(self, active: dict[int, _Seq]) -> list[tuple[_Seq, int]]:
        """One decode call's rows: the prompt tokens of one newly started sequence (up to
        n_batch) when there is one, else each generating sequence's last token. Returns
        (sequence, row) for the rows whose logits are read.

        A prompt is fed alone, in the same chunks as one-at-a-time decoding: with one KV stream
        per sequence llama.cpp splits a call into micro-batches of equal length per sequence,
        so prompts of different lengths in one call were cut into other pieces, and that
        changed 1 of 60 greedy answers. Only the answer tokens (one row per sequence) share calls.
        """
        self._batch.n_tokens = 0
        rows: list[tuple[_Seq, int]] = []
        seq = next((s for s in active.values() if s.pending), None)
        if seq is not None:  # one prompt per call, in n_batch chunks, as `generate` feeds it
            take, seq.pending = seq.pending[:self.n_batch], seq.pending[self.n_batch:]
            for i, tok in enumerate(take):
                last = not seq.pending and i == len(take) - 1
                if last:
                    rows.append((seq, self._batch.n_tokens))
                self._add(tok, seq.pos, seq.seq_id, last)
                seq.pos += 1
            return rows
        for seq in active.values():
            rows.append((seq, self._batch.n_tokens))
            self._add(seq.out[-1], seq.pos, seq.seq_id, True)
            seq.pos += 1
        return rows

    def _add(self, token: int, pos: int, seq_id: int, logits: bool) -> None:
        b = self._batch
        i = b.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = 1 if logits else 0
        b.n_tokens = i + 1

    def _decode(self) -> None:
        rc = self._lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise HarnessError(f"llama_decode failed with code {rc} in a batch of "
                               f"{self._batch.n_tokens} tokens")

    def _take_token(self, seq: _Seq, row: int, now: float, max_tokens: int, eos: int,
                    detokenize: Callable[[list[int]], str], stop: Sequence[str]) -> bool:
        """Append the greedy token of this row; True when the sequence is finished."""
        ptr = self._lib.llama_get_logits_ith(self.ctx, row)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                       shape=(self.n_vocab,))
        tok = int(np.argmax(logits))
        seq.times.append(now)
        if tok == eos:
            seq.reason = "eos"
            return True
        seq.out.append(tok)
        if stop:
            text = detokenize(seq.out)
            cut = first_stop(text, stop)
            if cut is not None:
                seq.reason, seq.text = "stop", text[:cut]
                return True
        return len(seq.out) >= max_tokens


def _finish(seq: _Seq, now: float, detokenize: Callable[[list[int]], str]) -> Generation:
    text = seq.text if seq.text is not None else detokenize(seq.out)
    t_first = seq.times[0] if seq.times else now
    return Generation(text=text, tokens_in=seq.n_prompt, tokens_out=len(seq.out),
                      t_start_s=seq.t_start_s, t_first_token_s=t_first, t_end_s=now,
                      token_times_s=tuple(seq.times[:len(seq.out)]), stop_reason=seq.reason,
                      tokens=tuple(seq.out))


def first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in text, None when there is none."""
    hits = [text.find(s) for s in stop if s and s in text]
    return min(hits) if hits else None
