"""Expected failures of the Raft core and its storage.

    RaftError
    ├── StorageError
    │   ├── Compacted          the index is below the first available entry (use the snapshot)
    │   ├── Unavailable        the index is beyond the last entry
    │   └── SnapshotOutOfDate  a snapshot older than the one held
    ├── NotLeader              a proposal/conf change/transfer needs the leader; `.leader` hints it
    ├── ProposalDropped        the proposal cannot be accepted now (transfer in flight,
    │                          conf change pending, removed from the cluster)
    └── StepLocalMsg           a local-only message kind arrived from the network

Broken invariants raise AssertionError, never one of these.
"""

from __future__ import annotations

from agent.errors import NotLeader as AgentNotLeader


class RaftError(Exception):
    """Root of the Raft core's expected errors."""


class StorageError(RaftError):
    pass


class Compacted(StorageError):
    """The requested index was compacted into a snapshot."""


class Unavailable(StorageError):
    """The requested index is not in the log (yet)."""


class SnapshotOutOfDate(StorageError):
    """The snapshot is older than the one already held."""


class NotLeader(RaftError, AgentNotLeader):
    """Only the leader can do this. `leader` is the known leader id, or "" when unknown.
    The agent's own NotLeader is its base: one `except NotLeader` catches either."""

    def __init__(self, leader: str = "") -> None:
        AgentNotLeader.__init__(self, f"not the leader (leader: {leader or 'unknown'})", leader)


class ProposalDropped(RaftError):
    """The leader refused the proposal for now (leader transfer, pending conf change, ...)."""


class StepLocalMsg(RaftError):
    """A message kind that only the local node may generate arrived via `step`."""
