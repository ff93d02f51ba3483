"""gitkv's exceptions. Every error a user can cause or fix is a `GitkvError`.

    GitkvError (exit_code 1)
    ├── SpecError         the spec is invalid; `diagnostics` lists every problem with its position
    ├── ClusterError      the cluster refused or could not be reached (HTTP status, connection)
    │   └── StalePlanError  the cluster changed since the plan was made (CAS failed)
    └── GuardError        a safety guard refused a change (delete budget, empty prefix, no tty)

The CLI prints `Error: <message>` and exits with `exit_code`; messages say what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class GitkvError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code: ClassVar[int] = 1


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a spec, at a 1-based `line`/`col` of `file` (as the user named it)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class SpecError(GitkvError):
    """The spec could not be loaded or is invalid. `diagnostics` holds every problem found,
    sorted by position, so a user can fix them all in one go."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        count = len(self.diagnostics)
        lines = "\n".join(str(d) for d in self.diagnostics)
        noun = "error" if count == 1 else "errors"
        super().__init__(f"invalid spec ({count} {noun}):\n{lines}")


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
