"""The core's public value types: configuration, roles, and what `ready()`/`status()` return."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import IntEnum

from agent.raft.messages import Entry, HardState, Message, Snapshot


class Role(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class Config:
    """Tunables; validated when the core is built.

    `election_tick` ticks without hearing from a leader start an election (randomized per term
    in `[election_tick, 2 * election_tick)` from `rng`); the leader heartbeats every
    `heartbeat_tick`. `applied` is the index the app has already applied (restart).
    `max_size_per_msg` caps the entry bytes per APP (batching); `max_inflight_msgs` caps
    unacknowledged APPs per follower (pipelining window). `rng` makes elections reproducible.
    """

    id: str
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_uncommitted_entries: int = 0  # 0 = unlimited
    max_committed_size_per_ready: int = 0  # bytes of committed entries per Ready; 0 = no cap
    applied: int = 0
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may want to observe (not persisted)."""

    leader: str
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read-index answer: serve the read once the app has applied `index`."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver. See the module docstring for the order."""

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]
    must_sync: bool


@dataclass(frozen=True, slots=True)
class PeerProgress:
    match: int
    next: int
    state: str  # "probe" | "replicate" | "snapshot"
    recent_active: bool
    voter: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    role: Role
    term: int
    vote: str
    leader: str
    commit: int
    applied: int
    last_index: int
    voters: tuple[str, ...]
    nonvoters: tuple[str, ...]
    progress: dict[str, PeerProgress]  # only on the leader
    lead_transferee: str


def validate_config(c: Config) -> None:
    if not c.id:
        raise ValueError("raft: config id must not be empty")
    if c.heartbeat_tick <= 0:
        raise ValueError("raft: heartbeat_tick must be > 0")
    if c.election_tick <= c.heartbeat_tick:
        raise ValueError("raft: election_tick must be greater than heartbeat_tick")
    if c.max_inflight_msgs <= 0:
        raise ValueError("raft: max_inflight_msgs must be > 0")
    if c.max_size_per_msg <= 0:
        raise ValueError("raft: max_size_per_msg must be > 0")
