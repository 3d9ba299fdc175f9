"""The README's test command is what CI runs, in a fresh virtual environment."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim_in_a_fresh_venv():
    test_cmd = next(c for c in _readme_commands() if "pytest" in c)
    ci = (REPO / ".ci/run").read_text()
    assert test_cmd.strip() in ci.splitlines()
    venv_at = ci.index("-m venv")
    assert venv_at < ci.index(test_cmd.strip())  # installed into the fresh venv, not the machine
    assert "source" in ci[venv_at:ci.index(test_cmd.strip())]


def test_every_third_party_import_of_tests_and_benchmarks_is_declared():
    """A fresh venv has only what the extras install: scipy once hid here on a dev machine."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = " ".join(meta["dependencies"] + [d for ds in meta["optional-dependencies"].values()
                                                for d in ds]).lower()
    import_names = {"yaml": "pyyaml", "serial": "pyserial", "pynvml": "nvidia-ml-py",
                    "onnxruntime_genai": "onnxruntime-genai", "websocket": "websocket-client",
                    "pytest_benchmark": "pytest-benchmark"}
    local = {"harness", "tests", "benchmarks", "conftest"}
    local |= {py.stem for folder in ("tests", "benchmarks") for py in (REPO / folder).rglob("*.py")}
    found: set[str] = set()
    for folder in ("tests", "benchmarks"):
        for py in (REPO / folder).rglob("*.py"):
            for m in re.finditer(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", py.read_text(), re.M):
                found.add(m.group(1))
            for m in re.finditer(r"importorskip\(\"([A-Za-z_]\w*)", py.read_text()):
                found.add(m.group(1))
    import sys
    third_party = {n for n in found if n not in sys.stdlib_module_names and n not in local
                   and not n.startswith("_")}
    missing = sorted(n for n in third_party
                     if import_names.get(n, n).lower().replace("_", "-") not in declared)
    assert not missing, f"imported by tests/benchmarks but in no extra of pyproject.toml: {missing}"
