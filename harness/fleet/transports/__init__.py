"""How the controller reaches a device: one tiny interface (base.Transport), three ways.

- `local`: this machine (a device attached to the controller host, or a test);
- `ssh`: asyncssh (keepalive, connect and command timeouts, host keys checked, keys only);
- `adb`: the `adb` client on PATH, to a phone's Termux sshd by adb port forwarding (USB or Wi-Fi).
"""
from __future__ import annotations

from typing import Any

from .base import RemoteProcess, Transport, TransportError


def open_transport(spec: Any) -> Transport:
    """The transport for one inventory device (harness.fleet.inventory.DeviceSpec)."""
    if spec.transport == "local":
        from .local import LocalTransport
        return LocalTransport(spec)
    if spec.transport == "ssh":
        from .ssh import SshTransport
        return SshTransport(spec)
    from .adb import AdbTransport
    return AdbTransport(spec)


__all__ = ["RemoteProcess", "Transport", "TransportError", "open_transport"]
