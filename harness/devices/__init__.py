"""Hardware profiles, detection, device state, power modes and emulation (issue 4).

The run command and the cell child process call only the names exported here.
"""
from __future__ import annotations

from .detect import Candidate, Detection, detect, matches, mismatch_reasons
from .emulation import (RUNTIME_OVERHEAD_BYTES, apply_emulation, check_fit, host_memory_bytes,
                        kv_bytes_per_token, memory_limit_bytes)
from .power import nvpmodel_modes, read_power_mode, set_power_mode
from .profile import (SENSOR_NAMES, Estimate, NvpMode, PowerModes, Profile, get_profile,
                      load_profile_file, load_profiles, profile_dirs)
from .state import (decode_throttled, read_state, throttle_reasons, wait_cool, was_throttled)

__all__ = [
    "Candidate", "Detection", "detect", "matches", "mismatch_reasons",
    "RUNTIME_OVERHEAD_BYTES", "apply_emulation", "check_fit", "host_memory_bytes",
    "kv_bytes_per_token", "memory_limit_bytes",
    "nvpmodel_modes", "read_power_mode", "set_power_mode",
    "SENSOR_NAMES", "Estimate", "NvpMode", "PowerModes", "Profile", "get_profile",
    "load_profile_file", "load_profiles", "profile_dirs",
    "decode_throttled", "read_state", "throttle_reasons", "wait_cool", "was_throttled",
]
