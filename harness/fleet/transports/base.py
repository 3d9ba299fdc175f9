"""The interface every transport implements: start a command, read bytes of a file, write a file.

It is deliberately tiny: the device side is `python -m harness` itself, so a transport only has
to start it, carry its stdin/stdout, and let the controller read the run folder it writes.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol


class TransportError(Exception):
    """The device cannot be reached or the link to it dropped (a cell in flight is `device_lost`).

    Not a HarnessError: it is about the link, and the scheduler decides whether to wait and retry."""


class RemoteProcess(Protocol):
    """A command running on the device."""

    def lines(self) -> Iterator[str]:
        """Its stdout, line by line, as it writes them (pushed by the device, never polled)."""

    def send(self, text: str) -> None:
        """Write to its stdin."""

    def wait(self, timeout_s: float) -> int:
        """Its exit code; TransportError when the link dropped before it said one."""

    def stderr_tail(self) -> str:
        """The end of what it wrote to stderr (for failure lines)."""

    def close(self) -> None:
        """Close its stdin (the device side then stops what it runs) and let go of it."""


class Transport(Protocol):
    """One device's link; a scheduler holds one per device, and one command at a time on it."""

    kind: str

    def connect(self) -> None:
        """Open the link (TransportError when the device cannot be reached, HarnessError when
        the user must fix something: a bad key, an unknown host key)."""

    def identity(self) -> dict[str, Any]:
        """How the device is reached, for the manifests (never a secret)."""

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> RemoteProcess:
        """Start a command in `cwd` on the device."""

    def list_files(self, folder: str) -> dict[str, int]:
        """Files under `folder` (relative path -> size in bytes); empty when it does not exist."""

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of a file from `offset`."""

    def write_file(self, path: str, data: bytes) -> None:
        """Write a whole file (parent folders created)."""

    def close(self) -> None:
        """Close the link; what runs on the device stops with it (end of stdin)."""
