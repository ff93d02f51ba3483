"""Executing a prepared query: Consul's rules as pure functions over CheckServiceNodes.

The input is the service's instances as `/v1/health/service/<name>` renders them (dicts with
`Node`, `Service`, `Checks`; see `agent.render.check_service_node`), so local results and the
answers of another datacenter are the same values. The steps, in Consul's order
(agent/consul/prepared_query_endpoint.go `Execute` and `execute`):

1. `select_nodes`: drop instances with a critical check (with `OnlyPassing`, any check not
   passing), the checks in `IgnoreCheckIDs` not counted; keep those whose node meta and
   service meta carry every `NodeMeta` / `ServiceMeta` pair; keep those with every tag of
   `Tags` and none of its `!tag`s (tags compared without regard to case).
2. ACL filtering (the caller's; it needs the token), then a shuffle.
3. `sort_near`: with a source node (`?near=`, else the query's `Near`; `_agent` is the agent
   that took the request, `_ip` the node whose address is the caller's), a stable sort by
   estimated RTT from that node's coordinate, nodes without one last; then that node itself
   is moved to the front when it is among the first ten.
4. `?limit=`.
5. No instance left: `failover_targets` lists where to ask next: the `NearestN` other
   datacenters by WAN distance, then the listed ones (`Targets`, else `Datacenters`) that are
   known and were not among the nearest, and listed peers. Each is asked in turn
   (`Failovers` counts them) until one answers instances.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.gossip.coordinate import Coordinate

__all__ = [
    "FRONT_DEPTH",
    "Target",
    "failover_targets",
    "healthy",
    "limit",
    "meta_matches",
    "response",
    "select_nodes",
    "shuffle",
    "sort_near",
    "source_node",
    "tags_match",
    "to_coordinate",
]

# Consul looks for the source node only this deep in the sorted list: distance sorting puts
# it near the front, so a deeper search would be wasted.
FRONT_DEPTH = 10


@dataclass(frozen=True)
class Target:
    """One failover step: a datacenter to execute the query in, or a cluster peer."""

    datacenter: str = ""
    peer: str = ""


def healthy(node: Mapping[str, Any], only_passing: bool, ignore: frozenset[str]) -> bool:
    """Consul's FilterIgnore for one instance."""
    for check in node.get("Checks") or ():
        if check.get("CheckID") in ignore:
            continue
        status = check.get("Status")
        if status == "critical" or (only_passing and status != "passing"):
            return False
    return True


def meta_matches(meta: Mapping[str, str] | None, filters: Mapping[str, str]) -> bool:
    """Every filter pair present with the same value (Consul's SatisfiesMetaFilters)."""
    meta = meta or {}
    return all(k in meta and meta[k] == v for k, v in filters.items())


def _tag_rules(tags: Iterable[str]) -> tuple[list[str], list[str]]:
    must, must_not = [], []
    for tag in tags:
        tag = tag.lower()
        if tag.startswith("!"):
            must_not.append(tag[1:])
        else:
            must.append(tag)
    return must, must_not


def tags_match(
    service_tags: Iterable[str] | None, must: Sequence[str], not_: Sequence[str]
) -> bool:
    present = {t.lower() for t in service_tags or ()}
    return all(t in present for t in must) and not any(t in present for t in not_)


