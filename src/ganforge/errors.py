"""User-facing errors.

Anything a user can cause (a bad config key, a missing file, a run directory that already exists)
raises a ``GanforgeError`` subclass whose message names the problem *and* the fix. The CLI prints
the message and exits with code 2; no traceback is shown. Bugs stay ordinary exceptions.
"""

from __future__ import annotations


class GanforgeError(Exception):
    """Base class for errors caused by user input. The message must say how to fix it."""

    exit_code = 2


class ConfigError(GanforgeError):
    """Unknown key, wrong type or out-of-range value in a config or override."""


class DataError(GanforgeError):
    """Missing, corrupt or malformed dataset."""


class RunDirError(GanforgeError):
    """Run directory problems: exists already, missing, incomplete."""


class TrainingDiverged(GanforgeError):
    """Losses became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3
