"""Backends by runtime name, imported lazily: choosing llama_cpp never imports onnxruntime."""
from __future__ import annotations

import importlib

from ..errors import HarnessError
from .base import Backend

_BACKENDS = {
    "llama_cpp": ("harness.backends.llama_cpp", "LlamaCppBackend", "llama-cpp-python"),
    "onnx": ("harness.backends.onnx_genai", "OnnxGenaiBackend", "edgebench[onnx]"),
}


def get_backend(runtime: str) -> Backend:
    if runtime not in _BACKENDS:
        raise HarnessError(f"unknown runtime '{runtime}'; known: {', '.join(_BACKENDS)}")
    module, cls, pip_name = _BACKENDS[runtime]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise HarnessError(f"runtime '{runtime}' needs a package that is not installed ({e.name}): "
                           f"pip install {pip_name}") from None
    return getattr(mod, cls)()
