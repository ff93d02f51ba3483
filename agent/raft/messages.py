"""Raft value types: log entries, membership, snapshots, hard state and the one message shape.

Everything here is a frozen value. `to_wire`/`from_wire` map a `Message` to nested lists of
plain types (int, str, bytes, bool, None) so the driver can frame it with msgpack; nothing is
pickled. The numbers of `MsgType`, `EntryKind` and `ConfChangeOp` are part of the wire and the
durable log: ONLY APPEND, never renumber.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgspec

NONE = ""
"""The empty node id: "no vote", "no leader", "no transferee"."""


class MsgType(IntEnum):
    """Message kinds. ONLY APPEND: the numbers travel on the wire."""

    HUP = 0  # local: start an election (pre-vote first when enabled)
    BEAT = 1  # local: the leader's heartbeat timer fired
    PROP = 2  # a proposal; local, or forwarded by a follower to the leader
    APP = 3  # AppendEntries
    APP_RESP = 4
    VOTE = 5  # RequestVote
    VOTE_RESP = 6
    SNAP = 7  # InstallSnapshot
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10  # local: the transport could not deliver to `frm`
    SNAP_STATUS = 11  # local: a snapshot to `frm` finished (reject=True means it failed)
    CHECK_QUORUM = 12  # local: the leader's check-quorum timer fired
    TRANSFER_LEADER = 13  # local or forwarded: move leadership to `frm`
    TIMEOUT_NOW = 14  # leader -> transferee: campaign now, skipping pre-vote
    READ_INDEX = 15  # local or forwarded: a linearizable read request, id in `context`
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


LOCAL_MSGS = frozenset(
    {MsgType.HUP, MsgType.BEAT, MsgType.UNREACHABLE, MsgType.SNAP_STATUS, MsgType.CHECK_QUORUM}
)
"""Kinds only the local node may step; `RaftCore.step` refuses them (see `core.step`)."""

RESPONSE_MSGS = frozenset(
    {
        MsgType.APP_RESP,
        MsgType.VOTE_RESP,
        MsgType.HEARTBEAT_RESP,
        MsgType.UNREACHABLE,
        MsgType.READ_INDEX_RESP,
        MsgType.PRE_VOTE_RESP,
    }
)


class EntryKind(IntEnum):
    """What an entry's data means. ONLY APPEND: stored in the durable log."""

    NORMAL = 0  # application command (opaque bytes)
    CONF_CHANGE = 1  # data is `ConfChange.encode()`
    NOOP = 2  # the leader's first entry of its term; empty data


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate encoded size, used for the `max_bytes` batching limits."""
        return len(self.data) + 24


class ConfChangeOp(IntEnum):
    """ONLY APPEND: stored in the durable log."""

    ADD_VOTER = 0
    ADD_NONVOTER = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership: voters elect and commit, nonvoters only replicate.

    `addresses` maps node id to its RPC address as `(id, address)` pairs sorted by id; the core
    only carries it so the driver learns where new peers live.
    """

    voters: tuple[str, ...] = ()
    nonvoters: tuple[str, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()

    def address_of(self, node_id: str) -> str:
        for nid, addr in self.addresses:
            if nid == node_id:
                return addr
        return ""

    def apply(self, cc: ConfChange) -> ConfState:
        """The membership after `cc` (pure; removing an unknown node is a no-op)."""
        voters = [v for v in self.voters if v != cc.node_id]
        nonvoters = [v for v in self.nonvoters if v != cc.node_id]
        addrs = {k: v for k, v in self.addresses if k != cc.node_id}
        if cc.op == ConfChangeOp.ADD_VOTER:
            voters.append(cc.node_id)
        elif cc.op == ConfChangeOp.ADD_NONVOTER:
            nonvoters.append(cc.node_id)
        if cc.op != ConfChangeOp.REMOVE:
            addrs[cc.node_id] = cc.address or self.address_of(cc.node_id)
        return ConfState(
            tuple(sorted(voters)), tuple(sorted(nonvoters)), tuple(sorted(addrs.items()))
        )


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One single-server membership change. ADD_VOTER on a nonvoter promotes it.

    `conf` is the whole membership after the change; `RaftCore.propose_conf_change` fills it
    in from the leader's current membership (as hashicorp/raft's configuration entries do), so
    a server that replays the log from scratch, e.g. a fresh joiner, rebuilds the exact
    membership without knowing the bootstrap configuration.
    """

    op: ConfChangeOp
    node_id: str
    address: str = ""
    conf: ConfState | None = None

    def encode(self) -> bytes:
        conf = None if self.conf is None else conf_to_wire(self.conf)
        return msgspec.msgpack.encode([int(self.op), self.node_id, self.address, conf])

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        obj = msgspec.msgpack.decode(data)
        op, node_id, address = obj[:3]
        conf = conf_from_wire(obj[3]) if len(obj) > 3 and obj[3] is not None else None
        return cls(ConfChangeOp(op), node_id, address, conf)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message of the same Ready is sent."""

    term: int = 0
    vote: str = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """Every Raft message, local or remote. Fields unused by a kind keep their defaults.

    - APP: `log_term`/`index` identify the entry preceding `entries`; `commit` is the leader's.
    - APP_RESP: `index` is the last index now matched (or the rejected index); on reject,
      `reject_hint` is the follower's last index and `log_term` the term at `reject_hint`.
    - VOTE/PRE_VOTE: `log_term`/`index` are the candidate's last entry; `context` is
      `CAMPAIGN_TRANSFER` when a leader transfer forces the vote.
    - HEARTBEAT(_RESP): `context` carries a read-index round id, `index` the leader's lease tick.
    - READ_INDEX(_RESP): `context` is the caller's request id; the response's `index` is the
      read index.
    """

    type: MsgType
    to: str = NONE
    frm: str = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


