"""Thread counts: llama.cpp's rule computed from sysfs, profile caps, matrix values, warnings."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.devices import threads as th


def _topology(root: Path, siblings: list[str], hybrid_core_cpus: str | None = None) -> None:
    """A /sys tree with one thread_siblings mask per logical CPU (and optionally cpu_core/cpu_atom)."""
    for cpu, mask in enumerate(siblings):
        d = root / f"sys/devices/system/cpu/cpu{cpu}/topology"
        d.mkdir(parents=True)
        (d / "thread_siblings").write_text(mask + "\n")
    if hybrid_core_cpus is not None:
        for pmu, cpus in (("cpu_core", hybrid_core_cpus), ("cpu_atom", "x")):
            (root / f"sys/devices/{pmu}").mkdir(parents=True)
            (root / f"sys/devices/{pmu}/cpus").write_text(cpus + "\n")


@pytest.fixture
def sysroot(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_SYSFS_ROOT", str(tmp_path))
    return tmp_path


def test_physical_cores_count_unique_sibling_sets(sysroot):
    _topology(sysroot, ["03", "03", "0c", "0c", "30", "30"])  # 3 cores with 2 hyperthreads each
    assert th.physical_cores() == 3
    assert th.llama_cpp_default() == (3, "physical_cores")


def test_hybrid_cpu_uses_performance_cores_only(sysroot):
    # 4 P-cores with hyperthreads (cpus 0-7) and 8 E-cores (cpus 8-15): llama.cpp uses the 4
    siblings = ["0003", "0003", "000c", "000c", "0030", "0030", "00c0", "00c0"] + \
               [f"{1 << i:04x}" for i in range(8, 16)]
    _topology(sysroot, siblings, hybrid_core_cpus="0-7")
    assert th.physical_cores() == 12
    assert th.performance_cores() == 4
    assert th.llama_cpp_default() == (4, "performance_cores")


def test_cpu_list_parser():
    assert th._cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


def test_default_is_capped_at_the_cpus_this_process_may_use(sysroot, monkeypatch):
    _topology(sysroot, ["1", "2", "4", "8"])
    monkeypatch.setattr(th, "allowed_cpus", lambda: 2)  # e.g. taskset -c 0,1
    c = th.choose_threads(None, None, None, emulated=False)
    assert (c.n_threads, c.n_threads_batch, c.source) == (2, 2, "physical_cores")
    assert "capped" in c.warnings[0]


def test_generic_profile_gets_physical_cores_without_warning(sysroot, monkeypatch):
    _topology(sysroot, ["1", "2"])
    monkeypatch.setattr(th, "allowed_cpus", lambda: 2)
    c = th.choose_threads(None, None, None, emulated=False)
    assert (c.n_threads, c.source, c.warnings) == (2, "physical_cores", ())


def test_profile_count_never_oversubscribes_a_smaller_host(sysroot, monkeypatch):
    _topology(sysroot, ["1", "2"])
    monkeypatch.setattr(th, "allowed_cpus", lambda: 2)
    c = th.choose_threads(None, 8, None, emulated=False)  # a laptop profile's 8 on a 2-core host
    assert (c.n_threads, c.source) == (2, "profile") and "capped at 2" in c.warnings[0]
    c = th.choose_threads(None, 1, None, emulated=False)
    assert (c.n_threads, c.source, c.warnings) == (1, "profile", ())


def test_emulated_profile_is_capped_at_the_host(sysroot, monkeypatch):
    _topology(sysroot, ["1", "2"])
    monkeypatch.setattr(th, "allowed_cpus", lambda: 2)
    c = th.choose_threads(None, 4, 4, emulated=True)  # raspberry-pi-4 emulated on 2 cores
    assert c.n_threads == 2 and "emulated" in c.warnings[0]


def test_matrix_value_is_used_as_given_with_a_warning_when_oversubscribed(sysroot, monkeypatch):
    _topology(sysroot, ["1", "2"])
    monkeypatch.setattr(th, "allowed_cpus", lambda: 2)
    c = th.choose_threads(4, 8, None, emulated=False)
    assert (c.n_threads, c.source) == (4, "matrix") and "oversubscribed" in c.warnings[0]
    c = th.choose_threads(1, 8, None, emulated=False)
    assert (c.n_threads, c.source, c.warnings) == (1, "matrix", ())
    assert c.record_fields() == {"n_threads": 1, "n_threads_batch": 1, "threads_source": "matrix"}
