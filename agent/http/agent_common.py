"""What the `/v1/agent/*` endpoints share: their ports, the empty 200 most writes answer,
`?filter=` over rendered lists, and this agent as a member of its LAN pool.

`agent_ep.py` (members, join/leave, reload, the routes), `agent_info.py` (self, host, metrics,
monitor), `agent_services.py` (local services and their health) and `agent_checks.py` (local
checks and TTL updates) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.filter import FilterError, compile_filter
from agent.http.app import HTTPError, Request, Response
from agent.membership import serf_tags

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import AgentControl
    from agent.local import LocalState
    from agent.metrics import Metrics
    from agent.ports import AgentIdentity, Leadership
    from agent.raft.node import RaftNode
    from agent.state.store import Store

__all__ = ["AgentPorts", "filtered", "member", "ok"]

_EMPTY = b""


@dataclass(frozen=True)
class AgentPorts:
    """What `/v1/agent/*` uses: who this agent is, its local services and checks, its
    lifecycle and membership (`control`), the gossip pools (`cluster`, None in twins) and, for
    `/v1/agent/self` and the metrics, the store, consensus (servers only) and leadership."""

    identity: AgentIdentity
    local: LocalState
    control: AgentControl
    cluster: ClusterManager | None
    store: Store
    consensus: RaftNode | None
    leadership: Leadership
    metrics: Metrics


def ok() -> Response:
    """The empty 200 of a write that has nothing to return."""
    return Response(_EMPTY, 200)


def filtered(req: Request, items: list[dict]) -> list[dict]:
    """The rendered items that the request's `?filter=` expression selects (all without one)."""
    expression = req.get("filter") if req.raw_query else None
    if not expression:
        return items
    try:
        return compile_filter(expression).select(items)
    except FilterError as exc:
        raise HTTPError(400, f"Failed to create boolean expression evaluator: {exc}") from None


def member(identity: AgentIdentity, cluster: ClusterManager | None) -> dict:
    """This agent as a member, from gossip when it runs (else as it would gossip itself)."""
    gossip = cluster.gossip if cluster is not None else None
    if gossip is not None:
        return gossip.local_member().api_dict()
    cfg = identity.config
    return {
        "Name": identity.node_name,
        "Addr": identity.address,
        "Port": cfg.ports.serf_lan if cfg.ports.serf_lan > 0 else 8301,
        "Tags": serf_tags(identity),
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }
