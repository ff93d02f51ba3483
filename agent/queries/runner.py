"""Running prepared queries on a server: its store's instances, ACLs, and failover over the WAN.

`QueryRunner` is Consul's `PreparedQuery.Execute` and `ExecuteRemote` (agent/consul/
prepared_query_endpoint.go) around the pure steps of `agent.queries.execute`: it reads the
service's instances from the store, filters them with the token (the query's stored `Token`
when it has one, else the caller's: `node:read` and `service:read` on each instance), sorts
them near the source node, and, when nothing is left, asks other datacenters in failover
order. A remote datacenter does not have the query, so the whole definition travels
(`ExecuteRemote`); it runs it on its own instances without failing over further, shuffles and
limits the answer.

`WanQueries` is the WAN side: the other datacenters by distance (the WAN pool's coordinates)
and the RPC to a server there; on the receiving end it runs the query, sending it on to its
leader unless the request allows a stale answer. The HTTP area (`agent/http/query_exec.py`)
and the DNS server both call the runner, so `.query.` lookups fail over the same way.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

import msgspec

from agent import render
from agent.acl.enforce import decide, resolve_secret
from agent.gossip.coordinate import Coordinate
from agent.queries.execute import (
    failover_targets,
    limit,
    response,
    select_nodes,
    shuffle,
    sort_near,
    source_node,
    to_coordinate,
)
from agent.rpc import RPCError
from agent.state.mesh_views import connect_instances

if TYPE_CHECKING:
    from agent.acl.enforce import ACLRuntime
    from agent.rpc import RPCPool
    from agent.state.store import Store

log = logging.getLogger("agent.queries")

__all__ = [
    "EXECUTE_REMOTE",
    "Caller",
    "Federation",
    "QueryRunner",
    "RemoteQueryFailed",
    "WanQueries",
]

EXECUTE_REMOTE = "PreparedQuery.ExecuteRemote"  # the RPC method (Consul's name for it)
REMOTE_TIMEOUT = 10.0
CACHE_LIMIT = 1024  # distinct lookups kept (queries x filters); all dropped when full


class RemoteQueryFailed(Exception):
    """Another datacenter could not be asked, or refused (the message says why)."""


@dataclass(frozen=True)
class Caller:
    """Who executes a query and how (Consul's PreparedQueryExecuteRequest, minus the query)."""

    token: str = ""
    agent_node: str = ""  # the agent that took the request (`_agent`)
    near: str = ""  # `?near=`
    source_ip: str = ""  # the requester's address (`_ip`)
    limit: int = 0
    connect: bool = False
    allow_stale: bool = False


class Federation(Protocol):
    """The other datacenters, as failover reaches them."""

    def other_datacenters(self) -> list[str]:
        """Every other known datacenter, nearest first."""
        ...

    async def execute_remote(self, datacenter: str, args: dict) -> dict:
        """Run the query of `args` in `datacenter`; raises RemoteQueryFailed."""
        ...


class QueryRunner:
    """A server's execution of resolved queries (their templates already rendered)."""

    def __init__(
        self,
        store: Store,
        acl: ACLRuntime | None,
        datacenter: str,
        federation: Federation | None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.acl = acl
        self.datacenter = datacenter
        self.federation = federation
        self.rng = rng or random.Random()
        self._cache: dict[tuple, tuple[int, list[dict]]] = {}

    # ------------------------------------------------------------------ local steps

    def instances(self, service: dict, connect: bool) -> list[dict]:
        """The service's instances as CheckServiceNodes, kept by the query's filters. With
        Connect (the query's or the request's), the instances that accept Connect traffic
        for it: its sidecar proxies and Connect-native instances. A query for a cluster
        peer's service finds nothing: this agent imports no peer's services.

        A plain lookup is kept until the service's index moves (any change to an instance,
        its node or a check deciding its health moves it): a busy query is answered
        without rendering its instances again. The lists are shared: never change them."""
        if service.get("Peer"):
            return []
        connect = connect or service.get("Connect") is True
        if connect:
            return self._lookup(service, True)
        key = (
            service["Service"],
            bool(service.get("OnlyPassing")),
            tuple(service.get("IgnoreCheckIDs") or ()),
            tuple(service.get("Tags") or ()),
            tuple(sorted((service.get("NodeMeta") or {}).items())),
            tuple(sorted((service.get("ServiceMeta") or {}).items())),
        )
        index = self.store.service_name_index(service["Service"])
        cached = self._cache.get(key)
        if cached is not None and cached[0] == index:
            return cached[1]
        nodes = self._lookup(service, False)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (index, nodes)
        return nodes

    def _lookup(self, service: dict, connect: bool) -> list[dict]:
        store = self.store
        name = service["Service"]
        if connect:
            pairs = connect_instances(store, name).pairs
        else:
            wanted = name.lower()  # Consul's service index ignores case
            pairs = [
                (node, svc)
                for node_name, services in store.services.items()
                if (node := store.nodes.get(node_name)) is not None
                for svc in services.values()
                if svc.Service.lower() == wanted
            ]
        nodes = [
            render.check_service_node(
                n, s, render.instance_checks(store.checks.get(n.Node, {}).values(), s.ID)
            )
            for n, s in pairs
        ]
        return select_nodes(service, nodes)

    def permitted(self, nodes: list[dict], token: str) -> list[dict]:
        """The instances `token` may read (node:read and service:read); ACLNotFound for a
        token that does not exist."""
        if self.acl is None:
            return nodes
        ident = resolve_secret(self.acl, token)
        return [
            n
            for n in nodes
            if decide(ident, "node", n["Node"]["Node"], "read")
            and decide(ident, "service", n["Service"]["Service"], "read")
        ]

    def _node_at(self, ip: str) -> str | None:
        for name in sorted(self.store.nodes):
            if self.store.nodes[name].Address == ip:
                return name
        return None

    def _coordinate(self, node: str) -> Coordinate | None:
        entry = self.store.coordinates.get(node)
        return to_coordinate(entry.get("Coord")) if entry else None

    # ------------------------------------------------------------------ execution

    async def execute(self, query: dict, caller: Caller) -> dict:
        """Consul's Execute: the local answer, else the first remote datacenter's."""
        service = query["Service"]
        found = self.instances(service, caller.connect)
        token = query.get("Token") or caller.token
        nodes = shuffle(self.permitted(found, token), self.rng)
        filtered = _filtered(found, nodes, token)
        source = source_node(
            caller.near,
            service.get("Near") or "",
            caller.agent_node,
            caller.source_ip,
            self._node_at,
        )
        nodes = limit(sort_near(nodes, source, self._coordinate), caller.limit)
        result = response(query, nodes, self.datacenter)
        result["ResultsFilteredByACLs"] = filtered
        if not nodes:
            await self._fail_over(query, caller, result)
        return result

    async def _fail_over(self, query: dict, caller: Caller, result: dict) -> None:
        federation = self.federation
        nearest = federation.other_datacenters() if federation is not None else []
        targets = failover_targets(query["Service"].get("Failover") or {}, nearest)
        args = {
            "Query": query,
            "Limit": caller.limit,
            "Connect": caller.connect,
            "Token": caller.token,
            "AllowStale": caller.allow_stale,
        }
        tried = 0
        for target in targets:
            tried += 1
            result["Nodes"] = []
            if target.peer:
                # Consul runs the query here for the peer's imported instances; this agent
                # has no cluster peering, so a peer has none to offer.
                result.update(Datacenter="", PeerName=target.peer)
                continue
            if federation is None:
                continue
            try:
                reply = await federation.execute_remote(target.datacenter, args)
            except RemoteQueryFailed as exc:
                log.warning(
                    "prepared query: failed querying for service %r in datacenter %r: %s",
                    query["Service"]["Service"],
                    target.datacenter,
                    exc,
                )
                continue
            for key in (
                "Service",
                "Nodes",
                "DNS",
                "Datacenter",
                "PeerName",
                "ResultsFilteredByACLs",
            ):
                if key in reply:
                    result[key] = reply[key]
            if result["Nodes"]:
                break
        result["Failovers"] = tried

    def execute_remote(self, args: dict) -> dict:
        """Consul's ExecuteRemote: the query sent by another datacenter, run here without
        failover; no distance sort (the caller is elsewhere), a shuffle and the limit."""
        query = args.get("Query")
        if not isinstance(query, dict) or not isinstance(query.get("Service"), dict):
            raise RemoteQueryFailed("malformed remote query")
        service = query["Service"]
        if not isinstance(service.get("Service"), str):
            raise RemoteQueryFailed("malformed remote query")
        found = self.instances(service, bool(args.get("Connect")))
        token = query.get("Token") or str(args.get("Token") or "")
        nodes = self.permitted(found, token)
        result = response(
            query, limit(shuffle(nodes, self.rng), int(args.get("Limit") or 0)), self.datacenter
        )
        result["ResultsFilteredByACLs"] = _filtered(found, nodes, token)
        return result


def _filtered(found: list[dict], kept: list[dict], token: str) -> bool:
    """ResultsFilteredByACLs: instances were dropped, told only to a caller with a token
    (Consul's maskResultsFilteredByACLs)."""
    return bool(token) and len(kept) < len(found)


# --------------------------------------------------------------------------- the WAN side


class WanView(Protocol):
    def datacenters(self) -> list[str]: ...

    def server_for(self, datacenter: str) -> str | None: ...


class QueryHost(Protocol):
    """What the WAN side needs of its server: its datacenter and name, the WAN pool, the RPC
    pool, and who leads (`consensus`: is_leader, leader_address)."""

    datacenter: str
    node_name: str
    rpc_pool: RPCPool
    consensus: Any

    def wan(self) -> WanView | None: ...


class WanQueries:
    """`Federation` over the WAN pool and the RPC pool, and the handler of its RPC."""

    def __init__(self, host: QueryHost, runner: Callable[[], QueryRunner | None]) -> None:
        self.host = host
        self.runner = runner

    def other_datacenters(self) -> list[str]:
        pool = self.host.wan()
        if pool is None:
            return []
        return [dc for dc in pool.datacenters() if dc != self.host.datacenter]

    def _server(self, datacenter: str) -> str:
        pool = self.host.wan()
        server = pool.server_for(datacenter) if pool is not None else None
        if server is None:
            raise RemoteQueryFailed("No path to datacenter")
        return server

    async def execute_remote(self, datacenter: str, args: dict) -> dict:
        server = self._server(datacenter)
        try:
            reply = await self.host.rpc_pool.call(
                server, EXECUTE_REMOTE, args, timeout=REMOTE_TIMEOUT
            )
        except RPCError as exc:
            raise RemoteQueryFailed(str(exc)) from None
        if not isinstance(reply, dict):
            raise RemoteQueryFailed("malformed reply")
        return reply

    async def serve(self, args: Any) -> dict:
        """The RPC handler: run a query another datacenter sent, on this datacenter's leader
        unless a stale answer is allowed."""
        if not isinstance(args, dict):
            raise RPCError("malformed remote query", 400)
        consensus = self.host.consensus
        runner = self.runner()
        if consensus is None or runner is None:
            raise RPCError("not a server", 400)
        if not consensus.is_leader and not args.get("AllowStale"):
            leader = consensus.leader_address
            if not leader:
                raise RPCError("No cluster leader")
            return await self.host.rpc_pool.call(
                leader, EXECUTE_REMOTE, args, timeout=REMOTE_TIMEOUT
            )
        try:
            return runner.execute_remote(args)
        except RemoteQueryFailed as exc:
            raise RPCError(str(exc), 400) from None
        except Exception as exc:  # ACLNotFound and the like: the caller logs and goes on
            raise RPCError(str(exc) or type(exc).__name__, 403) from None

    async def execute_in(self, datacenter: str, name: str, caller: Caller) -> dict | None:
        """Execute the query `name` as datacenter `datacenter` knows it (a `.query.<dc>.`
        DNS lookup): the request goes to a server there as `?dc=` requests do. None when
        that datacenter has no such query."""
        params: dict[str, str] = {}
        if caller.allow_stale:
            params["stale"] = ""
        if caller.limit:
            params["limit"] = str(caller.limit)
        headers = [[b"x-gitkv-agent-node", caller.agent_node.encode()]]
        if caller.token:
            headers.append([b"x-consul-token", caller.token.encode()])
        if caller.source_ip:
            headers.append([b"x-forwarded-for", caller.source_ip.encode()])
        args = {
            "method": "GET",
            "path": f"/v1/query/{quote(name, safe='')}/execute",
            "query": urlencode(params).encode(),
            "headers": headers,
            "body": b"",
        }
        try:
            reply = await self.host.rpc_pool.call(
                self._server(datacenter), "http", args, timeout=REMOTE_TIMEOUT
            )
        except RPCError as exc:
            raise RemoteQueryFailed(str(exc)) from None
        if reply["status"] == 404:
            return None
        if reply["status"] != 200:
            raise RemoteQueryFailed(reply["body"].decode(errors="replace"))
        return msgspec.json.decode(reply["body"])
