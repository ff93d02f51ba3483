"""Errors raised by the gossip layer.

    GossipError
    ├── JoinError            no address given to join() could be joined (carries each reason)
    ├── UnknownMember        force_leave() of a name the member table does not hold
    ├── UserEventTooLarge    name + payload above the configured user event limit
    ├── MessageError         bytes from the network that do not decode (dropped by the core)
    └── BindError            the driver could not bind UDP/TCP on the requested address

Refusals of a peer's state (name conflict, wrong datacenter) are not exceptions in the core: the
merge delegate returns a message, the stream reply carries it, and the joiner's JoinError lists it.
"""

from __future__ import annotations


class GossipError(Exception):
    """Root of every error the gossip package raises on purpose."""


class JoinError(GossipError):
    """None of the join addresses could be joined; `errors` maps address -> reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{addr}: {why}" for addr, why in self.errors.items())
        super().__init__(f"failed to join any of {len(self.errors)} address(es): {detail}")


class UnknownMember(GossipError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No node found with name '{name}'")


class UserEventTooLarge(GossipError):
    pass


class MessageError(GossipError):
    pass


class BindError(GossipError):
    pass
