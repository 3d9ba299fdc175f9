"""Fault injection for the reliability tests: make a chosen cell crash, hang, die or leak.

Off unless HARNESS_FAULT is set (a JSON object), so it never changes what a normal run measures.
  {"workload": "chat", "level": "Q4_K_M", "stage": "after_repetition", "repetition": 0,
   "action": "crash" | "segfault" | "sigkill" | "hang" | "alloc_mib:<n>" | "exit:<code>"}
or {"any": [plan, plan, ...]} for several cells at once.
Stages: "before_load", "after_load", "after_repetition".
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

ENV = "HARNESS_FAULT"


def _plan() -> dict[str, Any] | None:
    raw = os.environ.get(ENV)
    return json.loads(raw) if raw else None


def maybe_inject(stage: str, key: Any, repetition: int | None = None) -> None:
    plan = _plan()
    if not plan:
        return
    for one in plan.get("any", [plan]):
        _maybe(one, stage, key, repetition)


def _maybe(plan: dict[str, Any], stage: str, key: Any, repetition: int | None) -> None:
    if plan.get("stage") != stage:
        return
    for dim in ("model", "level", "workload", "device"):
        if dim in plan and plan[dim] != getattr(key, dim):
            return
    if "repetition" in plan and plan["repetition"] != repetition:
        return
    _act(str(plan.get("action", "crash")))


_hoard: list[bytearray] = []


def _act(action: str) -> None:
    if action == "crash":
        raise RuntimeError("injected fault: crash")
    if action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "sigkill":  # what the kernel's out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "hang":
        while True:
            time.sleep(1)
    if action.startswith("alloc_mib:"):
        n = int(action.split(":", 1)[1])
        for _ in range(n):
            _hoard.append(bytearray(b"\1" * (1 << 20)))
            time.sleep(0.002)
        time.sleep(30)  # hold it until the parent's memory watch acts
    if action.startswith("exit:"):
        os._exit(int(action.split(":", 1)[1]))
