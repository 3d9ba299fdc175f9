"""fleet.yaml: the devices a controller drives, validated like the matrix (harness.schema).

```yaml
name: lab                       # optional
retries: 1                      # extra attempts of a cell lost with its device (default 1)
reconnect_timeout_s: 300        # how long a lost device may take to come back
devices:
  - name: pi5-01
    transport: ssh              # local | ssh | adb
    host: 192.168.1.20          # ssh: host, port (22), user, key, known_hosts (~/.ssh/known_hosts)
    user: pi
    key: ~/.ssh/edgebench_ed25519
    workdir: ~/edgebench        # the device's working folder (run folders go under runs/)
    python: python3             # the python that has edgebench installed on the device
    profile: raspberry-pi-5     # or auto: detected on the device
  - name: pixel-01
    transport: adb
    serial: 192.168.1.30:5555   # adb serial; host:port is adb over Wi-Fi (`adb connect` first)
    termux_port: 8022           # Termux's sshd on the phone, reached by `adb forward`
    user: u0_a123
    key: ~/.ssh/edgebench_ed25519
    workdir: ~/edgebench
    profile: pixel
```
Unknown keys, missing fields and wrong types are ConfigErrors naming the file and the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..schema import Node, load_yaml

TRANSPORTS = ("local", "ssh", "adb")
AUTO_PROFILE = "auto"
_COMMON = ("name", "transport", "workdir", "python", "profile", "emulate", "env")
_SSH = ("host", "port", "user", "key", "known_hosts", "connect_timeout_s", "command_timeout_s",
        "keepalive_s")
_ADB = ("serial", "termux_port", "user", "key", "known_hosts", "connect_timeout_s",
        "command_timeout_s", "keepalive_s")
TOP_KEYS = ("name", "retries", "reconnect_timeout_s", "devices")


@dataclass(frozen=True)
class DeviceSpec:
    """One device of the inventory (fields of the other transports keep their defaults)."""

    name: str
    transport: str
    workdir: str
    python: str = "python3"
    profile: str = AUTO_PROFILE
    emulate: bool = False  # run under --emulate PROFILE (a stand-in host, tests, dry rehearsals)
    env: dict[str, str] = field(default_factory=dict)
    host: str = ""
    port: int = 22
    user: str = ""
    key: str | None = None
    known_hosts: str | None = None
    serial: str = ""
    termux_port: int = 8022
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 60.0
    keepalive_s: float = 5.0

    def remote(self, rel: str) -> str:
        """A path under the device's working folder, as the device's shell and SFTP see it."""
        return f"{self.workdir.rstrip('/')}/{rel}"


@dataclass(frozen=True)
class Inventory:
    file: Path
    raw: Any
    name: str
    retries: int
    reconnect_timeout_s: float
    devices: tuple[DeviceSpec, ...]


def load_inventory(path: str | Path, known_profiles: set[str] | None = None) -> Inventory:
    path = Path(path)
    return parse_inventory(load_yaml(path), path, known_profiles)


def parse_inventory(raw: Any, path: Path, known_profiles: set[str] | None = None) -> Inventory:
    root = Node(raw, str(path)).mapping(TOP_KEYS, required=("devices",))
    devices = tuple(_device(n, known_profiles) for n in root.get("devices").list(min_len=1))
    seen: set[str] = set()
    for i, d in enumerate(devices):
        if d.name in seen:
            raise ConfigError(str(path), f"devices[{i}].name", f"duplicate device name '{d.name}'")
        seen.add(d.name)
    return Inventory(file=path, raw=raw, name=root.opt("name", "str", path.stem),
                     retries=root.opt("retries", "int", 1, min=0, max=100),
                     reconnect_timeout_s=root.opt("reconnect_timeout_s", "float", 300.0, min=0),
                     devices=devices)


def _device(node: Node, known: set[str] | None) -> DeviceSpec:
    node.mapping(_COMMON + _SSH + _ADB, required=("name", "transport", "workdir"))
    transport = node.get("transport").str(choices=TRANSPORTS)
    allowed = set(_COMMON) | set(_SSH if transport == "ssh" else _ADB if transport == "adb" else ())
    for key in node.value:
        if key not in allowed:
            raise node.get(key).fail(f"not a key of a '{transport}' device; allowed: "
                                     f"{', '.join(sorted(allowed))}")
    name = node.get("name").str()
    if not name or any(c in name for c in "/ \t:") or name.startswith("."):
        raise node.get("name").fail("a device name is one word (letters, digits, - _ .)")
    kw: dict[str, Any] = {"name": name, "transport": transport, "workdir": node.get("workdir").str()}
    kw["python"] = node.opt("python", "str", "python3")
    kw["profile"] = _profile(node, known)
    kw["emulate"] = node.opt("emulate", "bool", False)
    if kw["emulate"] and kw["profile"] == AUTO_PROFILE:
        raise node.get("emulate").fail("emulate needs a named profile, not auto")
    if node.has("env"):
        kw["env"] = {k: v.str() for k, v in node.get("env").items()}
    if transport == "ssh":
        _ssh_fields(node, kw, required=("host", "user", "key"))
    elif transport == "adb":
        kw["serial"] = node.get("serial").str()
        kw["termux_port"] = node.opt("termux_port", "int", 8022, min=1, max=65535)
        _ssh_fields(node, kw, required=("user", "key"))
    return DeviceSpec(**kw)


def _profile(node: Node, known: set[str] | None) -> str:
    profile = node.opt("profile", "str", AUTO_PROFILE)
    if known is not None and profile != AUTO_PROFILE and profile not in known:
        raise node.get("profile").fail(f"unknown device profile '{profile}'; known: "
                                       f"{AUTO_PROFILE}, {', '.join(sorted(known))}")
    return profile


def _ssh_fields(node: Node, kw: dict[str, Any], required: tuple[str, ...]) -> None:
    """Keys, not passwords: an ssh link (also Termux's over adb) names its private key file."""
    for key in required:
        if not node.has(key):
            raise node.fail(f"missing key '{key}' (a {kw['transport']} device needs "
                            f"{', '.join(required)})")
    if node.has("host"):
        kw["host"] = node.get("host").str()
        kw["port"] = node.opt("port", "int", 22, min=1, max=65535)
    kw["user"] = node.get("user").str()
    kw["key"] = node.get("key").str()
    kw["known_hosts"] = node.opt("known_hosts", "str")
    kw["connect_timeout_s"] = node.opt("connect_timeout_s", "float", 10.0, min=0.1)
    kw["command_timeout_s"] = node.opt("command_timeout_s", "float", 60.0, min=1)
    kw["keepalive_s"] = node.opt("keepalive_s", "float", 5.0, min=0.1)