CAMPAIGN_TRANSFER = b"CampaignTransfer"


# -- wire form ----------------------------------------------------------------------------------


def entry_to_wire(e: Entry) -> list[Any]:
    return [e.index, e.term, int(e.kind), e.data]


def entry_from_wire(obj: list[Any]) -> Entry:
    index, term, kind, data = obj
    return Entry(int(index), int(term), EntryKind(kind), bytes(data))


def conf_to_wire(c: ConfState) -> list[Any]:
    return [list(c.voters), list(c.nonvoters), [[k, v] for k, v in c.addresses]]


def conf_from_wire(obj: list[Any]) -> ConfState:
    voters, nonvoters, addrs = obj
    return ConfState(
        tuple(str(v) for v in voters),
        tuple(str(v) for v in nonvoters),
        tuple((str(k), str(v)) for k, v in addrs),
    )


def snapshot_to_wire(s: Snapshot) -> list[Any]:
    return [s.meta.index, s.meta.term, conf_to_wire(s.meta.conf), s.data]


def snapshot_from_wire(obj: list[Any]) -> Snapshot:
    index, term, conf, data = obj
    return Snapshot(SnapshotMeta(int(index), int(term), conf_from_wire(conf)), bytes(data))


def to_wire(m: Message) -> list[Any]:
    """`m` as a list of plain values: positional, in field order."""
    return [
        int(m.type),
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [entry_to_wire(e) for e in m.entries],
        m.commit,
        m.reject,
        m.reject_hint,
        None if m.snapshot is None else snapshot_to_wire(m.snapshot),
        m.context,
    ]


def from_wire(obj: list[Any]) -> Message:
    """Inverse of `to_wire`; raises ValueError/TypeError on a malformed value."""
    if not isinstance(obj, list | tuple) or len(obj) != 12:
        raise ValueError("raft message: expected a 12-item list")
    t, to, frm, term, log_term, index, ents, commit, reject, hint, snap, ctx = obj
    return Message(
        type=MsgType(t),
        to=str(to),
        frm=str(frm),
        term=int(term),
        log_term=int(log_term),
        index=int(index),
        entries=tuple(entry_from_wire(e) for e in ents),
        commit=int(commit),
        reject=bool(reject),
        reject_hint=int(hint),
        snapshot=None if snap is None else snapshot_from_wire(snap),
        context=bytes(ctx),
    )


def hard_state_to_wire(h: HardState) -> list[Any]:
    return [h.term, h.vote, h.commit]


def hard_state_from_wire(obj: list[Any]) -> HardState:
    term, vote, commit = obj
    return HardState(int(term), str(vote), int(commit))
