"""gitkv's exceptions. Every error a user can cause or fix is a `GitkvError`.

    GitkvError (exit_code 1)
    ├── ClusterError      the cluster refused or could not be reached (HTTP status, connection)
    │   └── StalePlanError  the cluster changed since the plan was made (CAS failed)
    └── GuardError        a safety guard refused a change (delete budget, empty prefix, no tty)

The CLI prints `Error: <message>` and exits with `exit_code`; messages say what to do next.
"""

from __future__ import annotations

from typing import ClassVar


class GitkvError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code: ClassVar[int] = 1


class ClusterError(GitkvError):
    """The Consul HTTP API failed or refused a request.

    `status` is the HTTP status (None for transport failures such as connection refused).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StalePlanError(ClusterError):
    """A guarded write failed because the cluster changed since the plan; `keys` names them."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message, status=409)
        self.keys = keys


class GuardError(GitkvError):
    """A safety guard refused to go on (delete budget, emptying a prefix, no confirmation)."""
