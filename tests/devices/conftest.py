"""Fixture trees (HARNESS_SYSFS_ROOT) and fake device tools on PATH for the devices room."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "devices"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class FakeTools:
    """Writes /bin/sh scripts using only shell builtins, so PATH can hold nothing but them and a
    real vcgencmd/getprop/nvpmodel on the test machine can never leak in."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir

    def script(self, name: str, body: str) -> Path:
        p = self.bin_dir / name
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(0o755)
        return p

    def output(self, name: str, stdout: str, rc: int = 0, stderr: str = "") -> Path:
        body = f"printf '%s' {_sh_quote(stdout)}"
        if stderr:
            body += f"\nprintf '%s' {_sh_quote(stderr)} >&2"
        return self.script(name, body + f"\nexit {rc}")

    def getprop(self, props: dict[str, str]) -> Path:
        cases = "\n".join(f"  {_sh_quote(k)}) printf '%s\\n' {_sh_quote(v)} ;;" for k, v in props.items())
        return self.script("getprop", f'case "$1" in\n{cases}\n  *) printf "\\n" ;;\nesac')

    def nvpmodel(self, modes: dict[int, str], start_id: int, state_dir: Path,
                 set_rc: int = 0, set_stderr: str = "") -> Path:
        """A stateful nvpmodel: -m ID remembers the mode, -q prints it like the real tool."""
        state = state_dir / "nvpmodel_mode"
        state.write_text(str(start_id))
        names = "\n".join(f"    {i}) name={_sh_quote(n)} ;;" for i, n in modes.items())
        body = f"""STATE={_sh_quote(str(state))}
case "$1" in
  -m)
    if [ {set_rc} -ne 0 ]; then printf '%s\\n' {_sh_quote(set_stderr)} >&2; exit {set_rc}; fi
    printf '%s' "$2" > "$STATE" ;;
  -q)
    read id < "$STATE"
    case "$id" in
{names}
    esac
    printf 'NV Fan Mode:quiet\\nNV Power Mode: %s\\n%s\\n' "$name" "$id" ;;
esac"""
        return self.script("nvpmodel", body)


@pytest.fixture
def tools(tmp_path, monkeypatch) -> FakeTools:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return FakeTools(bin_dir)


@pytest.fixture
def root(monkeypatch):
    """Point harness.sysfs at a committed fixture tree: root('raspberry-pi-5')."""
    def use(name: str) -> Path:
        p = FIXTURES / name
        assert p.is_dir(), p
        monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(p))
        return p
    return use


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A writable copy of a fixture tree (for tests that change files): tree('raspberry-pi-5')."""
    def use(name: str) -> Path:
        dst = tmp_path / "root"
        shutil.copytree(FIXTURES / name, dst)
        monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(dst))
        return dst
    return use


@pytest.fixture(autouse=True)
def _no_user_profiles(monkeypatch):
    monkeypatch.delenv("HARNESS_DEVICES_DIR", raising=False)
    monkeypatch.delenv("HARNESS_SYSFS_ROOT", raising=False)
