"""A private OpenSSH server on 127.0.0.1 for the fleet tests (Debian's openssh-server).

Keys are generated into the test's temp folder (asyncssh writes OpenSSH-format keys, so no
ssh-keygen is needed); the server listens on loopback only, on a free high port, with key
authentication only. Every process it started is stopped by its pid.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_key(path: Path) -> str:
    """An ed25519 key pair at `path` (+ .pub); returns the public key line."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    path.chmod(0o600)
    public = key.export_public_key().decode().strip()
    path.with_suffix(".pub").write_text(public + "\n")
    return public


class SshServer:
    """sshd -f <tmp>/sshd_config; start, kill (the listener and every session), start again."""

    def __init__(self, folder: Path, user_public_keys: list[str]):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = folder / "hostkey"
        host_public = make_key(self.host_key)
        (folder / "authorized_keys").write_text("\n".join(user_public_keys) + "\n")
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public}\n")
        self.config = folder / "sshd_config"
        self.config.write_text(
            f"HostKey {self.host_key}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
            f"ListenAddress 127.0.0.1\nPort {self.port}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
            f"UsePAM no\nPidFile {folder / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
            "ClientAliveInterval 5\nClientAliveCountMax 3\n")
        self.pid: int | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
        pidfile = self.folder / "sshd.pid"
        pidfile.unlink(missing_ok=True)
        subprocess.run([SSHD, "-f", str(self.config), "-E", str(self.folder / "sshd.log")],
                       check=True, timeout=20)
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                self.pid = int(pidfile.read_text())
                break
            time.sleep(0.05)
        for _ in range(100):  # listening
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}: {(self.folder / 'sshd.log').read_text()}")

    def sshd_pids(self) -> list[int]:
        """The listener and its per-connection sshd processes (not the commands they run)."""
        if self.pid is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("sshd"):
                out.append(pid)
                todo += children.get(pid, [])
        return out

    def kill(self) -> None:
        """Like a device dropping off: every sshd process of this server is killed at once."""
        for pid in self.sshd_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid = None

    def stop(self) -> None:
        self.kill()
