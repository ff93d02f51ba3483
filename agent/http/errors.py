"""The HTTP layer's refusal, and the one table from the agent's errors to HTTP statuses.

Parts below HTTP raise from `agent.errors` and never name a status; `as_http` is the only
place that decides what a client sees for each (Consul answers most server-side failures
with a 500 carrying the error's text).
"""

from __future__ import annotations

from agent.errors import AgentError, CommandRefused, ServerError


class HTTPError(Exception):
    """A refusal rendered as Consul does: a status and a plain-text body."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class BodyTooLarge(HTTPError):
    pass


# CommandRefused.kind -> status. Every other AgentError (NotLeader, NoServers, JoinFailed,
# UnknownNode, ...) is a 500, as Consul answers an RPC's error.
REFUSAL_STATUS = {"invalid": 400, "denied": 403, "conflict": 409, "failed": 500}


def as_http(exc: AgentError) -> HTTPError:
    if isinstance(exc, CommandRefused):
        return HTTPError(REFUSAL_STATUS[exc.kind], exc.message)
    if isinstance(exc, ServerError):
        return HTTPError(exc.status, str(exc))
    return HTTPError(500, str(exc))
