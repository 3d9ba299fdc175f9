"""Backends by runtime name, imported lazily: choosing llama_cpp never imports onnxruntime."""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import HarnessError
from .base import Backend

_BACKENDS = {
    "llama_cpp": ("harness.backends.llama_cpp", "LlamaCppBackend", "llama-cpp-python"),
    "onnx": ("harness.backends.onnx_genai", "OnnxGenaiBackend", "edgebench[onnx]"),
    # a server's model (standard library HTTP): the level carries its url and model name
    "openai_http": ("harness.backends.openai_http", "OpenAIHttpBackend", "edgebench"),
}


def get_backend(runtime: str, level: Any = None) -> Backend:
    """A fresh backend; a level that is not a file (a server's endpoint) configures its own."""
    if runtime not in _BACKENDS:
        raise HarnessError(f"unknown runtime '{runtime}'; known: {', '.join(_BACKENDS)}")
    module, cls, pip_name = _BACKENDS[runtime]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise HarnessError(f"runtime '{runtime}' needs a package that is not installed ({e.name}): "
                           f"pip install {pip_name}") from None
    backend_cls = getattr(mod, cls)
    if level is not None and hasattr(backend_cls, "for_level"):
        return backend_cls.for_level(level)
    return backend_cls()
