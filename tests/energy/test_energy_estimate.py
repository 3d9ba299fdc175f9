"""The estimate's figures: this host's CPU looked up in codecarbon's table, scaled to its CPUs.

Fixtures: /proc/cpuinfo of real machine kinds (this 2-vCPU KVM guest, a 12-thread desktop, a
2-socket server, a 4-vCPU slice of an EPYC 7763, a Pi 4 on arm64) and a few rows copied from
codecarbon 3.3.2's cpu_power.csv (`codecarbon_copy/`), including one whose TDP text is broken.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from energy_testkit import FIXTURES, write_tree
from harness.devices import load_profile_file
from harness.energy import EnergyConfig, Sampler, open_sensor
from harness.energy import cpu_power
from harness.energy.base import SensorProblem
from harness.energy.sensors import estimate
from harness.errors import ConfigError

CPUINFO = FIXTURES / "cpuinfo"
COPY = CPUINFO / "codecarbon_copy"
DEVICES = Path(__file__).resolve().parents[2] / "devices"
LOOKUP = {"lookup": "codecarbon", "tdp_w": 85.0, "idle_w": 0.0, "source": "profile fallback"}


def host(name: str) -> cpu_power.HostCpu:
    return cpu_power.parse_cpuinfo((CPUINFO / name).read_text())


@pytest.fixture
def data() -> cpu_power.CodecarbonData:
    return cpu_power.load_codecarbon(COPY)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Point sysfs at a root whose /proc/cpuinfo is a fixture, and codecarbon at the copy."""
    def use(name: str, package_dir: Path | None = COPY) -> Path:
        write_tree(tmp_path, {"/proc/cpuinfo": (CPUINFO / name).read_text()})
        monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
        if package_dir is None:
            monkeypatch.setattr(cpu_power.importlib.util, "find_spec", lambda name: None)
        else:
            monkeypatch.setattr(cpu_power, "codecarbon_dir", lambda: package_dir)
        return tmp_path
    return use


# -- /proc/cpuinfo ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, model, cpus, packages, threads, vm", [
    ("kvm_amd_epyc_2vcpu.txt", "AMD EPYC", 2, 1, 2, True),
    ("intel_i7_8700_desktop.txt", "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 12, 1, 12, False),
    ("intel_xeon_gold_5220r_2socket.txt", "Intel(R) Xeon(R) Gold 5220R CPU @ 2.20GHz", 96, 2, 48,
     False),
    ("kvm_amd_epyc_7763_4vcpu.txt", "AMD EPYC 7763 64-Core Processor", 4, 1, 4, True),
    ("rpi4_arm64.txt", None, 4, 1, None, False),
])
def test_cpuinfo_gives_model_cpus_packages_and_virtualisation(name, model, cpus, packages,
                                                               threads, vm):
    h = host(name)
    assert (h.model, h.cpus, h.packages, h.package_threads, h.virtualised) == (
        model, cpus, packages, threads, vm)


def test_cpuinfo_without_processors_is_unavailable():
    with pytest.raises(cpu_power.CpuPowerUnavailable, match="no processor"):
        cpu_power.parse_cpuinfo("Hardware\t: BCM2835\n")


# -- codecarbon's matching --------------------------------------------------------------------
@pytest.mark.parametrize("model, row, ties", [
    ("intel core i7-8700", "Intel Core i7-8700", 0),  # exact, case-insensitive
    ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700", 0),  # words contain a row
    ("Intel(R) Xeon(R) Gold 5220R CPU @ 2.20GHz", "Intel Xeon Gold 5220R", 0),  # cleaned exact
    ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 0),
    ("AMD EPYC", None, 4),  # every EPYC row contains its words: a tie, codecarbon picks none
    ("AMD EPYC 7713", "AMD EPYC 7713", 0),  # exact beats the 7713P row that shares its words
    ("Intel Core i7", None, 4),
    ("Ampere Altra Q80-30", None, 0),
])
def test_matching_follows_codecarbon(data, model, row, ties):
    got, tied = cpu_power.match_cpu(model, [n for n, _ in data.rows])
    assert got == row and len(tied) == ties


