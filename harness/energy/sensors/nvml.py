"""NVIDIA discrete GPUs: NVML's total energy counter (mJ since driver load, Volta and newer).

Summed over all GPUs. Covers the GPU board only, not the CPU or the rest of the machine. The
counter updates every 20-100 ms; the trace derives power between counter changes. nvidia-ml-py
(`import pynvml`) is the optional extra `edgebench[nvml]`, imported only here.
"""
from __future__ import annotations

import importlib

from ..base import CounterSensor, SensorProblem
from ..config import EnergyConfig
from ..uncertainty import Accuracy

FIX_INSTALL = "pip install edgebench[nvml] (nvidia-ml-py)"
# Stated accuracy (harness.energy.uncertainty).
ACCURACY = Accuracy(
    gain_limit=0.05, offset_limit_w=0.0, update_interval_s=0.1,
    source="NVML nvmlDeviceGetPowerUsage documentation: accurate to within +-5% of current power "
           "draw (stated for Fermi and Kepler; NVIDIA states no figure for later GPUs, so the "
           "same is assumed); the energy counter updates every 20-100 ms (0.1 s used)")


class Nvml(CounterSensor):
    name = "nvml"
    coverage = "gpu"

    def __init__(self, nvml_module):
        super().__init__()
        self.nv = nvml_module
        try:
            self.nv.nvmlInit()
        except self.nv.NVMLError as e:
            raise SensorProblem(f"NVML cannot start ({e})",
                                "needs an NVIDIA GPU with its driver loaded") from None
        self.handles = [self.nv.nvmlDeviceGetHandleByIndex(i)
                        for i in range(self.nv.nvmlDeviceGetCount())]
        if not self.handles:
            self.close()
            raise SensorProblem("NVML sees no GPU", "needs an NVIDIA GPU")
        try:
            self.read_energy_j()
        except self.nv.NVMLError as e:
            self.close()
            raise SensorProblem(f"this GPU has no NVML energy counter ({e})",
                                "nvmlDeviceGetTotalEnergyConsumption needs Volta or newer; "
                                "use another sensor") from None
        self.notes.append(f"{len(self.handles)} GPU(s); GPU board only (CPU not included)")

    def read_energy_j(self) -> float:
        return sum(self.nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except self.nv.NVMLError:
            pass  # shutting down a library that failed to start: nothing to release


def create(config: EnergyConfig, estimate_params: dict | None) -> Nvml:
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError:
        raise SensorProblem("nvidia-ml-py is not installed", FIX_INSTALL) from None
    return Nvml(pynvml)
