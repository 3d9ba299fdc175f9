"""`onnx` runtime: decoder-only LLMs exported for onnxruntime-genai (a folder with genai_config.json).

Measured the same way as the llama.cpp backend so the two runtimes compare cell for cell: greedy
decoding one token at a time, monotonic timestamps for the start, every generated token and the
end, the BOS token added by the harness (onnxruntime-genai's tokenizer never adds it), and EOS not
counted as an output token. onnxruntime-genai is imported only in `load`, so the runner and the
folder checks work without the `[onnx]` extra.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import HarnessError, ModelError
from .base import Backend, Generation, RuntimeSettings

GENAI_CONFIG = "genai_config.json"
INSTALL_HINT = "install the ONNX runtime extra: pip install 'edgebench[onnx]'"

# Names accepted in RuntimeSettings.extra['providers'] -> onnxruntime-genai's provider name.
# "cpu" means: no execution provider appended (onnxruntime's default CPU provider).
PROVIDERS = {
    "cpu": None,
    "cuda": "cuda",
    "xnnpack": "XNNPACK",
    "qnn": "QNN",
    "dml": "DML",
    "openvino": "OpenVINO",
    "webgpu": "WebGPU",
    "nvtensorrtrtx": "NvTensorRtRtx",
}


@dataclass(frozen=True)
class ModelFolder:
    """What the backend needs from genai_config.json, read without onnxruntime-genai."""

    path: Path
    decoder_file: Path
    context_length: int
    sliding_window: int | None  # window size of the sliding-attention layers, if any
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    model_type: str


@dataclass(frozen=True)
class Provider:
    """One execution provider to append, with its provider options (strings, as ORT wants)."""

    name: str  # key of PROVIDERS
    options: tuple[tuple[str, str], ...] = ()


def check_model_folder(path: Path) -> ModelFolder:
    """Fail early, naming the missing piece, instead of onnxruntime-genai's generic load error."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"ONNX model folder not found: {path}")
    if not path.is_dir():
        raise ModelError(f"{path}: runtime 'onnx' expects a model folder containing {GENAI_CONFIG} "
                         "(made by `python -m harness compress --to onnx`); GGUF files run on "
                         "runtime 'llama_cpp'")
    config_file = path / GENAI_CONFIG
    if not config_file.is_file():
        raise ModelError(f"{path}: no {GENAI_CONFIG}; this is not an onnxruntime-genai model folder "
                         "(export one with `python -m harness compress --to onnx --precision fp32 "
                         "<model>`)")
    try:
        config = json.loads(config_file.read_text())
        model = config["model"]
        decoder = model["decoder"]
        decoder_name = decoder["filename"]
    except json.JSONDecodeError as e:
        raise ModelError(f"{config_file}: not valid JSON ({e}); re-export the model") from None
    except (KeyError, TypeError) as e:
        raise ModelError(f"{config_file}: missing key {e} (expected model.decoder.filename); "
                         "re-export the model with onnxruntime-genai's model builder") from None
    decoder_file = path / decoder_name
    if not decoder_file.is_file():
        onnx_files = sorted(p.name for p in path.glob("*.onnx"))
        raise ModelError(f"{path}: {GENAI_CONFIG} names decoder '{decoder_name}' but that file is "
                         f"missing (.onnx files present: {onnx_files or 'none'}); the export is "
                         "incomplete, delete the folder and export again")
    window = decoder.get("sliding_window") or {}
    eos = model.get("eos_token_id", [])
    return ModelFolder(
        path=path,
        decoder_file=decoder_file,
        context_length=int(model.get("context_length", 0)) or 2048,
        sliding_window=int(window["window_size"]) if window.get("window_size") else None,
        bos_token_id=model.get("bos_token_id"),
        eos_token_ids=tuple(eos if isinstance(eos, list) else [eos]),
        model_type=str(model.get("type", "unknown")),
    )


def parse_providers(value: Any) -> list[Provider]:
    """`extra['providers']`: a list of names or {name: {option: value}} mappings, in order of use.

    Absent means CPU. Unknown names fail here, before a model is loaded.
    """
    if value is None:
        return [Provider("cpu")]
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise HarnessError(f"runtime setting 'providers' must be a non-empty list, got {value!r}")
    providers = []
    for item in value:
        name, options = _provider_item(item)
        key = name.lower()
        if key not in PROVIDERS:
            raise HarnessError(f"unknown ONNX execution provider '{name}'; choose from: "
                               f"{', '.join(PROVIDERS)}")
        providers.append(Provider(key, tuple((str(k), str(v)) for k, v in options.items())))
    return providers


