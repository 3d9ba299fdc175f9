"""The `adb` transport: a phone's Termux sshd reached through `adb forward` (USB or Wi-Fi).

This is how phone benches drive Termux: adb (USB, or `adb connect HOST:PORT` over Wi-Fi, so a
phone measured on its battery is not charging over the cable) forwards a local port to Termux's
sshd (port 8022), and everything else is the ssh transport through that port. adb also tells the
controller whether the phone is charging (`dumpsys battery`), which the run warns about when the
battery sensor measures.

The `adb` client found on PATH is used, with a timeout, and only these commands (the stand-in in
tests/fleet/fake_adb.py speaks exactly this subset):
  adb connect HOST:PORT                      (serial is HOST:PORT: adb over Wi-Fi)
  adb -s SERIAL get-state                    -> "device"
  adb -s SERIAL forward tcp:0 tcp:PORT       -> the local port chosen
  adb -s SERIAL forward --remove tcp:LOCAL
  adb -s SERIAL shell dumpsys battery        -> "  AC powered: false", "  status: 3", ...
The host key of Termux's sshd is checked under the alias `termux-SERIAL` (the forwarded local
port changes each time): put `termux-SERIAL ssh-ed25519 AAAA...` in the known_hosts file.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from typing import Any

from ...errors import HarnessError
from .base import TransportError
from .ssh import SshProcess, SshTransport

ADB_TIMEOUT_S = 20.0
BATTERY_STATUS = {"1": "Unknown", "2": "Charging", "3": "Discharging", "4": "Not charging", "5": "Full"}


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    """`dumpsys battery` -> the fields read_battery gives (status, charging, external power, level)."""
    fields = dict(re.findall(r"^\s*([A-Za-z ]+):\s*(.*?)\s*$", text, flags=re.M))
    powered = any(fields.get(f"{k} powered", "false") == "true" for k in ("AC", "USB", "Wireless", "Dock"))
    status = BATTERY_STATUS.get(fields.get("status", ""), None)
    level = fields.get("level")
    return {"source": "adb dumpsys battery", "status": status,
            "charging": status == "Charging" if status else None, "on_external_power": powered,
            "level_pct": int(level) if level and level.isdigit() else None}


class AdbTransport:
    kind = "adb"

    def __init__(self, spec: Any):
        self.spec = spec
        self.local_port: int | None = None
        self.ssh: SshTransport | None = None
        self.battery: dict[str, Any] | None = None

    def _adb(self, *args: str, serial: bool = True) -> str:
        exe = shutil.which("adb")
        if exe is None:
            raise HarnessError(f"{self.spec.name}: `adb` not found on PATH (install Android "
                               "platform-tools on this controller)")
        argv = [exe, *(("-s", self.spec.serial) if serial else ()), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=ADB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TransportError(f"adb {' '.join(args)}: no answer in {ADB_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise TransportError(f"adb {' '.join(args)}: {(done.stderr or done.stdout).strip()[:200]}")
        return done.stdout

    def identity(self) -> dict[str, Any]:
        return {"transport": self.kind, "serial": self.spec.serial, "termux_port": self.spec.termux_port,
                "user": self.spec.user, "wifi": ":" in self.spec.serial}

    def connect(self) -> None:
        if ":" in self.spec.serial:  # adb over Wi-Fi: the phone is not on a (charging) cable
            said = self._adb("connect", self.spec.serial, serial=False)
            if "connected" not in said:
                raise TransportError(f"adb connect {self.spec.serial}: {said.strip()[:200]}")
        state = self._adb("get-state").strip()
        if state == "unauthorized":
            raise HarnessError(f"{self.spec.name}: the phone has not authorised this controller "
                               "(accept the USB debugging prompt on it)")
        if state != "device":
            raise TransportError(f"adb says the phone is {state or 'absent'}")
        self.battery = parse_dumpsys_battery(self._adb("shell", "dumpsys", "battery"))
        port = self._adb("forward", "tcp:0", f"tcp:{self.spec.termux_port}").strip()
        if not port.isdigit():
            raise TransportError(f"adb forward printed {port[:80]!r}, not a port")
        self.local_port = int(port)
        ssh_spec = dataclasses.replace(self.spec, transport="ssh", host="127.0.0.1", port=self.local_port)
        self.ssh = SshTransport(ssh_spec, host_key_alias=f"termux-{self.spec.serial}")
        try:
            self.ssh.connect()
        except (TransportError, HarnessError) as e:
            self._unforward()
            if isinstance(e, TransportError):
                raise TransportError(f"Termux sshd (port {self.spec.termux_port} on the phone) does "
                                     f"not answer through adb forward: {e}; is `sshd` running in "
                                     "Termux?") from None
            raise

    def _link(self) -> SshTransport:
        if self.ssh is None:
            raise TransportError("not connected")
        return self.ssh

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> SshProcess:
        return self._link().start(argv, cwd, env)

    def list_files(self, folder: str) -> dict[str, int]:
        return self._link().list_files(folder)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return self._link().read_range(path, offset, length)

    def write_file(self, path: str, data: bytes) -> None:
        self._link().write_file(path, data)

    def _unforward(self) -> None:
        port, self.local_port = self.local_port, None
        if port is not None:
            try:
                self._adb("forward", "--remove", f"tcp:{port}")
            except (TransportError, HarnessError):
                pass  # the phone is gone; adb drops its forwards with it

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
            self.ssh = None
        self._unforward()