def _codecarbon_match(model_raw: str, names: list[str]) -> str | None:
    """codecarbon 3.3.2 TDP._get_matching_cpu (non-greedy), with rapidfuzz as it calls it."""
    import re

    from rapidfuzz import fuzz, process, utils
    direct = process.extractOne(model_raw, names, processor=lambda s: s.lower(),
                                scorer=fuzz.ratio, score_cutoff=100)
    if direct:
        return direct[0]
    model_raw = model_raw.replace("(R)", "")
    start = model_raw.find(" CPU @ ")
    if start > 0:
        model_raw = model_raw[:start]
    model_raw = re.sub(r" @\s*\d+\.\d+GHz", "", model_raw.replace(" CPU", ""))
    direct = process.extractOne(model_raw, names, processor=lambda s: s.lower(),
                                scorer=fuzz.ratio, score_cutoff=100)
    if direct:
        return direct[0]
    hits = process.extract(model_raw, names, processor=utils.default_process,
                           scorer=fuzz.token_set_ratio, score_cutoff=100)
    if hits and (len(hits) == 1 or hits[0][1] != hits[1][1]):
        return hits[0][0]
    return None


@pytest.mark.parametrize("model", [
    "AMD EPYC", "AMD EPYC 7763 64-Core Processor", "AMD EPYC 7B13",
    "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel(R) Xeon(R) CPU @ 2.20GHz",
    "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "13th Gen Intel(R) Core(TM) i7-1360P",
    "AMD Ryzen 7 7840U w/ Radeon 780M Graphics", "AMD Ryzen Threadripper 1950X 16-Core Processor",
    "ARMv7 Processor rev 3 (v7l)", "Intel(R) Core(TM) i5-1335U", "Cortex-A72",
])
def test_matching_equals_codecarbons_own_on_its_whole_table(model):
    """The re-implementation against codecarbon's algorithm on the installed table."""
    pytest.importorskip("rapidfuzz")
    try:
        data = cpu_power.load_codecarbon()
    except cpu_power.CpuPowerUnavailable as e:
        pytest.skip(str(e))
    names = [n for n, _ in data.rows]
    assert cpu_power.match_cpu(model, names)[0] == _codecarbon_match(model, names)


# -- the figures ------------------------------------------------------------------------------
def test_desktop_gets_the_package_tdp(data):
    p = cpu_power.cpu_power(host("intel_i7_8700_desktop.txt"), data)
    assert p.figures["matched_row"] == "Intel Core i7-8700" and p.figures["rule"] == "package-share"
    assert p.tdp_w == pytest.approx(65.0 * 12 / 12)
    assert p.idle_w == pytest.approx(0.1 * p.tdp_w)
    assert any("row 'Intel Core i7-8700' (65 W per package) x 12 host CPUs / 12 threads" in n
               for n in p.notes)


def test_two_sockets_get_two_packages(data):
    p = cpu_power.cpu_power(host("intel_xeon_gold_5220r_2socket.txt"), data)
    assert p.figures["package_tdp_w"] == 150.0
    assert p.tdp_w == pytest.approx(150.0 * 96 / 48)


def test_host_with_part_of_the_package_gets_its_share(data):
    whole = host("intel_i7_8700_desktop.txt")
    half = cpu_power.HostCpu(whole.model, 6, 1, 12, False)  # e.g. six CPUs offline
    assert cpu_power.cpu_power(half, data).tdp_w == pytest.approx(65.0 * 6 / 12)


def test_vm_of_a_known_cpu_uses_the_per_thread_rule_capped_at_the_package(data):
    p = cpu_power.cpu_power(host("kvm_amd_epyc_7763_4vcpu.txt"), data)
    assert p.figures["matched_row"] == "AMD EPYC 7763" and p.figures["package_tdp_w"] == 280.0
    assert p.tdp_w == pytest.approx(4 * 4.0) and p.figures["rule"] == "per-thread-capped"
    assert any("thread count is hidden" in n for n in p.notes)
    big = cpu_power.HostCpu("AMD EPYC 7763 64-Core Processor", 96, 1, 96, True)
    assert cpu_power.cpu_power(big, data).tdp_w == pytest.approx(280.0)  # the cap


