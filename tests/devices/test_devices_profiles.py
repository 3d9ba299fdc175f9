"""Built-in profiles load and are complete; broken profiles fail with file + key path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import devices
from harness.errors import ConfigError, HarnessError

REQUIRED = {"jetson-orin-nano", "jetson-agx-orin", "jetson-nano", "raspberry-pi-5",
            "raspberry-pi-4", "pixel", "android-generic", "laptop-x86-intel", "laptop-x86-amd",
            "apple-silicon", "linux-generic"}

GOOD = """\
name: board
description: A test board
detect:
  priority: 5
  all:
    - {file: /proc/device-tree/model, contains: Board}
cpu: {cores: 4, threads: 2}
memory_bytes: 1073741824
energy:
  sensors: [scripted, estimate]
  estimate: {tdp_w: 5.0, idle_w: 1.0, source: test figures}
power_modes:
  nvpmodel: [{id: 0, name: MAXN}]
  governors: [performance]
  default: MAXN
thermal_zones: [cpu-thermal]
throttling: vcgencmd
runtime_defaults: {n_ctx: 1024}
"""


def _write(tmp_path: Path, text: str, name: str = "board") -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(textwrap.dedent(text))
    return f


def test_all_required_profiles_exist_and_validate():
    profiles = devices.load_profiles()
    assert REQUIRED <= set(profiles)
    for p in profiles.values():
        assert Path(p.file).stem == p.name
        assert p.sensors[-1] == "estimate", f"{p.name}: estimate must be the last resort"
        assert "scripted" not in p.sensors
        assert p.estimate.source


def test_profiles_with_estimate_figures_are_usable_by_the_energy_estimate():
    for p in devices.load_profiles().values():
        e = p.estimate
        if e.tdp_w is not None:
            assert e.idle_w is not None and 0 <= e.idle_w <= e.tdp_w, p.name
        assert p.estimate_params() == {"tdp_w": e.tdp_w, "idle_w": e.idle_w, "source": e.source,
                                       "lookup": e.lookup}


def test_good_profile_parses(tmp_path):
    p = devices.load_profile_file(_write(tmp_path, GOOD))
    assert p.threads == 2 and p.cores == 4 and p.memory_bytes == 2 ** 30
    assert p.runtime_defaults == {"n_threads": 2, "n_ctx": 1024}
    assert p.power_modes.default == "MAXN" and p.power_modes.names() == ["MAXN", "performance"]
    assert p.sensors == ("scripted", "estimate")


@pytest.mark.parametrize("old, new, key_path, words", [
    ("priority: 5", "priority: 5\n  sometimes: true", "detect.sometimes", "unknown key"),
    ("cpu: {cores: 4, threads: 2}", "cpu: {cores: 4, threads: 8}", "cpu.threads", "<= cores"),
    ("cpu: {cores: 4, threads: 2}", "cpu: {cores: four, threads: 2}", "cpu.cores", "integer"),
    ("[scripted, estimate]", "[rapl, joulemeter]", "energy.sensors[1]", "rapl, ina3221_hwmon"),
    ("[scripted, estimate]", "[rapl, rapl]", "energy.sensors", "twice"),
    ("idle_w: 1.0", "idle_w: 9.0", "energy.estimate.idle_w", "<= tdp_w"),
    ("{tdp_w: 5.0, idle_w: 1.0, source: test figures}", "{tdp_w: 5.0, idle_w: 1.0}",
     "energy.estimate", "missing required key 'source'"),
    ("contains: Board", "regex: '(Board'", "detect.all[0].regex", "invalid regular expression"),
    ("{file: /proc/device-tree/model, contains: Board}",
     "{file: /proc/device-tree/model, getprop: x, contains: Board}", "detect.all[0]",
     "exactly one of"),
    ("{file: /proc/device-tree/model, contains: Board}",
     "{file: /proc/device-tree/model}", "detect.all[0]", "exactly one of: contains"),
    ("{file: /proc/device-tree/model, contains: Board}",
     "{file: proc/device-tree/model, contains: Board}", "detect.all[0].file", "absolute"),
    ("{file: /proc/device-tree/model, contains: Board}",
     "{uname: kernel, equals: Linux}", "detect.all[0].uname", "machine, system"),
    ("governors: [performance]", "governors: [maxn]", "power_modes", "unique"),
    ("default: MAXN", "default: turbo", "power_modes.default", "MAXN, performance"),
    ("throttling: vcgencmd", "throttling: tegrastats", "throttling", "vcgencmd, linux, none"),
    ("runtime_defaults: {n_ctx: 1024}", "runtime_defaults: {n_ctx: 1024, flash: true}",
     "runtime_defaults.flash", "unknown key"),
    ("thermal_zones: [cpu-thermal]", "thermal_zones: ['cpu-(therm']", "thermal_zones[0]",
     "invalid regular expression"),
])
def test_validation_errors_name_file_and_key(tmp_path, old, new, key_path, words):
    assert old in GOOD
    f = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as e:
        devices.load_profile_file(f)
    assert e.value.file == str(f)
    assert e.value.key_path == key_path
    assert words in e.value.message


def test_name_must_match_file_name(tmp_path):
    f = _write(tmp_path, GOOD, name="other")
    with pytest.raises(ConfigError, match="must equal the file name 'other'"):
        devices.load_profile_file(f)


def test_malformed_yaml_is_a_config_error(tmp_path):
    f = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        devices.load_profile_file(f)


def test_unknown_profile_lists_valid_names():
    with pytest.raises(HarnessError) as e:
        devices.get_profile("raspberry-pi-9")
    assert "unknown device profile 'raspberry-pi-9'" in str(e.value)
    assert "jetson-orin-nano" in str(e.value) and "raspberry-pi-5" in str(e.value)


def test_user_folder_adds_and_overrides(tmp_path, monkeypatch):
    _write(tmp_path, GOOD)
    override = GOOD.replace("name: board", "name: raspberry-pi-4").replace(
        "memory_bytes: 1073741824", "memory_bytes: 8589934592")
    _write(tmp_path, override, name="raspberry-pi-4")
    monkeypatch.setenv("HARNESS_DEVICES_DIR", str(tmp_path))
    profiles = devices.load_profiles()
    assert profiles["board"].description == "A test board"
    assert profiles["raspberry-pi-4"].memory_bytes == 8 * 2 ** 30
    assert profiles["raspberry-pi-4"].file == str(tmp_path / "raspberry-pi-4.yaml")
    assert "jetson-nano" in profiles  # built-ins are still there


def test_user_folder_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DEVICES_DIR", str(tmp_path / "nope"))
    with pytest.raises(HarnessError, match="HARNESS_DEVICES_DIR.*is not a folder"):
        devices.load_profiles()


def test_broken_user_profile_is_reported_not_skipped(tmp_path, monkeypatch):
    _write(tmp_path, GOOD.replace("cpu: {cores: 4, threads: 2}", "cpu: {cores: 4}"))
    monkeypatch.setenv("HARNESS_DEVICES_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="missing required key 'threads'"):
        devices.load_profiles()


def test_installed_copy_is_found_when_there_is_no_checkout(tmp_path, monkeypatch):
    """A non-editable install has no repo devices/ folder; the wheel's data-files copy is used."""
    import sys

    from harness.devices import profile as profile_mod
    share = tmp_path / "prefix" / "share" / "edgebench" / "devices"
    share.mkdir(parents=True)
    _write(share, GOOD)
    monkeypatch.setattr(profile_mod, "builtin_dir", lambda: tmp_path / "no-checkout")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert list(devices.load_profiles()) == ["board"]
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(profile_mod.site, "USER_BASE", str(tmp_path / "user"))
    with pytest.raises(HarnessError, match="no device profiles found .*share/edgebench/devices"):
        devices.load_profiles()
