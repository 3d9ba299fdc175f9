"""A tiny but real decoder-only model folder for onnxruntime-genai, built without torch.

CI has neither torch nor the default model's ONNX export (minutes and gigabytes), yet the `onnx`
backend must run there on a real model. This module writes, with the `onnx` package's helper API
and seeded numpy weights, what onnxruntime-genai's model builder would write for a decoder-only
model: `model.onnx` (input_ids, attention_mask, position_ids, past_key_values.N.key/value ->
logits, present.N.key/value; past and present not sharing a buffer), `genai_config.json`, and a
byte-level BPE tokenizer (`tokenizer.json` + `tokenizer_config.json`, GPT-2 style) that
onnxruntime-genai's tokenizer reads.

`reference_logits` is the same network in plain numpy over the whole sequence, without a KV
cache: what the backend returns (which goes through onnxruntime-genai's cache handling one token at
a time) must agree with it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, BOS, EOS)  # ids 0, 1, 2
# Merges applied by the tokenizer (most frequent English pairs), so "the" is one token.
MERGES = (("t", "h"), ("th", "e"), ("Ġ", "t"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("a", "n"))
LAYER_NORM_EPS = 1e-5
MASKED = -1e9  # attention score of a position a query may not see
# Output bias of tokens the model should not produce: onnxruntime-genai's byte-level decoder stops
# at the first byte that is not valid UTF-8, so a model free to emit any byte would decode to "�".
UNWANTED_BIAS = -10.0


@dataclass(frozen=True)
class TinyDecoder:
    """The folder and the weights it was built from (for the numpy reference)."""

    path: Path
    weights: dict[str, np.ndarray]
    n_layers: int
    n_heads: int
    head_size: int
    vocab: dict[str, int]
    bos_token_id: int
    eos_token_id: int
    context_length: int

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def byte_symbols() -> list[str]:
    """GPT-2's byte -> printable character map (byte-level BPE's alphabet), in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def build_vocab() -> dict[str, int]:
    """Special tokens, the 256 byte symbols, then one token per merge."""
    symbols = list(SPECIAL_TOKENS) + byte_symbols() + ["".join(m) for m in MERGES]
    return {s: i for i, s in enumerate(symbols)}


def lm_bias(vocab: dict[str, int]) -> np.ndarray:
    """0 for printable ASCII bytes and the merges, UNWANTED_BIAS for the rest (special tokens,
    control and non-ASCII bytes): the model writes readable ASCII text."""
    symbols = byte_symbols()
    wanted = {symbols[b] for b in range(0x20, 0x7f)} | {"".join(m) for m in MERGES}
    return np.asarray([0.0 if s in wanted else UNWANTED_BIAS for s in vocab], dtype=np.float32)


def build_tiny_decoder(path: Path, *, seed: int = 0, n_layers: int = 2, n_heads: int = 2,
                       head_size: int = 16, mlp_size: int = 64, context_length: int = 128,
                       eos_token_id: int | None = None) -> TinyDecoder:
    """Write the model folder at `path` (created) and return it with its weights.

    `eos_token_id` overrides the EOS id in genai_config.json (default: the tokenizer's <eos>):
    a test can make a token that greedy decoding is known to produce end the generation.
    """
    import onnx

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab()
    hidden = n_heads * head_size
    weights = _weights(np.random.default_rng(seed), vocab, hidden, mlp_size, n_layers,
                       context_length)
    model = _graph(weights, n_layers, n_heads, head_size)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path / "model.onnx"))
    eos = vocab[EOS] if eos_token_id is None else int(eos_token_id)
    tiny = TinyDecoder(path=path, weights=weights, n_layers=n_layers, n_heads=n_heads,
                       head_size=head_size, vocab=vocab, bos_token_id=vocab[BOS],
                       eos_token_id=eos, context_length=context_length)
    _write_json(path / "genai_config.json", genai_config(tiny))
    _write_json(path / "tokenizer.json", tokenizer_json(vocab))
    _write_json(path / "tokenizer_config.json", tokenizer_config(context_length))
    return tiny


