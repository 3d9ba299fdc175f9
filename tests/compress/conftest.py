"""Fixtures for the compression tests: a tiny Gemma 3 GGUF built once per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compress_tiny import write_tiny_gemma3  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, str]:
    """(path, sha256) of the tiny F32 model."""
    from harness.models import sha256_file

    path = write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "tiny-gemma3.gguf")
    return path, sha256_file(path)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"
