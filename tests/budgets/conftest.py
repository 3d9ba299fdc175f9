"""Fixtures for the budgets tests: run directories in tmp dirs and budgets files."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from budgets_runs import write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    def _make(name: str, cells: list[dict[str, Any]], manifest: dict[str, Any] | None = None) -> Path:
        root = tmp_path / "results"
        unique, i = name, 1
        while (root / unique).exists():  # a test may build several runs from one name
            unique, i = f"{name}-{i}", i + 1
        return write_run(root, unique, cells, manifest)
    return _make


@pytest.fixture
def budgets_file(tmp_path: Path) -> Callable[[str], Path]:
    def _write(text: str) -> Path:
        p = tmp_path / f"budgets-{uuid.uuid4().hex[:6]}.yaml"
        p.write_text(text)
        return p
    return _write
