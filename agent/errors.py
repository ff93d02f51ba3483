"""The agent's errors: one tree, raised by every part, mapped to HTTP statuses in one table
(`agent/http/errors.py`). Expected failures only; a broken invariant is an AssertionError.

    AgentError
    ├── StartError        the agent cannot start; the message is one line naming the cause
    │   └── ListenError   a listener could not bind its address
    ├── JoinFailed        no address of a join answered (the WAN pool's is a subclass)
    ├── NotLeader         no leader is known, or this server lost leadership (raft's core
    │                     raises a subclass carrying the leader id it knows)
    ├── NoServers         a client agent knows no server to send a request to
    ├── ServerError       a server answered a request forwarded to it with an error
    ├── UnknownNode       no member of the pool has that name
    └── CommandRefused    a command refused before the log, or by the FSM; `kind` says how

A leaf module: it imports nothing of the agent's, so raft and gossip may raise from it.
"""

from __future__ import annotations

from typing import Literal

RefusalKind = Literal["invalid", "denied", "conflict", "failed"]


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class StartError(AgentError):
    """The agent cannot start; the message is one line naming the cause."""


class ListenError(StartError):
    """A listener could not bind (`listen tcp 127.0.0.1:8500: bind: address already in use`)."""


class JoinFailed(AgentError):
    """No address of a join could be joined; the message names them and why."""


class NotLeader(AgentError):
    """Only the leader can do this, and this server is not it (or no leader is known)."""

    def __init__(self, message: str = "No cluster leader", leader: str = "") -> None:
        super().__init__(message)
        self.leader = leader


class NoServers(AgentError):
    """A client agent has no server to send its request to."""

    def __init__(self, message: str = "No known Consul servers") -> None:
        super().__init__(message)


class ServerError(AgentError):
    """A server answered a request this agent forwarded with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UnknownNode(AgentError):
    """No member of the gossip pool has the name asked for."""


class CommandRefused(AgentError):
    """A command that changed nothing, and why. `kind` is what the refusal means to the
    caller: the command was malformed or broke a rule ("invalid"), the caller may not
    ("denied"), it lost a race ("conflict"), or it could not be carried out ("failed")."""

    def __init__(self, message: str, kind: RefusalKind = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.kind: RefusalKind = kind