def test_this_kind_of_vm_is_not_an_85_w_package(data):
    """2 vCPUs named only 'AMD EPYC': no single row, so codecarbon's 4 W per thread."""
    p = cpu_power.cpu_power(host("kvm_amd_epyc_2vcpu.txt"), data)
    assert p.figures["matched_row"] is None and p.figures["rule"] == "per-thread"
    assert p.tdp_w == pytest.approx(2 * 4.0) and p.idle_w == pytest.approx(0.8)
    assert any("matches 4 rows equally" in n and "picks none" in n for n in p.notes)


def test_no_model_name_uses_the_per_thread_rule(data):
    p = cpu_power.cpu_power(host("rpi4_arm64.txt"), data)
    assert p.tdp_w == pytest.approx(4 * 4.0)
    assert any("gives no model name" in n for n in p.notes)


def test_a_row_with_a_broken_tdp_is_not_used(data):
    h = cpu_power.HostCpu("Intel Celeron 1000A", 1, 1, 1, False)
    p = cpu_power.cpu_power(h, data)
    assert p.figures["matched_row"] == "Intel Celeron 1000A" and p.tdp_w == pytest.approx(4.0)
    assert any("no numeric TDP ('27.29.5')" in n for n in p.notes)


def test_per_thread_figure_is_read_from_codecarbons_source(tmp_path):
    pkg = tmp_path / "cc"
    shutil.copytree(COPY, pkg)
    (pkg / "core" / "cpu.py").write_text("DEFAULT_POWER_PER_CORE = 6\n")
    assert cpu_power.load_codecarbon(pkg).per_thread_w == 6.0
    (pkg / "core" / "cpu.py").write_text("POWER_CONSTANT = 85\n")
    with pytest.raises(cpu_power.CpuPowerUnavailable, match="DEFAULT_POWER_PER_CORE"):
        cpu_power.load_codecarbon(pkg)


# -- the sensor and its record fields ---------------------------------------------------------
def test_sensor_uses_the_looked_up_figures_and_says_where_from(machine):
    machine("intel_i7_8700_desktop.txt")
    sensor = estimate.create(EnergyConfig(), LOOKUP)
    assert (sensor.method, sensor.model) == ("estimated", "cpu-tdp-linear")
    assert sensor.tdp_w == pytest.approx(65.0) and sensor.idle_w == pytest.approx(6.5)
    assert sensor.notes[0].startswith("estimate: power_w = 6.5 + (65 - 6.5) x cpu_utilisation")
    info = sensor.info()
    assert info["estimate"]["matched_row"] == "Intel Core i7-8700"
    assert info["estimate"]["host_cpus"] == 12 and info["estimate"]["package_threads"] == 12
    assert info["notes"] == sensor.notes and len(info["notes"]) == 4


def test_records_carry_the_figures_through_auto_fallback_and_the_trace(machine):
    machine("kvm_amd_epyc_2vcpu.txt")
    sensor = open_sensor(EnergyConfig(), ["rapl", "estimate"], LOOKUP)  # no RAPL in the root
    assert sensor.name == "estimate" and "rapl" in sensor.fallback_reason
    sampler = Sampler(sensor, 20).start()
    time.sleep(0.3)
    trace = sampler.stop()
    assert trace.sensor["estimate"]["tdp_w"] == pytest.approx(8.0)
    assert any("4 W per thread x 2 host CPUs = 8 W" in n for n in trace.sensor["notes"])
    watts = trace.energy_j() / trace.duration_s
    assert 0.8 * 0.99 <= watts <= 8.0 * 1.01


def test_without_codecarbon_the_profile_figures_are_used_with_a_note(machine):
    machine("intel_i7_8700_desktop.txt", package_dir=None)
    sensor = estimate.create(EnergyConfig(), LOOKUP)
    assert (sensor.tdp_w, sensor.idle_w) == (85.0, 0.0)
    assert any(n.startswith("fallback:") and "codecarbon is not installed" in n
               for n in sensor.notes)
    assert "fallback" in sensor.info()["estimate"]


def test_without_codecarbon_or_profile_figures_it_says_both(machine):
    machine("intel_i7_8700_desktop.txt", package_dir=None)
    with pytest.raises(SensorProblem, match="cannot look this CPU up.*tdp_w") as e:
        estimate.create(EnergyConfig(), {**LOOKUP, "tdp_w": None})
    assert "edgebench[carbon]" in e.value.fix


