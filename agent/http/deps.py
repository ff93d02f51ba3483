"""What the HTTP areas may draw their ports from, built once by `agent/agent.py`.

Each area's `register(router, deps)` picks the few ports it uses into its own small value
(`KVPorts(store, writer, ...)`) and binds its handlers to that, so a handler sees only those:
never this bundle, and never the Agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime
    from agent.cluster import ClusterManager
    from agent.events import EventLog
    from agent.local import LocalState
    from agent.mesh_ca import CARuntime, LeafCache, Signer
    from agent.mesh_intentions import Entries
    from agent.metrics import Metrics
    from agent.ports import AgentIdentity, APICaller, Leadership, Writer
    from agent.queries.runner import QueryRunner
    from agent.raft.node import RaftNode
    from agent.state.fsm import FSM
    from agent.state.store import Store
    from agent.state.structs import Session


class AgentControl(Protocol):
    """The agent's own lifecycle and membership, as `/v1/agent/*` drives them."""

    def members(self) -> list[dict]: ...

    def wan_members(self) -> list[dict]: ...

    async def join(self, address: str, wan: bool = False) -> None: ...

    async def force_leave(self, node: str, prune: bool = False, wan: bool = False) -> None: ...

    async def graceful_leave(self) -> None: ...

    def request_stop(self, exit_code: int = 0, leave: bool = False) -> None: ...

    def reload(self) -> None: ...


class IntentionSource(Protocol):
    """The service-intentions entries this agent authorizes connections with."""

    async def entries(self) -> Entries: ...

    def version(self) -> int:
        """Changes whenever the entries may have changed."""
        ...


class SessionRenewer(Protocol):
    """The leader's session TTL timers (`agent/sessions_reaper.py`), as `/v1/session/*`
    restarts them: a create or renew touches no replicated state, only this window."""

    def renew(self, session: Session) -> None: ...


@dataclass(frozen=True)
class HTTPDeps:
    store: Store
    fsm: FSM  # for read-only txns, answered from the store without a log entry
    writer: Writer
    leadership: Leadership
    identity: AgentIdentity
    local: LocalState
    control: AgentControl
    metrics: Metrics
    consensus: RaftNode | None  # servers only
    acl: ACLRuntime | None  # None when ACLs are disabled
    cluster: ClusterManager | None  # gossip pools: members, keyring, WAN (None in twins)
    events: EventLog  # user events this agent received
    sessions_reaper: SessionRenewer  # session TTL timers: create and renew restart them
    ca: CARuntime | None  # servers: the Connect CA in the store, its rotation and signing
    signer: Signer  # this agent's way to the CA (its own store, or a server over RPC)
    leaves: LeafCache  # this agent's leaf certificates
    intentions: IntentionSource  # what authorize decides with
    # this agent's own API, forwarding included (a read of another datacenter); None in twins
    api: APICaller | None = None
    queries: QueryRunner | None = None  # servers: prepared queries, failing over on the WAN
