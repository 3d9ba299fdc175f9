"""Errors a user can act on.

Anything derived from HarnessError is printed as one clear message and exits with code 2
(bad input) unless it says otherwise; a traceback is shown only with --debug.
"""
from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix: bad input, missing file, unreadable sensor."""

    exit_code = 2


class ConfigError(HarnessError):
    """A config file (matrix, device profile, budgets) is wrong at a known key path."""

    def __init__(self, file: str, key_path: str, message: str):
        self.file = file
        self.key_path = key_path
        self.message = message
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {message}")


class SensorError(HarnessError):
    """A power sensor cannot be read; the message says why and how to fix it."""


class ModelError(HarnessError):
    """A model file is missing, truncated, not the expected format or fails verification."""
