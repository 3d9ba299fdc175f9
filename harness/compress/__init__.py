"""Compression levels: parse them (levels.py), build GGUF levels once and cache them.

Imports are lazy so that validating a matrix does not load numpy, gguf or llama.cpp.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Artifact", "Level", "ensure_level", "parse_level"]


def __getattr__(name: str) -> Any:
    if name in ("Level", "parse_level"):
        from . import levels

        return getattr(levels, name)
    if name in ("Artifact", "ensure_level"):
        from . import gguf_quant

        return getattr(gguf_quant, name)
    raise AttributeError(f"module 'harness.compress' has no attribute '{name}'")
