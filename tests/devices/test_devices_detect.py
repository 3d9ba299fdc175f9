"""Detection against fixture trees: one per profile, plus the tricky strings."""
from __future__ import annotations

import importlib
import platform

import pytest

from harness import devices

detect_mod = importlib.import_module("harness.devices.detect")

PIXEL_PROPS = {"ro.product.manufacturer": "Google", "ro.product.model": "Pixel 8",
               "ro.build.version.release": "14"}
SAMSUNG_PROPS = {"ro.product.manufacturer": "samsung", "ro.product.model": "SM-S911B",
                 "ro.build.version.release": "14"}


@pytest.mark.parametrize("tree_name, expected", [
    ("jetson-orin-nano", "jetson-orin-nano"),
    ("jetson-orin-nx", "jetson-orin-nx"),
    ("jetson-agx-thor", "jetson-agx-thor"),
    ("jetson-agx-orin", "jetson-agx-orin"),
    ("jetson-nano", "jetson-nano"),
    ("raspberry-pi-5", "raspberry-pi-5"),
    ("raspberry-pi-4", "raspberry-pi-4"),
    ("laptop-intel", "laptop-x86-intel"),
    ("laptop-amd", "laptop-x86-amd"),
    ("server-amd", "linux-generic"),
])
def test_detects_profile_from_fixture_tree(root, tools, tree_name, expected):
    root(tree_name)
    det = devices.detect()
    assert det.profile == expected
    # every non-generic board also matches the generic fallback, ranked below it
    names = [c.name for c in det.candidates]
    if expected != "linux-generic":
        assert "linux-generic" in names


def test_pixel_detected_through_fake_getprop(root, tools):
    root("android")
    tools.getprop(PIXEL_PROPS)
    det = devices.detect()
    assert det.profile == "pixel"
    assert [c.name for c in det.candidates][:1] == ["android-generic"]
    assert any("getprop ro.product.model = 'Pixel 8'" in e for e in det.evidence)


def test_other_android_falls_back_to_android_generic(root, tools):
    root("android")
    tools.getprop(SAMSUNG_PROPS)
    assert devices.detect().profile == "android-generic"


def test_android_tree_without_getprop_is_plain_linux(root, tools):
    root("android")  # no getprop on PATH: a Linux phone-shaped box, not Android
    det = devices.detect()
    assert det.profile == "linux-generic"


def test_device_tree_trailing_nul_is_stripped_from_evidence(root, tools):
    root("raspberry-pi-5")
    det = devices.detect()
    assert det.evidence == ("/proc/device-tree/model = 'Raspberry Pi 5 Model B Rev 1.0' matches "
                            "regex '^Raspberry Pi (5|500|Compute Module 5)\\\\b'",)
    assert "\x00" not in "".join(det.evidence)


@pytest.mark.parametrize("model, expected", [
    ("Raspberry Pi 400 Rev 1.0", "raspberry-pi-4"),
    ("Raspberry Pi Compute Module 4 Rev 1.1", "raspberry-pi-4"),
    ("Raspberry Pi 500 Rev 1.0", "raspberry-pi-5"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "linux-generic"),
    ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano"),
    ("NVIDIA Jetson Nano Developer Kit", "jetson-nano"),
])
def test_model_string_variants(tmp_path, monkeypatch, tools, model, expected):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(model.encode() + b"\x00")
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/ostype").write_text("Linux\n")
    (tmp_path / "proc/sys/kernel/arch").write_text("aarch64\n")
    (tmp_path / "etc").mkdir()
    release = "# R32 (release), REVISION: 7.1" if "Jetson Nano" in model else "# R36 (release)"
    (tmp_path / "etc/nv_tegra_release").write_text(release + "\n")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    assert devices.detect().profile == expected


def test_jetson_needs_tegra_release_or_compatible(tmp_path, monkeypatch, tools):
    """The model string alone is not enough for a Jetson profile (`any` rules must hold)."""
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/ostype").write_text("Linux\n")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    assert devices.detect().profile == "linux-generic"
    reasons = devices.mismatch_reasons(devices.get_profile("jetson-nano"))
    assert reasons and "none of:" in reasons[0] and "/etc/nv_tegra_release unavailable" in reasons[0]


