"""Values the core emits: members as Consul renders them, and events in delivery order."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class MemberStatus(IntEnum):
    """serf's member status; the numbers are what /v1/agent/members shows as `Status`."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4


@dataclass(frozen=True, slots=True)
class Member:
    """One row of /v1/agent/members. `tags` is a fresh dict per snapshot; do not mutate it."""

    name: str
    addr: str  # IP only, as Consul shows it
    port: int
    tags: dict[str, str]
    status: MemberStatus
    protocol_min: int = 1
    protocol_max: int = 5
    protocol_cur: int = 2
    delegate_min: int = 2
    delegate_max: int = 5
    delegate_cur: int = 4

    @property
    def address(self) -> str:
        """`ip:port`, the form the gossip layer uses to reach the member."""
        return f"{self.addr}:{self.port}"

    def api_dict(self) -> dict[str, Any]:
        """The member in Consul's JSON shape (PascalCase keys)."""
        return {
            "Name": self.name,
            "Addr": self.addr,
            "Port": self.port,
            "Tags": dict(self.tags),
            "Status": int(self.status),
            "ProtocolMin": self.protocol_min,
            "ProtocolMax": self.protocol_max,
            "ProtocolCur": self.protocol_cur,
            "DelegateMin": self.delegate_min,
            "DelegateMax": self.delegate_max,
            "DelegateCur": self.delegate_cur,
        }


@dataclass(frozen=True, slots=True)
class MemberJoin:
    member: Member


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """Tags (or address) of a live member changed."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberLeave:
    member: Member


@dataclass(frozen=True, slots=True)
class MemberFailed:
    member: Member


@dataclass(frozen=True, slots=True)
class MemberReap:
    """The member was removed from the table (reconnect/tombstone timeout or force-leave prune)."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberConflict:
    """A message claimed `existing.name` for another address; it was refused (logged by agents)."""

    existing: Member
    other_addr: str


@dataclass(frozen=True, slots=True)
class UserEvent:
    name: str
    payload: bytes
    ltime: int
    id: str


GossipEvent = (
    MemberJoin | MemberUpdate | MemberLeave | MemberFailed | MemberReap | MemberConflict | UserEvent
)


@dataclass(frozen=True, slots=True)
class Packet:
    addr: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """Open a TCP stream to `addr`, send `data`, read one reply frame, and hand it back with
    `Memberlist.handle_stream_reply(id, reply_or_None, now, error)`."""

    id: int
    addr: str
    data: bytes
    timeout: float


@dataclass(frozen=True, slots=True)
class Outputs:
    packets: tuple[Packet, ...] = ()
    streams: tuple[StreamRequest, ...] = ()
    events: tuple[GossipEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class JoinResult:
    joined: int
    errors: dict[str, str] = field(default_factory=dict)
