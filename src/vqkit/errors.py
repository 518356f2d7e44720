"""The one exception type the CLI turns into a one-line message instead of a traceback."""

from __future__ import annotations


class VQKitError(Exception):
    """Bad input or a failed step, with a message that names the file and what is wrong."""


class DataError(VQKitError):
    """A data file is missing, truncated or malformed."""


class ConfigError(VQKitError):
    """A config file or override is invalid."""
