"""The generation workload: one greedy generation per repetition, with per-token timing.

Output length is fixed by default (EOS ignored, no stop strings) so that every level and device
does the same amount of decode work and tokens/s and joules/token compare like for like.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..backends.base import Backend
from ..schema import Node
from .base import WorkloadContext, WorkloadResult

BUILTIN_PROMPTS = ("chat_short", "summary_long", "story_long")


@dataclass(frozen=True)
class Config:
    name: str
    prompt_name: str  # builtin name, or "inline"
    prompt: str
    max_tokens: int
    stop: tuple[str, ...]
    ignore_eos: bool
    needs_logits: bool = field(default=False)

    @classmethod
    def from_node(cls, node: Node) -> "Config":
        node.mapping(("name", "kind", "prompt", "prompt_text", "max_tokens", "stop", "ignore_eos"),
                     required=("name",))
        return cls(name=node.get("name").str(), **prompt_fields(node, default_prompt=None))


def prompt_fields(node: Node, default_prompt: str | None) -> dict[str, Any]:
    """What to generate, the same way for every kind that generates from one prompt
    (generation, soak): a shipped prompt or the text itself, max_tokens, stop, ignore_eos.
    `default_prompt` None: one of prompt/prompt_text is required."""
    if node.has("prompt") and node.has("prompt_text") or (
            default_prompt is None and not node.has("prompt") and not node.has("prompt_text")):
        raise node.fail(f"give exactly one of 'prompt' (a shipped prompt: {', '.join(BUILTIN_PROMPTS)}) "
                        "or 'prompt_text' (the prompt itself)")
    if node.has("prompt_text"):
        name, text = "inline", node.get("prompt_text").str()
    else:
        name = node.get("prompt").str(choices=BUILTIN_PROMPTS) if node.has("prompt") else default_prompt
        text = load_prompt(name)
    return {"prompt_name": name, "prompt": text,
            "max_tokens": node.opt("max_tokens", "int", 64, min=1, max=8192),
            "stop": tuple(node.get("stop").str_list()) if node.has("stop") else (),
            "ignore_eos": node.opt("ignore_eos", "bool", True)}


def load_prompt(name: str) -> str:
    return resources.files("harness.data").joinpath("prompts", f"{name}.txt").read_text()


def run(backend: Backend, config: Config, ctx: WorkloadContext | None = None) -> WorkloadResult:
    gen = backend.generate(config.prompt, config.max_tokens, stop=config.stop,
                           ignore_eos=config.ignore_eos)
    warnings = []
    if gen.tokens_out < config.max_tokens and config.ignore_eos and not config.stop:
        warnings.append(f"generated {gen.tokens_out} of {config.max_tokens} tokens ({gen.stop_reason})")
    metrics = {
        "ttft_s": gen.ttft_s,
        "prefill_tokens_per_s": gen.prefill_tokens_per_s,
        "decode_tokens_per_s": gen.decode_tokens_per_s,
        "e2e_latency_s": gen.e2e_latency_s,
    }
    phases = {"prefill": (gen.t_start_s, gen.t_first_token_s), "decode": (gen.t_first_token_s, gen.t_end_s)}
    return WorkloadResult(metrics=metrics, tokens_in=gen.tokens_in, tokens_out=gen.tokens_out,
                          phases=phases, warnings=warnings, generation=gen)
