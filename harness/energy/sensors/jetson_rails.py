"""Which Jetson rails make the total, per board, from a documented list (never "sum everything").

Shared by the INA3221 hwmon/IIO readers and tegrastats. A board is recognised from the rail
labels it reports (they differ per module family), and each board's entry says which rails are
added, which are left out and why, and where that rule comes from. Summing every reported rail
is wrong on two boards: the AGX Orin's VDDQ_VDD2_1V8AO is already inside VIN_SYS_5V0 (NVIDIA's
rail notes), and the AGX Thor's VIN is the input that contains all the other rails. A label set
that matches no entry is refused rather than summed (a double count would go unnoticed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ADD_BOARD = ("add the board to BOARDS in harness/energy/sensors/jetson_rails.py with its vendor's "
             "rail notes (docs/energy.md, Jetson rails), or measure with a USB meter (usb_meter)")


MISSING_FIX = ("check that every power monitor's driver is loaded (the AGX Thor's VIN is on an "
               "INA238: `ina238` driver), or use tegrastats, which prints every rail")


class RailError(ValueError):
    """The reported rails cannot be turned into a total without guessing."""

    def __init__(self, what: str, fix: str):
        self.what, self.fix = what, fix
        super().__init__(f"{what}. Fix: {fix}")


@dataclass(frozen=True)
class Board:
    """One documented rail rule. `input_rail` boards use that rail alone; others add `summed`."""

    name: str
    profiles: tuple[str, ...]  # device profiles (devices/*.yaml) this rule describes
    signature: frozenset[str]  # any of these labels identifies the board
    summed: tuple[str, ...]  # rails added; every one must be present
    inside: dict[str, str]  # rails left out: label -> why
    coverage: str
    source: str
    input_rail: bool = False  # summed is one input rail: every other rail is inside it

    def reason_left_out(self, label: str) -> str | None:
        if label in self.inside:
            return self.inside[label]
        if self.input_rail and label not in self.summed:
            return f"inside {self.summed[0]} (the input rail contains every other rail)"
        return None


_FORUM_NANO = ("NVIDIA forum 'power consumption monitoring' (73608/8): POM_5V_IN is the overall "
               "input; POM_5V_GPU and POM_5V_CPU are already in it (jetson_stats issue #51)")
_ORIN_NOTE = ("NVIDIA Jetson Linux developer guide, AGX Orin power monitor: 'VDDQ_VDD2_1V8AO power "
              "is also included in VIN_SYS_5V0'")

BOARDS: tuple[Board, ...] = (
    Board("Jetson AGX Thor", ("jetson-agx-thor",), frozenset({"VIN", "VDD_CPU_SOC_MSS"}),
          ("VIN",), {"VDD_GPU": "inside VIN (a module rail)",
                     "VDD_CPU_SOC_MSS": "inside VIN (a module rail)",
                     "VIN_SYS_5V0": "inside VIN (a module rail)"},
          "board",
          "VIN is the developer kit's input (INA238 on the carrier board, jetson_stats PR #900); "
          "the three INA3221 rails are module rails inside it (tegrastats JetPack 7 lines)",
          input_rail=True),
    Board("Jetson Nano", ("jetson-nano",), frozenset({"POM_5V_IN"}), ("POM_5V_IN",),
          {"POM_5V_GPU": "inside POM_5V_IN (the module input)",
           "POM_5V_CPU": "inside POM_5V_IN (the module input)"},
          "module_input", _FORUM_NANO, input_rail=True),
    Board("Jetson with a VDD_IN input rail (TX2, Xavier NX, Orin NX, Orin Nano)",
          ("jetson-orin-nano", "jetson-orin-nx"), frozenset({"VDD_IN"}), ("VDD_IN",),
          {"VDD_CPU_GPU_CV": "inside VDD_IN (the module input)",
           "VDD_SOC": "inside VDD_IN (the module input)"},
          "module_input",
          "NVIDIA Jetson Linux developer guide, power monitors: VDD_IN is the module's total input "
          "(Orin NX/Nano in1 = VDD_IN, in2 VDD_CPU_GPU_CV, in3 VDD_SOC)", input_rail=True),
    Board("Jetson AGX Orin", ("jetson-agx-orin",), frozenset({"VDD_GPU_SOC", "VDD_CPU_CV"}),
          ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"),
          {"VDDQ_VDD2_1V8AO": "already included in VIN_SYS_5V0 (NVIDIA's AGX Orin rail notes)"},
          "module_rails", _ORIN_NOTE + "; no module input rail, so the module rails are added "
          "(carrier board not included)"),
    Board("Jetson AGX Xavier", (), frozenset({"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}),
          ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"), {}, "module_rails",
          "NVIDIA forum 'Xavier total power consumption' (81016): no input rail, the total is "
          "the sum of the six module rails (carrier board not included)"),
)


@dataclass(frozen=True)
class RailPlan:
    """What a reader adds and what it leaves out (with the reason), for notes and `--detect`."""

    board: str
    summed: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]
    coverage: str
    source: str

    def notes(self) -> list[str]:
        out = [f"{self.board}: sums {' + '.join(self.summed)}"]
        out += [f"leaves out {label}: {why}" for label, why in self.left_out]
        return out + [f"rule: {self.source}"]


def is_unconnected(label: str) -> bool:
    """Labels such as `NC` (or containing NC as a word) mark unpopulated INA3221 channels."""
    return "NC" in re.split(r"[\s_\-]+", label.strip().upper())


def find_board(labels: set[str]) -> Board | None:
    for board in BOARDS:
        if labels & board.signature:
            return board
    return None


def choose(labels: list[str]) -> RailPlan:
    """The plan for the labels a board reports; RailError when no documented rule fits."""
    connected = [lb for lb in dict.fromkeys(labels) if not is_unconnected(lb)]
    unconnected = [(lb, "unconnected channel") for lb in dict.fromkeys(labels)
                   if is_unconnected(lb)]
    board = find_board(set(connected))
    if board is None:
        raise RailError(f"rails {', '.join(connected) or '(none)'} match no documented Jetson "
                        "board; adding them could count a rail twice", ADD_BOARD)
    missing = [r for r in board.summed if r not in connected]
    if missing:
        raise RailError(f"{board.name}: rail {', '.join(missing)} not found (have "
                        f"{', '.join(connected)}); without it the total would be short",
                        MISSING_FIX)
    left_out = []
    for label in connected:
        if label in board.summed:
            continue
        why = board.reason_left_out(label)
        if why is None:
            raise RailError(f"{board.name}: rail {label} is not in its documented list "
                            f"({', '.join(board.summed + tuple(board.inside))}); it may or may "
                            "not be inside another rail", ADD_BOARD)
        left_out.append((label, why))
    return RailPlan(board.name, board.summed, tuple(left_out + unconnected), board.coverage,
                    board.source)


def plan_for_profile(profile: str) -> RailPlan | None:
    """The documented rule for a device profile (for `devices --detect`, before any sensor opens:
    the rails it sums and the known rails it leaves out, with the reason)."""
    for board in BOARDS:
        if profile in board.profiles:
            return RailPlan(board.name, board.summed, tuple(board.inside.items()),
                            board.coverage, board.source)
    return None