def test_unknown_lookup_is_refused():
    with pytest.raises(SensorProblem, match="unknown estimate lookup 'datasheet'"):
        estimate.create(EnergyConfig(), {**LOOKUP, "lookup": "datasheet"})


def test_profile_without_lookup_keeps_its_own_figures(machine):
    machine("intel_i7_8700_desktop.txt")
    sensor = estimate.create(EnergyConfig(), {"tdp_w": 10.0, "idle_w": 2.0, "source": "sheet"})
    assert (sensor.tdp_w, sensor.idle_w) == (10.0, 2.0) and len(sensor.notes) == 1


# -- profiles ---------------------------------------------------------------------------------
def test_generic_linux_looks_up_datasheet_profiles_do_not():
    assert load_profile_file(DEVICES / "linux-generic.yaml").estimate.lookup == "codecarbon"
    for name in ("laptop-x86-intel", "raspberry-pi-4", "jetson-orin-nano", "android-generic"):
        assert load_profile_file(DEVICES / f"{name}.yaml").estimate.lookup is None, name


def test_profile_lookup_is_validated(tmp_path):
    text = (DEVICES / "linux-generic.yaml").read_text().replace("lookup: codecarbon",
                                                                 "lookup: datasheet")
    f = tmp_path / "linux-generic.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"energy\.estimate\.lookup.*codecarbon"):
        load_profile_file(f)


def test_detect_shows_the_looked_up_figures(machine):
    from harness.devices.overview import _estimate_probe
    machine("kvm_amd_epyc_2vcpu.txt")
    probe = _estimate_probe(load_profile_file(DEVICES / "linux-generic.yaml"))
    assert probe["ok"] and "tdp_w 8 W, idle_w 0.8 W" in probe["detail"]
    assert "4 W per thread x 2 host CPUs" in probe["detail"]


PROC_STAT = ("cpu  2766284 25357 174217 1241129 14982 0 4333 20137 0 0\n"
             "cpu0 1383142 12678 87108 620564 7491 0 2166 10068 0 0\n"
             "intr 123456 0 9 0\n")


def test_proc_stat_reader_gives_psutils_fields_in_seconds(tmp_path, monkeypatch):
    """The per-tick reader (one pread of /proc/stat under the sysfs root) returns the cpu line's
    ticks over SC_CLK_TCK, under psutil.cpu_times' field names, and follows the file as it grows."""
    import os

    (tmp_path / "proc").mkdir()
    stat = tmp_path / "proc" / "stat"
    stat.write_text(PROC_STAT)
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    read = estimate.machine_cpu_times()
    tick = os.sysconf("SC_CLK_TCK")
    first = read()
    assert first.user == pytest.approx(2766284 / tick)
    assert first.idle == pytest.approx(1241129 / tick)
    assert first.steal == pytest.approx(20137 / tick)
    busy, total = estimate._busy_total_s(first)
    assert busy == pytest.approx((2766284 + 25357 + 174217 + 4333 + 20137) / tick)
    assert total - busy == pytest.approx((1241129 + 14982) / tick)  # idle + iowait
    stat.write_text(PROC_STAT.replace("2766284", "2766384"))  # 100 more user ticks
    assert read().user - first.user == pytest.approx(100 / tick)
    read.close()
    with pytest.raises(OSError):
        read()


def test_a_proc_stat_that_does_not_parse_is_not_read_per_tick(tmp_path, monkeypatch):
    import psutil

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text("intr 1 2 3\n")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    assert estimate.machine_cpu_times() is psutil.cpu_times


def test_estimate_sensor_integrates_the_modelled_power_from_proc_stat(tmp_path, monkeypatch):
    """Half the CPU time busy between two reads: idle + half the (tdp - idle) swing."""
    (tmp_path / "proc").mkdir()
    stat = tmp_path / "proc" / "stat"
    stat.write_text("cpu  1000 0 0 1000 0 0 0 0 0 0\n")
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    sensor = estimate.CpuTdpEstimate(10.0, 2.0, "test")
    stat.write_text("cpu  1100 0 0 1100 0 0 0 0 0 0\n")
    sensor.read_energy_j()
    assert sensor.utilisation == pytest.approx(0.5)
    assert sensor.power_w(sensor.utilisation) == pytest.approx(6.0)
    sensor.close()
