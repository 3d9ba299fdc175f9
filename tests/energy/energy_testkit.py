"""Helpers for the energy tests: fixture sysfs trees, fake tools on PATH, recorded outputs."""
from __future__ import annotations

import os
import stat
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def write_tree(root: Path, files: dict[str, object]) -> Path:
    """Create device files (absolute device paths) under root; values are written as text."""
    for device_path, value in files.items():
        p = root / device_path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")
    return root


def set_file(root: Path, device_path: str, value: object) -> None:
    """Write a fixture file atomically, as sysfs does: a sampler never reads it half-written."""
    target = root / device_path.lstrip("/")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, target)


def fake_tool(bin_dir: Path, name: str, script: str) -> Path:
    """A shell script named like the real tool; tests put bin_dir first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    p = bin_dir / name
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(p.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    return p


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
