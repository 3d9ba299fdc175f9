"""The `ssh` transport, on asyncssh (a maintained asyncio SSH library; the `fleet` extra).

Safe by default: the server's host key must be in a known_hosts file (the inventory's, else
~/.ssh/known_hosts), authentication is by key only (no passwords, no keyboard-interactive),
keepalives detect a link that died without a word, and connecting and every short command have a
timeout. All links share one event loop on a background thread; the scheduler's threads call the
synchronous methods here.
"""
from __future__ import annotations

import asyncio
import collections
import shlex
import threading
from pathlib import Path
from typing import Any, Awaitable, Iterator

from ...errors import HarnessError
from .base import TransportError

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """One asyncio loop on a daemon thread for every ssh link of this process."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="fleet-ssh-loop", daemon=True).start()
        return _loop


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _call(awaitable: Awaitable[Any], timeout_s: float | None) -> Any:
    """Run an awaitable on the shared loop; link failures become TransportError."""
    import asyncssh

    future = asyncio.run_coroutine_threadsafe(_await(awaitable), _event_loop())
    try:
        return future.result(timeout_s)
    except TimeoutError:
        future.cancel()
        raise TransportError(f"no answer within {timeout_s:.0f} s") from None
    except (OSError, asyncssh.Error, asyncio.TimeoutError, EOFError) as e:
        if isinstance(e, (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable)):
            raise
        raise TransportError(str(e) or type(e).__name__) from None


def remote_command(argv: list[str], cwd: str, env: dict[str, str]) -> str:
    """The shell line run on the device: its working folder made and entered, then the command."""
    folder = '"$HOME"/' + shlex.quote(cwd[2:]) if cwd.startswith("~/") else shlex.quote(cwd)
    assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return f"mkdir -p {folder} && cd {folder} && exec {'env ' + assign + ' ' if assign else ''}" \
           + " ".join(shlex.quote(a) for a in argv)


def sftp_path(path: str) -> str:
    """SFTP resolves relative paths in the login's home folder: `~/x` is `x` there."""
    return path[2:] if path.startswith("~/") else path


class SshProcess:
    def __init__(self, proc: Any, timeout_s: float):
        self._proc = proc
        self._timeout_s = timeout_s
        self._err: collections.deque[str] = collections.deque(maxlen=40)
        asyncio.run_coroutine_threadsafe(self._drain_stderr(), _event_loop())

    async def _drain_stderr(self) -> None:
        try:
            async for line in self._proc.stderr:
                self._err.append(line)
        except Exception:  # noqa: BLE001 - the link's end is reported by lines()/wait()
            return

    def lines(self) -> Iterator[str]:
        while True:
            line = _call(self._proc.stdout.readline(), None)
            if not line:
                return
            yield line.rstrip("\n")

    def send(self, text: str) -> None:
        async def write() -> None:
            self._proc.stdin.write(text)
            await self._proc.stdin.drain()
        _call(write(), self._timeout_s)

    def wait(self, timeout_s: float) -> int:
        done = _call(self._proc.wait(timeout=timeout_s), timeout_s + 5)
        if done.exit_status is None and done.exit_signal is None:
            raise TransportError("the link closed before the command said how it ended")
        return done.exit_status if done.exit_status is not None else -1

    def stderr_tail(self) -> str:
        return "".join(self._err)

    def close(self) -> None:
        async def end() -> None:
            self._proc.stdin.write_eof()
        try:
            _call(end(), self._timeout_s)
        except (TransportError, OSError):
            pass


class SshTransport:
    kind = "ssh"

    def __init__(self, spec: Any, host_key_alias: str | None = None):
        self.spec = spec
        self.host_key_alias = host_key_alias  # the name its key has in known_hosts (adb forwards)
        self._conn: Any = None
        self._sftp: Any = None

    def identity(self) -> dict[str, Any]:
        s = self.spec
        return {"transport": self.kind, "host": s.host, "port": s.port, "user": s.user}

    def connect(self) -> None:
        import asyncssh

        s = self.spec
        known = str(Path(s.known_hosts).expanduser()) if s.known_hosts else ()
        if s.known_hosts and not Path(known).is_file():
            raise HarnessError(f"{s.name}: known_hosts file {known} does not exist (host keys are "
                               "checked; add the device with `ssh-keyscan -p PORT HOST >> FILE`)")
        if s.key and not Path(s.key).expanduser().is_file():
            raise HarnessError(f"{s.name}: key file {s.key} does not exist")
        options = dict(port=s.port, username=s.user, known_hosts=known or None,
                       client_keys=[str(Path(s.key).expanduser())] if s.key else (),
                       password=None, kbdint_auth=False, agent_path=None if s.key else (),
                       keepalive_interval=s.keepalive_s, keepalive_count_max=3,
                       connect_timeout=s.connect_timeout_s)
        if self.host_key_alias:
            options["host_key_alias"] = self.host_key_alias
        if not s.known_hosts:
            options.pop("known_hosts")  # asyncssh then reads ~/.ssh/known_hosts: checked as well
        try:
            self._conn = _call(asyncssh.connect(s.host, **options), s.connect_timeout_s + 5)
        except asyncssh.PermissionDenied:
            raise HarnessError(f"{s.name}: {s.user}@{s.host}:{s.port} refused the key {s.key} "
                               "(add its .pub to the device's ~/.ssh/authorized_keys)") from None
        except asyncssh.HostKeyNotVerifiable as e:
            raise HarnessError(f"{s.name}: host key of {s.host}:{s.port} not trusted ({e}); check "
                               "it and add it to the known_hosts file") from None
        except TransportError as e:
            raise TransportError(f"cannot reach {s.host}:{s.port}: {e}") from None
        self._sftp = None

    def _connection(self) -> Any:
        if self._conn is None:
            raise TransportError("not connected")
        return self._conn

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> SshProcess:
        cmd = remote_command(argv, cwd, env)
        proc = _call(self._connection().create_process(cmd, encoding="utf-8"),
                     self.spec.command_timeout_s)
        return SshProcess(proc, self.spec.command_timeout_s)

    def _sftp_client(self) -> Any:
        if self._sftp is None:
            self._sftp = _call(self._connection().start_sftp_client(), self.spec.command_timeout_s)
        return self._sftp

    def list_files(self, folder: str) -> dict[str, int]:
        sftp = self._sftp_client()
        folder = sftp_path(folder)

        async def walk() -> dict[str, int]:
            import asyncssh

            out: dict[str, int] = {}
            todo = [""]
            if not await sftp.isdir(folder):
                return out
            while todo:
                rel = todo.pop()
                for entry in await sftp.readdir(f"{folder}/{rel}" if rel else folder):
                    if entry.filename in (".", ".."):
                        continue
                    name = f"{rel}/{entry.filename}" if rel else entry.filename
                    if entry.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                        todo.append(name)
                    elif entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR:
                        out[name] = entry.attrs.size
            return out
        return _call(walk(), self.spec.command_timeout_s)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        sftp = self._sftp_client()
        path = sftp_path(path)

        async def read() -> bytes:
            async with sftp.open(path, "rb") as f:
                return await f.read(length, offset)
        return _call(read(), self.spec.command_timeout_s)

    def write_file(self, path: str, data: bytes) -> None:
        sftp = self._sftp_client()
        path = sftp_path(path)

        async def write() -> None:
            parent = path.rsplit("/", 1)[0]
            if parent and parent != path:
                await sftp.makedirs(parent, exist_ok=True)
            async with sftp.open(path, "wb") as f:
                await f.write(data)
        _call(write(), self.spec.command_timeout_s)

    def close(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
