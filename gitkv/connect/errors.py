"""Errors of the built-in Connect proxy.

    GitkvError (gitkv.errors)
    ├── ClusterError      the local agent refused or could not be reached (gitkv.errors)
    └── ConnectError      the proxy cannot do what it was asked
        ├── UsageError    bad command-line flags (exit code 1, as `consul connect proxy`)
        ├── ConfigError   the flags or the agent's proxy registration do not make a proxy
        └── PeerError     a peer certificate does not carry the identity it must carry

A `PeerError` ends one connection, never the proxy; the others end the command.
"""

from __future__ import annotations

from gitkv.errors import GitkvError

__all__ = ["ConfigError", "ConnectError", "PeerError", "UsageError"]


class ConnectError(GitkvError):
    """Base class of the proxy's own failures."""


class UsageError(ConnectError):
    """The command line cannot be parsed; the message names the flag."""


class ConfigError(ConnectError):
    """The proxy's configuration (flags or the sidecar registration) is incomplete or wrong."""


class PeerError(ConnectError):
    """A TLS peer's certificate is not a Connect service identity, or not the expected one."""