def select_nodes(service: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The instances a query's `Service` block keeps (health, node meta, service meta, tags)."""
    only_passing = bool(service.get("OnlyPassing"))
    ignore = frozenset(service.get("IgnoreCheckIDs") or ())
    node_meta = service.get("NodeMeta") or {}
    service_meta = service.get("ServiceMeta") or {}
    must, must_not = _tag_rules(service.get("Tags") or ())
    out = []
    for node in nodes:
        if not healthy(node, only_passing, ignore):
            continue
        if node_meta and not meta_matches((node.get("Node") or {}).get("Meta"), node_meta):
            continue
        svc = node.get("Service") or {}
        if service_meta and not meta_matches(svc.get("Meta"), service_meta):
            continue
        if (must or must_not) and not tags_match(svc.get("Tags"), must, must_not):
            continue
        out.append(node)
    return out


def shuffle(nodes: list[Any], rng: random.Random) -> list[Any]:
    nodes = list(nodes)
    rng.shuffle(nodes)
    return nodes


def source_node(
    near: str,
    query_near: str,
    agent_node: str,
    source_ip: str,
    node_at: Callable[[str], str | None],
) -> str:
    """The node to sort near: the request's `?near=` first, else the query's `Near`;
    `_agent` is the requesting agent, `_ip` the node whose address is `source_ip` (none
    found, or no IP: no sorting, as Consul). `node_at(ip)` names the node with that address."""
    node = near or query_near
    if node == "_agent":
        return agent_node
    if node == "_ip":
        return (node_at(source_ip) or "") if source_ip else ""
    return node


def to_coordinate(coord: Mapping[str, Any] | None) -> Coordinate | None:
    """A coordinate from its API shape (`Coord` of /v1/coordinate/nodes)."""
    if not coord:
        return None
    try:
        return Coordinate(
            tuple(float(v) for v in coord.get("Vec") or ()),
            float(coord.get("Error", 0.0)),
            float(coord.get("Adjustment", 0.0)),
            float(coord.get("Height", 0.0)),
        )
    except (TypeError, ValueError):
        return None


def _distance(a: Coordinate, b: Coordinate | None) -> float:
    if b is None or len(a.vec) != len(b.vec):
        return float("inf")  # Consul's computeDistance for a missing or foreign coordinate
    return a.distance(b)


def sort_near(
    nodes: list[Any],
    source: str,
    coordinate_of: Callable[[str], Coordinate | None],
) -> list[Any]:
    """Stable sort by RTT from `source`'s coordinate (no coordinate: order kept), then
    `source` itself (its name in any case) first when it is among the first `FRONT_DEPTH`."""
    if not source:
        return nodes
    origin = coordinate_of(source)
    if origin is not None:
        nodes = sorted(nodes, key=lambda n: _distance(origin, coordinate_of(n["Node"]["Node"])))
    else:
        nodes = list(nodes)
    wanted = source.lower()
    for i, node in enumerate(nodes[:FRONT_DEPTH]):
        if node["Node"]["Node"].lower() == wanted:
            nodes[0], nodes[i] = nodes[i], nodes[0]
            break
    return nodes


def limit(nodes: list[Any], count: int) -> list[Any]:
    return nodes[:count] if count > 0 and len(nodes) > count else nodes


def failover_targets(failover: Mapping[str, Any], nearest: Sequence[str]) -> list[Target]:
    """Where to ask when nothing is left here (Consul's queryFailover). `nearest`: the other
    datacenters, nearest first (WAN coordinates). First the `NearestN` nearest, then the
    listed targets (`Targets`, else `Datacenters`): a datacenter only when it is known and
    was not among the nearest, a peer always."""
    picked: list[Target] = []
    nearest_picked: set[str] = set()
    count = int(failover.get("NearestN") or 0)
    for dc in nearest[: max(count, 0)]:
        picked.append(Target(datacenter=dc))
        nearest_picked.add(dc)
    known = set(nearest)
    listed = [
        Target(datacenter=t.get("Datacenter") or "", peer=t.get("Peer") or "")
        for t in failover.get("Targets") or ()
    ] or [Target(datacenter=dc) for dc in failover.get("Datacenters") or ()]
    for target in listed:
        dc = target.datacenter
        if dc and dc in known and dc not in nearest_picked:
            picked.append(Target(datacenter=dc))
        if target.peer:
            picked.append(Target(peer=target.peer))
    return picked


def response(
    query: Mapping[str, Any],
    nodes: list[Any],
    datacenter: str,
    failovers: int = 0,
) -> dict[str, Any]:
    """The PreparedQueryExecuteResponse body without its QueryMeta fields."""
    return {
        "Service": query["Service"]["Service"],
        "Nodes": nodes,
        "DNS": {"TTL": (query.get("DNS") or {}).get("TTL", "")},
        "Datacenter": datacenter,
        "PeerName": "",
        "Failovers": failovers,
    }
