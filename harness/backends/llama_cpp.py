"""llama.cpp through llama-cpp-python: the first backend.

Greedy decoding through `Llama.generate` with top_k=1 and temperature 0 so that every level and
device decodes the same way; per-token timestamps are taken as each token is produced.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import HarnessError, ModelError
from .base import Backend, Generation, RuntimeSettings
from .llama_cpp_batch import BatchDecoder, first_stop as _first_stop

# Sequences decoded together by generate_batched. Measured on the default model, 2 cores
# (benchmarks/test_bench_quality.py, docs/quality.md "Sample sizes").
N_PARALLEL = 8


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """llama.cpp prints its load log on fd 2 even with verbose=False on some builds."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)


@contextlib.contextmanager
def _without_repacked_weights() -> Iterator[None]:
    """Load with llama.cpp's plain weight layout (model param use_extra_bufts off).

    Why: with the repacked layout (CPU_REPACK, e.g. q4_K as q4_K_8x8) a row's matrix products
    go through a 4-row gemm kernel or a 1-row gemv kernel depending on how many rows share the
    micro-batch, and the two round differently. Greedy answers then depend on how prompts were
    batched: on the default model 1-2 of 24 closed-book answers changed between one-at-a-time,
    prefix-reuse and batched decoding. With the plain layout every row's products are the same
    whatever the batch, and all three gave the same 24 answers (docs/quality.md, "Sample sizes").
    llama-cpp-python's Llama has no option for it: it reads llama_model_default_params(), which
    is wrapped for the duration of the load.
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params
    if not hasattr(original(), "use_extra_bufts"):  # older llama.cpp: no repacking to turn off
        yield
        return

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original


class LlamaCppBackend(Backend):
    name = "llama_cpp"

    def __init__(self) -> None:
        self._llm: Any = None
        self._settings: RuntimeSettings | None = None
        self._batch: BatchDecoder | None = None
        self.n_parallel = N_PARALLEL  # sequences generate_batched decodes together

    def load(self, model: Path, settings: RuntimeSettings) -> None:
        import llama_cpp

        kwargs: dict[str, Any] = dict(
            model_path=str(model), n_ctx=settings.n_ctx, n_batch=settings.n_batch,
            use_mmap=settings.use_mmap, use_mlock=settings.use_mlock, seed=settings.seed,
            logits_all=settings.need_logits, n_gpu_layers=int(settings.extra.get("n_gpu_layers", 0)),
            verbose=False)
        if settings.n_threads:
            kwargs["n_threads"] = settings.n_threads
            kwargs["n_threads_batch"] = settings.n_threads_batch or settings.n_threads
        # Quality workloads (the ones that reuse a prompt prefix) need answers that do not
        # depend on batching; speed workloads keep llama.cpp's fastest layout.
        layout = (_without_repacked_weights() if settings.reuse_prompt_prefix
                  else contextlib.nullcontext())
        try:
            with _quiet_stderr(), layout:
                self._llm = llama_cpp.Llama(**kwargs)
        except ValueError as e:  # llama-cpp-python raises ValueError("Failed to load model ...")
            raise ModelError(f"llama.cpp could not load {model}: {e}") from None
        self._settings = settings

    @property
    def llm(self) -> Any:
        if self._llm is None:
            raise HarnessError("backend used before load()")
        return self._llm

    @property
    def eos_token(self) -> int:
        return int(self.llm.token_eos())

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True, ignore_eos: bool = False) -> Generation:
        llm = self.llm
        prompt_tokens = self.tokenize(prompt, add_bos=add_bos)
        n_ctx = llm.n_ctx()
        if len(prompt_tokens) + max_tokens > n_ctx:
            raise HarnessError(f"prompt ({len(prompt_tokens)} tokens) + max_tokens ({max_tokens}) "
                               f"exceeds the context size n_ctx={n_ctx}; raise runtime.n_ctx")
        eos = self.eos_token
        if not (self._settings is not None and self._settings.reuse_prompt_prefix):
            llm.reset()  # no prompt-cache reuse: every repetition pays its full prefill
        # else: Llama.generate keeps the longest common prefix of the previous prompt in the KV cache
        out: list[int] = []
        times: list[float] = []
        reason = "length"
        text = ""
        t_start = time.monotonic()
        for tok in llm.generate(prompt_tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                                repeat_penalty=1.0, reset=True):
            now = time.monotonic()
            if tok == eos and not ignore_eos:
                reason = "eos"
                times.append(now)
                break
            out.append(int(tok))
            times.append(now)
            if stop:
                text = self.detokenize(out)
                cut = _first_stop(text, stop)
                if cut is not None:
                    text = text[:cut]
                    reason = "stop"
                    break
            if len(out) >= max_tokens:
                break
        t_end = time.monotonic()
        if not stop or reason != "stop":
            text = self.detokenize(out)
        t_first = times[0] if times else t_end
        return Generation(text=text, tokens_in=len(prompt_tokens), tokens_out=len(out),
                          t_start_s=t_start, t_first_token_s=t_first, t_end_s=t_end,
                          token_times_s=tuple(times[:len(out)]), stop_reason=reason,
                          tokens=tuple(out))

    def generate_batched(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] = (),
                         add_bos: bool = True) -> list[Generation]:
        """Greedy generations decoded `n_parallel` at a time in one batch, sharing the prompts'
        common prefix (harness.backends.llama_cpp_batch). Timestamps are per sequence, inside
        shared decode calls.

        Not used by the quality workloads: on llama-cpp-python 0.3.36 the answers are not
        bit-identical to one at a time. A decode call with k rows takes llama.cpp's multi-row
        matrix kernels, one row the single-row ones, and they round differently: on the
        default model's Q2_K one HaluEval answer of 8 changed at its 16th token. Quality
        workloads therefore decode one prompt at a time; this stays for measuring
        (benchmarks/test_bench_quality.py) and for runtimes where it pays (docs/quality.md,
        "Sample sizes"). With n_parallel 1 every call has the shapes of one-at-a-time decoding.
        """
        if not prompts:
            return []
        token_lists = [self.tokenize(p, add_bos=add_bos) for p in prompts]
        n_ctx = self.llm.n_ctx()
        cells = max(len(t) for t in token_lists) + max_tokens
        if cells > n_ctx:
            raise HarnessError(f"prompt ({cells - max_tokens} tokens) + max_tokens ({max_tokens}) "
                               f"exceeds the context size n_ctx={n_ctx}; raise runtime.n_ctx")
        return self._batch_decoder(cells).run(token_lists, max_tokens, self.eos_token,
                                              self.detokenize, stop)

    def _batch_decoder(self, cells_per_seq: int) -> BatchDecoder:
        """The batched context, made on first use (speed cells never pay for it) with the KV
        cells the prompts need (multiples of 256, at most n_ctx per sequence), remade larger
        when a later call needs more."""
        if self._batch is not None and (self._batch.n_ctx_seq < cells_per_seq
                                        or self._batch.n_parallel != self.n_parallel):
            self._batch.close()
            self._batch = None
        if self._batch is None:
            n_ctx_seq = min(int(self.llm.n_ctx()), -(-cells_per_seq // 256) * 256)
            with _quiet_stderr():
                self._batch = BatchDecoder(self.llm, self.n_parallel, n_ctx_seq)
        return self._batch

    def bench_decode(self, mode: str, n_tokens: int, seed: int) -> tuple[float, float]:
        """llama-bench's pp/tg test on the loaded context; returns the timed (t0, t1) monotonic.

        Same work as llama-bench: an empty KV cache, BOS first when the vocabulary adds one, then
        random token ids; `pp` decodes them in batches of n_batch, `tg` one at a time with a
        synchronize after each. llama_decode is called directly (no sampling, no logits copied
        to Python), so nothing but the runtime is timed.
        """
        import llama_cpp

        llm = self.llm
        if n_tokens > llm.n_ctx():
            raise HarnessError(f"{mode}{n_tokens} needs n_ctx >= {n_tokens} (it is {llm.n_ctx()}); "
                               "raise runtime.n_ctx")
        ctx = llm.ctx
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        rng = np.random.default_rng(seed)
        tokens = rng.integers(0, n_vocab, size=n_tokens, dtype=np.int64).tolist()
        if llama_cpp.llama_vocab_get_add_bos(vocab):
            tokens[0] = int(llama_cpp.llama_vocab_bos(vocab))
        step = n_tokens if mode == "tg" else max(1, min(int(llm.n_batch), n_tokens))
        chunks = ([[t] for t in tokens] if mode == "tg"
                  else [tokens[i:i + step] for i in range(0, n_tokens, step)])
        arrays = [(llama_cpp.llama_token * len(c))(*c) for c in chunks]
        self._clear_memory(llm)
        t0 = time.monotonic()
        for arr in arrays:
            rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(arr)))
            if rc != 0:
                raise HarnessError(f"llama_decode failed with code {rc} during {mode}{n_tokens}")
            if mode == "tg":
                llama_cpp.llama_synchronize(ctx)
        llama_cpp.llama_synchronize(ctx)
        t1 = time.monotonic()
        self._clear_memory(llm)
        return t0, t1

    @staticmethod
    def _clear_memory(llm: Any) -> None:
        """An empty KV cache, and llama-cpp-python's own token count in step with it."""
        import llama_cpp

        mem = llama_cpp.llama_get_memory(llm.ctx)
        if mem is not None:
            llama_cpp.llama_memory_clear(mem, True)
        llm.n_tokens = 0

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        if self._settings is None or not self._settings.need_logits:
            raise HarnessError("logits() needs the model loaded with need_logits=True")
        llm = self.llm
        if len(tokens) > llm.n_ctx():
            raise HarnessError(f"{len(tokens)} tokens exceed n_ctx={llm.n_ctx()}")
        llm.reset()
        llm.eval(list(tokens))
        return np.array(llm.scores[: len(tokens)], dtype=np.float32, copy=True)

    def unload(self) -> None:
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        if self._llm is not None:
            with contextlib.suppress(Exception):
                self._llm.close()
            self._llm = None

    def info(self) -> dict[str, Any]:
        """The runtime's build, plus the weight layout this load used: quality cells (prompt
        prefix reuse) load the plain layout, speed cells llama.cpp's default (repacked where
        its CPU backend supports it), and the two run at different speeds."""
        out = runtime_info()
        if self._settings is not None:
            out["weight_layout"] = ("plain (use_extra_bufts off)" if self._settings.reuse_prompt_prefix
                                    else "llama.cpp default (repacked where supported)")
        return out


def runtime_info() -> dict[str, Any]:
    import llama_cpp

    try:
        system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    except Exception as e:  # older builds lack it; the manifest records why
        system_info = f"unavailable ({type(e).__name__})"
    return {"runtime": "llama_cpp", "version": getattr(llama_cpp, "__version__", "unknown"),
            "system_info": system_info}
