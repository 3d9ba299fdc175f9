"""fleet.yaml is validated like the matrix: unknown keys, missing fields and wrong values name
the file and the key; the command exits 2 before anything runs."""
from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.fleet.inventory import load_inventory
from harness.fleet.transports.ssh import remote_command
from tests.conftest import run_cli

PROFILES = {"raspberry-pi-5", "jetson-orin-nano", "pixel"}
SSH = "{name: pi, transport: ssh, host: 10.0.0.2, user: pi, key: ~/.ssh/k, workdir: ~/eb, profile: raspberry-pi-5}"


def _load(tmp_path, text):
    f = tmp_path / "fleet.yaml"
    f.write_text(text)
    return load_inventory(f, PROFILES)


def test_a_valid_inventory_of_three_transports(tmp_path):
    inv = _load(tmp_path, f"""
retries: 2
devices:
  - {SSH}
  - {{name: here, transport: local, workdir: /tmp/eb}}
  - {{name: pixel-01, transport: adb, serial: "192.168.1.30:5555", user: u0_a1, key: ~/.ssh/k,
      workdir: ~/eb, profile: pixel}}
""")
    pi, here, pixel = inv.devices
    assert inv.retries == 2 and inv.reconnect_timeout_s == 300
    assert (pi.port, pi.python, pi.known_hosts, pi.emulate) == (22, "python3", None, False)
    assert here.profile == "auto" and pixel.termux_port == 8022 and pixel.serial == "192.168.1.30:5555"
    assert pi.remote("runs/x") == "~/eb/runs/x"


@pytest.mark.parametrize("text, key, says", [
    ("devices:\n  - " + SSH[:-1] + ", colour: red}", "devices[0].colour", "unknown key"),
    ("devices:\n  - {name: pi, transport: ssh, host: h, user: u, workdir: w}", "devices[0]", "missing key 'key'"),
    ("devices:\n  - {name: pi, transport: telnet, workdir: w}", "devices[0].transport", "allowed"),
    ("devices:\n  - {name: pi, transport: local, workdir: w, host: h}", "devices[0].host", "'local' device"),
    ("devices:\n  - {name: pi, transport: local, workdir: w, profile: rpi9}", "devices[0].profile", "unknown device profile"),
    ("devices:\n  - " + SSH + "\n  - " + SSH, "devices[1].name", "duplicate device name"),
    ("devices:\n  - {name: pi, transport: local, workdir: w, emulate: true}", "devices[0].emulate", "named profile"),
    ("devices: []", "devices", "at least 1"),
    ("retries: -1\ndevices:\n  - " + SSH, "retries", ""),
])
def test_mistakes_name_the_file_and_key(tmp_path, text, key, says):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert key in str(e.value) and "fleet.yaml" in str(e.value) and says in str(e.value)


def test_the_command_exits_2_on_a_bad_inventory(tmp_path):
    inv = tmp_path / "fleet.yaml"
    inv.write_text("devices:\n  - {name: pi, transport: ssh, workdir: w}\n")
    r = run_cli("fleet", "run", str(inv), "benchmarks/ci-matrix.yaml", "--output-dir", str(tmp_path))
    assert r.returncode == 2 and "fleet.yaml" in r.stderr and "devices[0]" in r.stderr
    assert not list(tmp_path.glob("fleet-*"))


def test_the_remote_command_quotes_everything():
    cmd = remote_command(["python3", "-m", "harness", "a b", "$(rm -rf /)"], "~/eb dir", {"X": "1 2"})
    assert cmd == ("mkdir -p \"$HOME\"/'eb dir' && cd \"$HOME\"/'eb dir' && exec env X='1 2' "
                   "python3 -m harness 'a b' '$(rm -rf /)'")
