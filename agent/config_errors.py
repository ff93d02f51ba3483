"""Errors of agent configuration; each names the flag, or the file and key, at fault.

Errors::

    ConfigError          any bad flag, file or value
     └── HelpRequested   -h / -help was given
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HelpRequested",
]


class ConfigError(Exception):
    """A flag, config file or value is invalid. ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class HelpRequested(ConfigError):
    """``-h``/``-help`` was given; the caller prints usage."""
