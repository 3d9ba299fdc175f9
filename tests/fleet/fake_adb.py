"""A stand-in for the `adb` client that speaks the subset harness.fleet.transports.adb uses.

No phone is attached to CI, so this plays one: the "phone's" Termux sshd is a private OpenSSH
server on 127.0.0.1 (FAKE_ADB_SSHD_PORT), and `forward` relays a fresh local port to it, as the
adb server does. Every call is logged (FAKE_ADB_LOG) so tests can check what was used.

  adb connect HOST:PORT                  -> "connected to HOST:PORT"
  adb -s SERIAL get-state                -> "device" (FAKE_ADB_STATE_OF, default device)
  adb -s SERIAL forward tcp:0 tcp:PORT   -> the local port of a relay to FAKE_ADB_SSHD_PORT
  adb -s SERIAL forward --remove tcp:N   -> stops that relay (by its pid)
  adb -s SERIAL shell dumpsys battery    -> charging or discharging (FAKE_ADB_BATTERY)
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_ADB_DIR", "/tmp"))
RELAY_MAX_S = 600  # a relay never outlives a test for long


def _log(argv: list[str]) -> None:
    with open(STATE / "adb.log", "a") as f:
        f.write(" ".join(argv) + "\n")


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(port_file: Path, target: int) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(1.0)
    port_file.write_text(str(server.getsockname()[1]))
    deadline = time.monotonic() + RELAY_MAX_S
    while time.monotonic() < deadline:
        try:
            client, _ = server.accept()
        except socket.timeout:
            continue
        upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
        upstream.settimeout(None)
        client.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


BATTERY = {"charging": "  AC powered: false\n  USB powered: true\n  status: 2\n  level: 80\n",
           "discharging": "  AC powered: false\n  USB powered: false\n  status: 3\n  level: 80\n"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--relay"]:
        relay(Path(argv[1]), int(argv[2]))
        return 0
    _log(argv)
    if argv[:1] == ["connect"]:
        print(f"connected to {argv[1]}")
        return 0
    if argv[:1] != ["-s"] or len(argv) < 3:
        print(f"fake adb: unsupported: {argv}", file=sys.stderr)
        return 1
    cmd = argv[2:]
    if cmd == ["get-state"]:
        print(os.environ.get("FAKE_ADB_STATE_OF", "device"))
        return 0
    if cmd == ["shell", "dumpsys", "battery"]:
        print("Current Battery Service state:\n" + BATTERY[os.environ.get("FAKE_ADB_BATTERY", "discharging")])
        return 0
    if cmd[:1] == ["forward"] and cmd[1:2] == ["tcp:0"]:
        port_file = STATE / f"relay-{os.getpid()}.port"
        p = subprocess.Popen([sys.executable, __file__, "--relay", str(port_file),
                              os.environ["FAKE_ADB_SSHD_PORT"]], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.02)
        port = port_file.read_text()
        (STATE / f"forward-{port}.pid").write_text(str(p.pid))
        print(port)
        return 0
    if cmd[:2] == ["forward", "--remove"]:
        pid_file = STATE / f"forward-{cmd[2].split(':')[1]}.pid"
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
        return 0
    print(f"fake adb: unsupported: {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
