"""RaftCore: the Raft algorithm as a pure state machine (no I/O, no clock, no threads).

Inputs are `tick()` (one unit of abstract time), `step(msg)` (a message from a peer) and the
local requests (`propose`, `propose_conf_change`, `read_index`, `transfer_leadership`,
`campaign`). Outputs accumulate until the driver takes them with `ready()`:

    rd = core.ready()               # only when core.has_ready()
    persist rd.snapshot, rd.entries, rd.hard_state   (fsync; in that order)
    send rd.messages                 (only AFTER the persist above)
    apply rd.committed_entries       (CONF_CHANGE entries -> core.apply_conf_change(cc))
    answer rd.read_states            (once applied >= read_state.index)
    core.advance(rd)

`step`/`tick`/`propose` may be called between `ready()` and `advance()`; `ready()` must not be
called again before `advance()` of the previous one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import IntEnum

from agent.raft.messages import ConfChange, ConfState, Entry, HardState, Message, Snapshot
from agent.raft.storage import Storage


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


class RaftCore:
    """One Raft node's protocol state. Not thread-safe: one caller (the driver) at a time."""

    def __init__(self, config: Config, storage: Storage) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Advance abstract time by one tick (elections, heartbeats, check-quorum)."""
        raise NotImplementedError

    def step(self, msg: Message) -> None:
        """Feed a message from a peer. Raises `StepLocalMsg` for a local-only kind.

        Messages from stale terms are ignored (or answered, when that helps the sender).
        """
        raise NotImplementedError

    def campaign(self) -> None:
        """Start an election now (pre-vote first when enabled)."""
        raise NotImplementedError

    def propose(self, data: bytes) -> int:
        """Append a NORMAL entry; returns its index. Only on the leader.

        Raises `NotLeader(leader)` on a follower/candidate, `ProposalDropped` during a leader
        transfer or when this node was removed. The index is a hint: the entry may still be
        lost if leadership changes; it commits iff it shows up in `committed_entries` with the
        same term.
        """
        raise NotImplementedError

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a CONF_CHANGE entry; returns its index. One at a time: raises
        `ProposalDropped` while an earlier one is not yet applied. Errors as `propose`."""
        raise NotImplementedError

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Take `cc` into effect; called by the app when it applies the CONF_CHANGE entry."""
        raise NotImplementedError

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; `ctx` is the caller's unique request id.

        The answer arrives as `ReadState(index, ctx)` in a later `Ready` (on the leader after a
        heartbeat round confirms leadership; a follower forwards to the leader). Raises
        `NotLeader("")` when no leader is known; requests can be silently lost on leader
        change, so the caller needs a timeout.
        """
        raise NotImplementedError

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter `to` (TimeoutNow once it is caught up). Proposals are
        refused until the transfer completes or aborts after an election timeout."""
        raise NotImplementedError

    def leader_lease_valid(self) -> bool:
        """True while this leader knows no other leader can exist: a quorum acknowledged a
        heartbeat sent less than `election_tick` ticks ago, and an entry of its own term is
        committed. Needs `check_quorum` (followers then refuse votes while they hear from a
        leader). The driver may serve default-consistency reads when this is true and it has
        applied up to `status().commit`."""
        raise NotImplementedError

    def report_unreachable(self, node_id: str) -> None:
        """The transport failed to deliver to `node_id`; the leader falls back to probing."""
        raise NotImplementedError

    def report_snapshot(self, node_id: str, ok: bool) -> None:
        """A snapshot send to `node_id` finished (`ok`) or failed."""
        raise NotImplementedError

    def has_ready(self) -> bool:
        raise NotImplementedError

    def ready(self) -> Ready:
        raise NotImplementedError

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied everything in `rd`."""
        raise NotImplementedError

    def status(self) -> Status:
        raise NotImplementedError
