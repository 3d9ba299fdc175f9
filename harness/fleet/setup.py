"""`fleet setup fleet.yaml [--install [WHEEL]]`: is every device ready, and make it so.

Each device gets one line: ready (version, python, profile, clock offset), or what is wrong
(unreachable, bad key, no python, edgebench missing or of another version, disk full, clock
off). With `--install`, a device whose edgebench is missing or differs gets this controller's
wheel (built from its source tree when no wheel is named) copied over and installed with the
device's own pip; nothing else is installed or started on the device.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .. import __version__, devices
from ..errors import HarnessError
from .inventory import DeviceSpec, load_inventory
from .plan import controller_identity
from .session import DeviceSession
from .transports import TransportError

BUILD_TIMEOUT_S = 300
PIP_TIMEOUT_S = 600


def setup_devices(inventory_file: str, install: str | None) -> int:
    """0: every device ready; 2: some device is not (its line says why)."""
    inventory = load_inventory(inventory_file, set(devices.load_profiles()))
    wheel = None
    bad = 0
    for spec in inventory.devices:
        session = DeviceSession(spec, "setup", controller_identity("setup"))
        try:
            problem = _check(session)
            if problem and install and _installable(problem):
                wheel = wheel or _wheel(install)
                print(f"[{spec.name}] installing {wheel.name} ...", flush=True)
                _install(session, spec, wheel)
                problem = _check(session)
        finally:
            session.close()
        if problem:
            bad += 1
            print(f"[{spec.name}] not ready: {problem.removeprefix(spec.name + ': ')}")
        else:
            off = session.clock.offset_s * 1000 if session.clock else 0.0
            print(f"[{spec.name}] ready: edgebench {__version__}, python {session.info.get('python')}, "
                  f"profile {session.profile}, clock offset {off:+.1f} ms")
    return 2 if bad else 0


def _check(session: DeviceSession) -> str | None:
    session.close()
    try:
        session.prepare()
    except (HarnessError, TransportError, OSError) as e:
        return str(e)
    return None


def _installable(problem: str) -> bool:
    return "not installed" in problem or "on the device," in problem


def _wheel(install: str) -> Path:
    """The wheel to install: the one named, or one built from this controller's source tree."""
    if install != "build":
        wheel = Path(install)
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise HarnessError(f"--install {install}: not a wheel file (.whl)")
        return wheel
    source = Path(__file__).resolve().parents[2]
    if not (source / "pyproject.toml").exists():
        raise HarnessError("this controller's edgebench is not a source tree; name a wheel: "
                           "fleet setup fleet.yaml --install edgebench-X.whl")
    out = Path(tempfile.mkdtemp(prefix="edgebench-wheel-"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-w", str(out), str(source)], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    wheels = list(out.glob("edgebench-*.whl"))
    if done.returncode != 0 or not wheels:
        raise HarnessError(f"building this controller's wheel failed: {done.stderr.strip()[-300:]}")
    return wheels[0]


def _install(session: DeviceSession, spec: DeviceSpec, wheel: Path) -> None:
    """Copy the wheel into the device's working folder and pip-install it there."""
    rel = f"wheels/{wheel.name}"
    session.transport.write_file(spec.remote(rel), wheel.read_bytes())
    argv = [spec.python, "-m", "pip", "install", "--force-reinstall", "--no-deps", rel] \
        if session.info.get("harness_version") else [spec.python, "-m", "pip", "install", rel]
    proc = session.transport.start(argv, spec.workdir, spec.env)
    proc.close()
    out = "\n".join(proc.lines())
    code = proc.wait(PIP_TIMEOUT_S)
    if code != 0:
        raise HarnessError(f"{spec.name}: pip install {wheel.name} failed (exit {code}): "
                           f"{(proc.stderr_tail() or out).strip()[-300:]}")