def _provider_item(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        name, options = next(iter(item.items()))
        if isinstance(name, str) and isinstance(options, (dict, type(None))):
            return name, dict(options or {})
    raise HarnessError(f"an ONNX provider is a name (e.g. cuda) or {{name: {{option: value}}}}, "
                       f"got {item!r}")


def generation_max_length(n_prompt: int, max_tokens: int, n_ctx: int,
                          folder: ModelFolder) -> int:
    """onnxruntime-genai's max_length (prompt + output) for one generation.

    It is n_ctx (what the llama.cpp backend allocates its KV cache for, so memory compares), raised
    to the sliding window: below the window, onnxruntime-genai's windowed KV cache for Gemma 3
    produces wrong tokens. A prompt that does not fit is an error, as in llama.cpp.
    """
    max_length = max(n_ctx, folder.sliding_window or 0)
    max_length = min(max_length, folder.context_length)
    if n_prompt + max_tokens > max_length:
        raise HarnessError(f"prompt ({n_prompt} tokens) + max_tokens ({max_tokens}) exceed the "
                           f"context of {max_length} tokens (n_ctx {n_ctx}, model context "
                           f"{folder.context_length}); raise n_ctx or shorten the workload")
    return max_length


def _import_og():
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise HarnessError(f"runtime 'onnx' needs onnxruntime-genai ({e}); {INSTALL_HINT}") from None
    return og


class OnnxGenaiBackend(Backend):
    """onnxruntime-genai model, greedy search, one Generator per call (no cache reuse)."""

    name = "onnx"

    def __init__(self) -> None:
        self._og: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._folder: ModelFolder | None = None
        self._settings = RuntimeSettings()
        self._providers: list[Provider] = []

    def load(self, model: Path, settings: RuntimeSettings) -> None:
        folder = check_model_folder(model)
        providers = parse_providers(settings.extra.get("providers"))
        og = _import_og()
        config = og.Config(str(folder.path))
        config.clear_providers()
        for p in providers:
            _append_provider(config, p)
        if settings.n_threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": int(settings.n_threads)}}}}))
        try:
            self._model = og.Model(config)
        except RuntimeError as e:
            raise _load_error(folder, providers, e) from None
        self._tokenizer = og.Tokenizer(self._model)
        self._og, self._folder, self._settings, self._providers = og, folder, settings, providers

    def generate(self, prompt: str, max_tokens: int, stop: Sequence[str] = (),
                 add_bos: bool = True, ignore_eos: bool = False) -> Generation:
        """`ignore_eos`: EOS is suppressed until max_tokens (onnxruntime-genai's min_length),
        so a throughput workload always decodes the same number of tokens."""
        tokens = self.tokenize(prompt, add_bos=add_bos)
        max_length = generation_max_length(len(tokens), max_tokens, self._settings.n_ctx,
                                           self._require_folder())
        generator = self._generator(max_length,
                                    min_length=len(tokens) + max_tokens if ignore_eos else 0)
        eos = set(self._require_folder().eos_token_ids)
        out: list[int] = []
        times: list[float] = []
        t_first: float | None = None
        stop_reason, text = "length", ""
        t_start = time.monotonic()
        generator.append_tokens(np.asarray([tokens], dtype=np.int32))  # prefill
        while len(out) < max_tokens:
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            now = time.monotonic()
            t_first = now if t_first is None else t_first
            if token in eos and not ignore_eos:
                stop_reason = "eos"
                break
            out.append(token)
            times.append(now)
            if stop:
                text = self.detokenize(out)
                cut = _first_stop(text, stop)
                if cut is not None:
                    text, stop_reason = text[:cut], "stop"
                    break
        t_end = time.monotonic()
        if stop_reason != "stop":
            text = self.detokenize(out)
        return Generation(
            text=text, tokens_in=len(tokens), tokens_out=len(out), t_start_s=t_start,
            t_first_token_s=t_end if t_first is None else t_first, t_end_s=t_end,
            token_times_s=tuple(times), stop_reason=stop_reason, tokens=tuple(out))

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [int(t) for t in self._require_tokenizer().encode(text)]
        bos = self.bos_token
        if ids and ids[0] == bos:  # some tokenizer configs add it themselves; never twice
            ids = ids[1:]
        return [bos] + ids if add_bos else ids

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        return str(self._require_tokenizer().decode(np.asarray(tokens, dtype=np.int32)))

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        if not self._settings.need_logits:
            raise HarnessError("logits() needs RuntimeSettings(need_logits=True) at load, as on "
                               "every runtime; the workload must ask for it")
        if not tokens:
            return np.zeros((0, 0), dtype=np.float32)
        folder = self._require_folder()
        max_length = max(len(tokens) + 1, folder.sliding_window or 0)
        if len(tokens) + 1 > folder.context_length:
            raise HarnessError(f"{len(tokens)} tokens exceed the model context "
                               f"({folder.context_length})")
        generator = self._generator(min(max_length, folder.context_length))
        generator.append_tokens(np.asarray([list(tokens)], dtype=np.int32))
        logits = np.asarray(generator.get_output("logits"))
        return np.ascontiguousarray(logits.reshape(len(tokens), -1), dtype=np.float32)

    def unload(self) -> None:
        self._model = self._tokenizer = None

    def info(self) -> dict[str, Any]:
        og = self._og or _import_og()
        info: dict[str, Any] = {
            "runtime": self.name,
            "version": og.__version__,
            "onnxruntime_genai_version": og.__version__,
            "providers": [p.name for p in self._providers],
        }
        try:
            import onnxruntime
            info["onnxruntime_version"] = onnxruntime.__version__
        except ImportError:
            info["onnxruntime_version"] = None
        if self._folder is not None:
            info["model_type"] = self._folder.model_type
            info["device_type"] = str(self._model.device_type) if self._model else None
        return info

    @property
    def eos_token(self) -> int:
        return self._require_folder().eos_token_ids[0]

    @property
    def bos_token(self) -> int:
        folder = self._require_folder()
        if folder.bos_token_id is not None:
            return int(folder.bos_token_id)
        return int(self._require_tokenizer().bos_token_id)

    def _generator(self, max_length: int, min_length: int = 0) -> Any:
        params = self._og.GeneratorParams(self._model)
        params.set_search_options(max_length=max_length, min_length=min_length, do_sample=False,
                                  num_beams=1)
        return self._og.Generator(self._model, params)

    def _require_folder(self) -> ModelFolder:
        if self._folder is None:
            raise HarnessError("the onnx backend has no model loaded; call load() first")
        return self._folder

    def _require_tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise HarnessError("the onnx backend has no model loaded; call load() first")
        return self._tokenizer


def runtime_info() -> dict[str, Any]:
    """For the manifest's runtime_info['onnx'] (no model needed): versions and usable providers."""
    og = _import_og()
    info: dict[str, Any] = {"runtime": "onnx", "version": og.__version__}
    try:
        import onnxruntime

        info["onnxruntime_version"] = onnxruntime.__version__
        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        info["onnxruntime_version"] = None
    return info


def _append_provider(config: Any, provider: Provider) -> None:
    og_name = PROVIDERS[provider.name]
    if og_name is None:
        return
    try:
        config.append_provider(og_name)
        for key, value in provider.options:
            config.set_provider_option(og_name, key, value)
    except RuntimeError as e:
        raise HarnessError(f"ONNX execution provider '{provider.name}': {e}") from None


def _load_error(folder: ModelFolder, providers: list[Provider], e: Exception) -> HarnessError:
    """onnxruntime-genai reports a missing provider only when the model loads; say what to do."""
    names = [p.name for p in providers]
    if any(p.name != "cpu" for p in providers):
        return HarnessError(f"{folder.path}: loading with ONNX execution providers {names} failed: "
                            f"{e}. The installed onnxruntime-genai build may lack that provider "
                            "(e.g. pip install onnxruntime-genai-cuda for cuda); or set "
                            "providers: [cpu]")
    return ModelError(f"{folder.path}: onnxruntime-genai could not load the model: {e}; "
                      "the export may be damaged, delete the folder and export again")


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(hits) if hits else None