def _weights(rng: np.random.Generator, vocab: dict[str, int], hidden: int, mlp: int,
             n_layers: int, context_length: int) -> dict[str, np.ndarray]:
    """Seeded float32 weights, scaled so activations stay near unit size."""
    def w(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {"embed": w(len(vocab), hidden, scale=1.0),
               "pos_embed": w(context_length, hidden, scale=0.5),
               "lm_head": w(hidden, len(vocab), scale=1.0 / np.sqrt(hidden)),
               "lm_bias": lm_bias(vocab)}
    for i in range(n_layers):
        for name in ("q", "k", "v", "o"):
            weights[f"l{i}.{name}"] = w(hidden, hidden, scale=1.0 / np.sqrt(hidden))
        weights[f"l{i}.up"] = w(hidden, mlp, scale=1.0 / np.sqrt(hidden))
        weights[f"l{i}.down"] = w(mlp, hidden, scale=1.0 / np.sqrt(mlp))
    return weights


def _graph(weights: dict[str, np.ndarray], n_layers: int, n_heads: int, head_size: int):
    """The ONNX graph: pre-norm transformer, learned positions, causal attention over past + new."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = n_heads * head_size
    vocab = weights["embed"].shape[0]
    nodes: list = []
    inits = [numpy_helper.from_array(a, name=k) for k, a in weights.items()]

    def const(name: str, value, dtype=np.int64) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    const("heads_shape", [0, 0, n_heads, head_size])
    const("hidden_shape", [0, 0, hidden])
    const("zero", 0)
    const("one", 1)
    const("scale", 1.0 / np.sqrt(head_size), np.float32)
    const("masked", MASKED, np.float32)
    const("ln_scale", np.ones(hidden), np.float32)
    const("ln_bias", np.zeros(hidden), np.float32)
    _mask_nodes(node)

    x = node("Add", [node("Gather", ["embed", "input_ids"], "tok_emb"),
                     node("Gather", ["pos_embed", "position_ids"], "pos_emb")], "x0")
    for i in range(n_layers):
        x = _layer_nodes(node, i, x)
    final = node("LayerNormalization", [x, "ln_scale", "ln_bias"], "final_norm", axis=-1,
                 epsilon=LAYER_NORM_EPS)
    node("Add", [node("MatMul", [final, "lm_head"], "lm_out"), "lm_bias"], "logits")

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    kv_shape = ["batch", n_heads, "past_sequence_length", head_size]
    present_shape = ["batch", n_heads, "total_sequence_length", head_size]
    value = helper.make_tensor_value_info
    inputs = [value("input_ids", i64, ["batch", "sequence_length"]),
              value("attention_mask", i64, ["batch", "total_sequence_length"]),
              value("position_ids", i64, ["batch", "sequence_length"])]
    outputs = [value("logits", f32, ["batch", "sequence_length", vocab])]
    for i in range(n_layers):
        for kind in ("key", "value"):
            inputs.append(value(f"past_key_values.{i}.{kind}", f32, kv_shape))
            outputs.append(value(f"present.{i}.{kind}", f32, present_shape))
    graph = helper.make_graph(nodes, "tiny_decoder", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             producer_name="edgebench tests/onnx/tiny_decoder.py", ir_version=8)


def _mask_nodes(node) -> None:
    """`allowed` [batch, 1, seq, total]: key j visible to new token i iff j <= past + i and
    attention_mask[j] is 1 (what the cache-free reference computes with a triangle)."""
    total = node("Squeeze", [node("Shape", ["attention_mask"], "mask_shape_t", start=1, end=2)],
                 "total_len")
    seq = node("Squeeze", [node("Shape", ["input_ids"], "ids_shape_s", start=1, end=2)], "seq_len")
    past = node("Sub", [total, seq], "past_len")
    keys = node("Unsqueeze", [node("Range", ["zero", total, "one"], "key_pos"),
                              _const_axes(node, "ax0", [0])], "key_row")
    queries = node("Unsqueeze", [node("Range", [past, total, "one"], "query_pos"),
                                 _const_axes(node, "ax1", [1])], "query_col")
    causal = node("LessOrEqual", [keys, queries], "causal")
    padding = node("Unsqueeze", [node("Cast", ["attention_mask"], "mask_bool", to=9),
                                 _const_axes(node, "ax12", [1, 2])], "padding")
    node("And", [causal, padding], "allowed")


def _const_axes(node, name: str, axes: list[int]) -> str:
    """An int64 constant made by a Constant node (so it can be created from inside helpers)."""
    from onnx import helper

    return node("Constant", [], name, value=helper.make_tensor(name, 7, [len(axes)], axes))


def _layer_nodes(node, i: int, x: str) -> str:
    """One pre-norm block: x + attention(norm(x)), then + mlp(norm(x))."""
    p = f"l{i}."
    h = node("LayerNormalization", [x, "ln_scale", "ln_bias"], p + "attn_norm", axis=-1,
             epsilon=LAYER_NORM_EPS)

    def heads(name: str) -> str:  # [b, s, hidden] -> [b, heads, s, head_size]
        proj = node("MatMul", [h, p + name], p + name + "_proj")
        split = node("Reshape", [proj, "heads_shape"], p + name + "_split")
        return node("Transpose", [split], p + name + "_heads", perm=[0, 2, 1, 3])

    q, k, v = heads("q"), heads("k"), heads("v")
    keys = node("Concat", [f"past_key_values.{i}.key", k], f"present.{i}.key", axis=2)
    values = node("Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value", axis=2)
    keys_t = node("Transpose", [keys], p + "keys_t", perm=[0, 1, 3, 2])
    scores = node("Mul", [node("MatMul", [q, keys_t], p + "qk"), "scale"], p + "scores")
    scores = node("Where", ["allowed", scores, "masked"], p + "masked_scores")
    probs = node("Softmax", [scores], p + "probs", axis=-1)
    ctx = node("Transpose", [node("MatMul", [probs, values], p + "ctx")], p + "ctx_t",
               perm=[0, 2, 1, 3])
    ctx = node("Reshape", [ctx, "hidden_shape"], p + "ctx_merged")
    x = node("Add", [x, node("MatMul", [ctx, p + "o"], p + "attn_out")], p + "x_attn")
    h2 = node("LayerNormalization", [x, "ln_scale", "ln_bias"], p + "mlp_norm", axis=-1,
              epsilon=LAYER_NORM_EPS)
    up = node("Relu", [node("MatMul", [h2, p + "up"], p + "up_proj")], p + "up_act")
    return node("Add", [x, node("MatMul", [up, p + "down"], p + "down_proj")], p + "x_out")


def reference_logits(tiny: TinyDecoder, token_ids: list[int]) -> np.ndarray:
    """(len(token_ids), vocab) float32 logits in numpy, whole sequence at once, no cache."""
    w = tiny.weights
    n = len(token_ids)
    x = w["embed"][np.asarray(token_ids)] + w["pos_embed"][np.arange(n)]
    causal = np.tril(np.ones((n, n), dtype=bool))
    for i in range(tiny.n_layers):
        h = _layer_norm(x)
        q, k, v = (_split(h @ w[f"l{i}.{m}"], tiny.n_heads) for m in ("q", "k", "v"))
        scores = np.where(causal, q @ k.transpose(0, 2, 1) / np.sqrt(tiny.head_size), MASKED)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = x + ctx @ w[f"l{i}.o"]
        x = x + np.maximum(_layer_norm(x) @ w[f"l{i}.up"], 0) @ w[f"l{i}.down"]
    return (_layer_norm(x) @ w["lm_head"] + w["lm_bias"]).astype(np.float32)


def reference_greedy(tiny: TinyDecoder, prompt_ids: list[int], max_tokens: int,
                     suppress_eos: bool = False) -> list[int]:
    """Greedy continuation by recomputing the whole sequence for every token; stops at EOS
    (not included) unless `suppress_eos`, which masks EOS as onnxruntime-genai's min_length does."""
    ids, out = list(prompt_ids), []
    while len(out) < max_tokens:
        row = reference_logits(tiny, ids)[-1].copy()
        if suppress_eos:
            row[tiny.eos_token_id] = -np.inf
        token = int(np.argmax(row))
        if token == tiny.eos_token_id:
            break
        ids.append(token)
        out.append(token)
    return out


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS)


