"""Which Jetson rails make the total (shared by the hwmon, IIO and tegrastats readers).

The module input rail (VDD_IN on TX2/Xavier NX/Orin NX/Nano, POM_5V_IN on Nano) already
contains every other rail, so it is used alone. AGX boards have no input rail: their module
rails are summed, and the sensor says so (the carrier board is then not included).
"""
from __future__ import annotations

import re

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
AGX_NOTE = "no module input rail (AGX): sum of the module rails; carrier board not included"


def choose(labels: list[str]) -> tuple[list[str], str, str | None]:
    """(rails to add, coverage, note) for the labels a board reports."""
    for total in TOTAL_RAILS:
        if total in labels:
            return [total], "module_input", None
    return list(labels), "module_rails", AGX_NOTE


def is_unconnected(label: str) -> bool:
    """Labels such as `NC` (or containing NC as a word) mark unpopulated INA3221 channels."""
    return "NC" in re.split(r"[\s_\-]+", label.strip().upper())