def test_apple_silicon_from_uname_and_sysctl(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))  # macOS: no /proc at all
    fake = platform.uname_result("Darwin", "mbp", "23.1.0", "Darwin Kernel", "arm64")
    monkeypatch.setattr(detect_mod.platform, "uname", lambda: fake)
    tools.output("sysctl", "Apple M2\n")
    det = devices.detect()
    assert det.profile == "apple-silicon"
    assert det.candidates == ()


def test_no_profile_matches_an_intel_mac(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    fake = platform.uname_result("Darwin", "mbp", "22.0", "Darwin Kernel", "x86_64")
    monkeypatch.setattr(detect_mod.platform, "uname", lambda: fake)
    det = devices.detect()
    assert det.profile is None
    assert "--device" in det.evidence[0]


def test_matches_refuses_a_profile_on_the_wrong_board(root, tools):
    root("jetson-orin-nano")
    assert devices.matches(devices.get_profile("jetson-orin-nano"))
    assert not devices.matches(devices.get_profile("raspberry-pi-5"))
    assert not devices.matches(devices.get_profile("jetson-nano"))  # "Orin Nano" is not "Jetson Nano"
    reasons = devices.mismatch_reasons(devices.get_profile("raspberry-pi-5"))
    assert reasons == ["/proc/device-tree/model = 'NVIDIA Jetson Orin Nano Engineering Reference "
                       "Developer Kit Super' does not match regex "
                       "'^Raspberry Pi (5|500|Compute Module 5)\\\\b'"]


def test_laptop_needs_a_battery(root, tools):
    root("server-amd")
    amd = devices.get_profile("laptop-x86-amd")
    assert not devices.matches(amd)
    assert "no battery under /sys/class/power_supply" in devices.mismatch_reasons(amd)


def test_detection_facts_are_recorded_for_the_manifest(root, tools):
    root("laptop-intel")
    d = devices.detect().as_dict()
    assert d["facts"]["cpuinfo"]["vendor_id"] == "GenuineIntel"
    assert d["facts"]["uname"] == {"machine": "x86_64", "system": "Linux"}
    assert d["facts"]["battery"]["battery"] == "/sys/class/power_supply/BAT0"


def test_tools_of_profiles_that_already_failed_are_not_run(root, tools, tmp_path):
    """On Linux the apple-silicon `sysctl` rule is never reached (its `all` rules fail first)."""
    root("laptop-intel")
    marker = tmp_path / "sysctl-ran"
    tools.script("sysctl", f"printf x > '{marker}'\nprintf 'Apple M2\\n'")
    assert devices.detect().profile == "laptop-x86-intel"
    assert not marker.exists()


@pytest.mark.parametrize("sku, expected", [
    ("p3767-0000", "jetson-orin-nx"), ("p3767-0001", "jetson-orin-nx"),
    ("p3767-0003", "jetson-orin-nano"), ("p3767-0004", "jetson-orin-nano"),
    ("p3767-0005", "jetson-orin-nano"),
])
def test_p3767_family_rule_names_the_module_on_a_third_party_carrier(tree, tools, sku, expected):
    root = tree("jetson-orin-nx")
    (root / "proc/device-tree/model").write_bytes(b"Seeed reComputer J4012\0")
    (root / "proc/device-tree/compatible").write_bytes(
        f"nvidia,p3509-0000+{sku}\0nvidia,{sku}\0nvidia,tegra234\0".encode())
    det = devices.detect()
    assert det.profile == expected
    assert not {"jetson-orin-nx", "jetson-orin-nano"} - {expected} & {c.name for c in det.candidates}


def test_orin_nx_devkit_model_is_not_an_orin_nano(root, tools):
    root("jetson-orin-nx")
    det = devices.detect()
    assert det.profile == "jetson-orin-nx"
    assert "jetson-orin-nano" not in [c.name for c in det.candidates]
    assert any("Orin NX Engineering Reference Developer Kit" in e for e in det.evidence)