def _split(x: np.ndarray, n_heads: int) -> np.ndarray:
    """[seq, hidden] -> [heads, seq, head_size]."""
    return x.reshape(x.shape[0], n_heads, -1).transpose(1, 0, 2)


def genai_config(tiny: TinyDecoder) -> dict:
    """What onnxruntime-genai's model builder writes for a decoder-only model (CPU, fp32)."""
    return {
        "model": {
            "bos_token_id": tiny.bos_token_id,
            "context_length": tiny.context_length,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": "model.onnx",
                "head_size": tiny.head_size,
                "hidden_size": tiny.n_heads * tiny.head_size,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "position_ids": "position_ids",
                           "past_key_names": "past_key_values.%d.key",
                           "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
                "num_attention_heads": tiny.n_heads,
                "num_hidden_layers": tiny.n_layers,
                "num_key_value_heads": tiny.n_heads,
            },
            "eos_token_id": tiny.eos_token_id,
            "pad_token_id": tiny.vocab[PAD],
            "type": "llama",
            "vocab_size": tiny.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True,
            "length_penalty": 1.0, "max_length": tiny.context_length, "min_length": 0,
            "no_repeat_ngram_size": 0, "num_beams": 1, "num_return_sequences": 1,
            "past_present_share_buffer": False, "repetition_penalty": 1.0,
            "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    }


def tokenizer_json(vocab: dict[str, int]) -> dict:
    """A Hugging Face tokenizer.json: byte-level BPE (GPT-2 style), special tokens first."""
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "vocab": vocab,
                  "merges": [f"{a} {b}" for a, b in MERGES]},
    }


def tokenizer_config(context_length: int) -> dict:
    """No BOS added by the tokenizer: onnxruntime-genai's never adds it; the backend does."""
    return {"tokenizer_class": "GPT2Tokenizer", "bos_token": BOS, "eos_token": EOS,
            "pad_token": PAD, "unk_token": EOS, "add_bos_token": False,
            "add_prefix_space": False, "model_max_length": context_length}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
