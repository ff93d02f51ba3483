"""Wire messages: one msgspec Struct per message, a one-byte type in front, msgpack after.

A datagram or stream frame is `bytes([MsgType]) + msgpack(body)`. A `Compound` packs several
encoded messages into one UDP packet. Nothing is pickled; unknown types are dropped by the core.
"""

from __future__ import annotations

from enum import IntEnum
from typing import cast

import msgspec

from agent.gossip.errors import MessageError


class MsgType(IntEnum):
    """ONLY APPEND: the numbers are part of the protocol between agents of different versions."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    NACK = 3
    SUSPECT = 4
    ALIVE = 5
    DEAD = 6
    PUSH_PULL = 7
    COMPOUND = 8
    USER_EVENT = 9
    FORCE_LEAVE = 10
    ERROR = 11


class NodeState(IntEnum):
    """memberlist's view of a node (not the serf/Consul status shown by /v1/agent/members)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class _Msg(msgspec.Struct, array_like=True, frozen=True, omit_defaults=False):
    pass


class Ping(_Msg, frozen=True):
    seq: int
    node: str  # the intended target; a ping for another name is ignored (address reuse)
    source_addr: str
    source_node: str


class IndirectPing(_Msg, frozen=True):
    seq: int
    target: str
    target_addr: str
    source_addr: str
    source_node: str
    nack: bool = True


class Ack(_Msg, frozen=True):
    seq: int
    payload: bytes = b""


class Nack(_Msg, frozen=True):
    seq: int


class Suspect(_Msg, frozen=True):
    incarnation: int
    node: str
    sender: str  # who accuses; suspicion confirmations count distinct senders


class Alive(_Msg, frozen=True):
    incarnation: int
    node: str
    addr: str
    tags: dict[str, str]


class Dead(_Msg, frozen=True):
    """`sender == node` means the node left on purpose (a leave intention), else a failure."""

    incarnation: int
    node: str
    sender: str


class PushNode(_Msg, frozen=True):
    name: str
    addr: str
    tags: dict[str, str]
    incarnation: int
    state: int  # NodeState


class UserEventMsg(_Msg, frozen=True):
    ltime: int
    name: str
    payload: bytes
    id: str


class PushPull(_Msg, frozen=True):
    join: bool
    nodes: list[PushNode]
    event_ltime: int
    # Recent user events (serf sends its event buffer too): gossip's backstop for events.
    events: list[UserEventMsg] = msgspec.field(default_factory=list)


class Compound(_Msg, frozen=True):
    parts: list[bytes]


class ForceLeave(_Msg, frozen=True):
    """serf's leave intention sent on behalf of a failed node (force-leave)."""

    node: str
    incarnation: int
    prune: bool


class ErrorReply(_Msg, frozen=True):
    """A stream reply refusing the request (e.g. the merge delegate rejected a join)."""

    error: str


Message = (
    Ping
    | IndirectPing
    | Ack
    | Nack
    | Suspect
    | Alive
    | Dead
    | PushPull
    | Compound
    | UserEventMsg
    | ForceLeave
    | ErrorReply
)

_TYPES: dict[MsgType, type[_Msg]] = {
    MsgType.PING: Ping,
    MsgType.INDIRECT_PING: IndirectPing,
    MsgType.ACK: Ack,
    MsgType.NACK: Nack,
    MsgType.SUSPECT: Suspect,
    MsgType.ALIVE: Alive,
    MsgType.DEAD: Dead,
    MsgType.PUSH_PULL: PushPull,
    MsgType.COMPOUND: Compound,
    MsgType.USER_EVENT: UserEventMsg,
    MsgType.FORCE_LEAVE: ForceLeave,
    MsgType.ERROR: ErrorReply,
}
_CODES: dict[type[_Msg], MsgType] = {cls: code for code, cls in _TYPES.items()}
_ENCODER = msgspec.msgpack.Encoder()
_DECODERS = {code: msgspec.msgpack.Decoder(cls) for code, cls in _TYPES.items()}

# Bytes a Compound adds around its parts: type byte + array header + per-part bin header.
COMPOUND_OVERHEAD = 6
COMPOUND_PART_OVERHEAD = 5


def encode(msg: Message) -> bytes:
    return bytes([_CODES[type(msg)]]) + _ENCODER.encode(msg)


def decode(data: bytes) -> Message:
    """Decode one message; raises MessageError for anything malformed or of unknown type."""
    if not data:
        raise MessageError("empty message")
    try:
        code = MsgType(data[0])
    except ValueError:
        raise MessageError(f"unknown message type {data[0]}") from None
    try:
        return cast(Message, _DECODERS[code].decode(data[1:]))
    except msgspec.DecodeError as exc:
        raise MessageError(f"bad {code.name} message: {exc}") from None


def encode_compound(parts: list[bytes]) -> bytes:
    """One packet carrying several encoded messages (a single part is sent as itself)."""
    if len(parts) == 1:
        return parts[0]
    return encode(Compound(parts))
