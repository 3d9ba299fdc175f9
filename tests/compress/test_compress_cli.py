"""`python -m harness compress` end to end on the tiny model (a real child process, real files)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def compress(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "harness", "compress", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_cli_builds_levels_then_reuses_them(tiny_model, tmp_path):
    path, _ = tiny_model
    cache = tmp_path / "cache"
    first = compress(str(path), "--level", "Q8_0", "--level", "q4_0", "--json", cache=cache)
    assert first.returncode == 0, first.stderr
    recs = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["compression"]["level"] for r in recs] == ["Q8_0", "Q4_0"]
    assert all(r["compression"]["cache_hit"] is False for r in recs)
    assert all(Path(r["path"]).is_file() and str(cache) in r["path"] for r in recs)
    assert "quantizing to Q8_0" in first.stderr  # progress goes to stderr
    second = compress(str(path), "--level", "Q8_0", cache=cache)
    assert second.returncode == 0, second.stderr
    assert "cached (built in" in second.stdout and "MiB" in second.stdout and "bpw" in second.stdout


def test_cli_prune_option_names_the_level(tiny_model, tmp_path):
    path, _ = tiny_model
    out = compress(str(path), "--level", "F16", "--prune", "drop_layers:1", "--json",
                   cache=tmp_path / "cache")
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)["compression"]
    assert rec["level"] == "F16-drop1" and rec["prune"]["dropped_blocks"] == [4]


def test_cli_errors_are_clear(tiny_model, tmp_path):
    path, _ = tiny_model
    bad_level = compress(str(path), "--level", "Q4_K_X", cache=tmp_path / "c")
    assert bad_level.returncode == 2
    assert "unknown compression level 'Q4_K_X'" in bad_level.stderr and "Q4_K_M" in bad_level.stderr
    bad_prune = compress(str(path), "--level", "Q8_0", "--prune", "magnitude:lots", cache=tmp_path / "c")
    assert bad_prune.returncode == 2 and "is not a number" in bad_prune.stderr
    missing = compress(str(tmp_path / "nope.gguf"), "--level", "Q8_0", cache=tmp_path / "c")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
