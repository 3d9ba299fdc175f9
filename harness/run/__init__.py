"""A run, by job: planning (device, cells, ETA), artifacts (levels built once), manifest (what ran
where), execution (cells in order, stop signals); flow.run_matrix ties them together."""
from __future__ import annotations

from .flow import RunOptions, run_matrix

__all__ = ["RunOptions", "run_matrix"]
