"""What the DNS resolver knows of the catalog: plain node and instance values, the `Catalog`
protocol it reads them through, and the health rules that decide which instances it answers.

The values are built from the store's structs (a server) or from HTTP API JSON (a client agent
asking a server); both adapters live in `agent.dns_server`. `MemoryCatalog` is the in-memory
reference for tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "Instance",
    "MemoryCatalog",
    "NodeRecord",
    "QueryAnswer",
    "healthy",
    "instance_from_json",
    "instance_from_struct",
    "node_from_json",
    "node_from_struct",
    "srv_weight",
]


@dataclass(frozen=True)
class NodeRecord:
    name: str
    address: str
    datacenter: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    tagged_addresses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """One service instance with the statuses of the checks that decide its health
    (node-level checks and its own)."""

    node: NodeRecord
    service: str
    service_id: str = ""
    address: str = ""
    port: int = 0
    tags: tuple[str, ...] = ()
    weight_passing: int = 1
    weight_warning: int = 1
    statuses: tuple[str, ...] = ()
    # The service this instance accepts Connect traffic for (a proxy's destination, a
    # Connect-native service's own name), "" for none.
    connect_for: str = ""
    ingress_for: tuple[str, ...] = ()  # (MemoryCatalog) services an ingress gateway exposes


@dataclass(frozen=True)
class QueryAnswer:
    """A prepared query's execution (PreparedQueryExecuteResponse): the instances it chose,
    already filtered, shuffled and sorted, the datacenter they are in, and `DNS.TTL`."""

    service: str
    datacenter: str
    instances: list[Instance]
    ttl: str = ""


class CatalogUnavailable(Exception):
    """The catalog could not be read (a client agent that cannot reach a server)."""


class Catalog(Protocol):
    """Where the resolver reads the datacenter's catalog (a server's store, or a server's
    HTTP API from a client agent). Names are matched case-insensitively by the caller's
    contract: `node("WEB1")` finds node `web1`."""

    async def node(self, name: str) -> NodeRecord | None: ...

    async def nodes(self) -> list[NodeRecord]: ...

    async def service(self, name: str) -> list[Instance]:
        """Every instance of the service, healthy or not."""
        ...

    async def connect(self, name: str) -> list[Instance]:
        """Every instance that accepts Connect traffic for the service (its sidecar proxies,
        its Connect-native instances, the terminating gateways linked to it)."""
        ...

    async def ingress(self, name: str) -> list[Instance]:
        """Instances of the ingress gateways whose config entry exposes the service."""
        ...

    async def instances_at(self, address: str) -> list[Instance]:
        """Instances whose own service address is `address` (for PTR)."""
        ...

    async def prepared_query(
        self, name: str, datacenter: str, source_ip: str
    ) -> QueryAnswer | None:
        """Execute the prepared query `name` (failover included) in `datacenter` ("" for
        ours) for a client at `source_ip`; None when there is no such query."""
        ...

    async def virtual_ip(self, name: str, peer: str) -> str:
        """The service's virtual IP ("" for none), of a service imported from `peer` when
        one is named."""
        ...


class MemoryCatalog:
    """An in-memory `Catalog` (tests, and the shape the adapters follow)."""

    def __init__(
        self,
        nodes: Iterable[NodeRecord] = (),
        instances: Iterable[Instance] = (),
        queries: dict[tuple[str, str], QueryAnswer] | None = None,
        vips: dict[str, str] | None = None,
    ):
        self._vips = vips or {}  # lower-cased service name -> its virtual IP
        self._nodes = list(nodes)
        self._instances = list(instances)
        self._queries = queries or {}  # (lower-cased name, datacenter) -> its answer
        self.asked: list[tuple[str, str, str]] = []  # prepared_query calls, in order

    async def node(self, name: str) -> NodeRecord | None:
        wanted = name.lower()
        return next((n for n in self._nodes if n.name.lower() == wanted), None)

    async def virtual_ip(self, name: str, peer: str) -> str:
        return "" if peer else self._vips.get(name.lower(), "")

    async def nodes(self) -> list[NodeRecord]:
        return list(self._nodes)

    async def service(self, name: str) -> list[Instance]:
        wanted = name.lower()
        return [i for i in self._instances if i.service.lower() == wanted]

    async def connect(self, name: str) -> list[Instance]:
        wanted = name.lower()
        return [i for i in self._instances if i.connect_for.lower() == wanted and i.connect_for]

    async def ingress(self, name: str) -> list[Instance]:
        wanted = name.lower()
        return [i for i in self._instances if wanted in (s.lower() for s in i.ingress_for)]

    async def instances_at(self, address: str) -> list[Instance]:
        return [i for i in self._instances if i.address and i.address == address]

    async def prepared_query(
        self, name: str, datacenter: str, source_ip: str
    ) -> QueryAnswer | None:
        self.asked.append((name, datacenter, source_ip))
        return self._queries.get((name.lower(), datacenter))


def node_from_struct(node: Any) -> NodeRecord:
    """From the store's `Node` struct."""
    return NodeRecord(
        name=node.Node,
        address=node.Address,
        datacenter=node.Datacenter,
        meta=dict(node.Meta or {}),
        tagged_addresses=dict(node.TaggedAddresses or {}),
    )


def instance_from_struct(node: Any, service: Any, checks: Iterable[Any]) -> Instance:
    """From the store's `Node`, `Service` and the instance's `HealthCheck`s."""
    return Instance(
        node=node_from_struct(node),
        service=service.Service,
        service_id=service.ID,
        address=service.Address,
        port=service.Port,
        tags=tuple(service.Tags or ()),
        weight_passing=service.Weights.Passing,
        weight_warning=service.Weights.Warning,
        statuses=tuple(c.Status for c in checks),
        connect_for=service.connect_name,
    )


def node_from_json(node: dict) -> NodeRecord:
    """From a `Node` object of the HTTP API."""
    return NodeRecord(
        name=node.get("Node", ""),
        address=node.get("Address", ""),
        datacenter=node.get("Datacenter", ""),
        meta=dict(node.get("Meta") or {}),
        tagged_addresses=dict(node.get("TaggedAddresses") or {}),
    )


def instance_from_json(entry: dict) -> Instance:
    """From one `/v1/health/service/<name>` entry (a CheckServiceNode)."""
    svc = entry.get("Service") or {}
    weights = svc.get("Weights") or {}
    return Instance(
        node=node_from_json(entry.get("Node") or {}),
        service=svc.get("Service", ""),
        service_id=svc.get("ID", ""),
        address=svc.get("Address", ""),
        port=int(svc.get("Port") or 0),
        tags=tuple(svc.get("Tags") or ()),
        weight_passing=int(weights.get("Passing", 1)),
        weight_warning=int(weights.get("Warning", 1)),
        statuses=tuple(c.get("Status", "") for c in entry.get("Checks") or ()),
    )


# --------------------------------------------------------------------------- health


def healthy(instances: Iterable[Instance], only_passing: bool) -> list[Instance]:
    """Drop instances with a critical check (and, under only_passing, any non-passing one)."""
    out = []
    for inst in instances:
        if any(s == "critical" or (only_passing and s != "passing") for s in inst.statuses):
            continue
        out.append(inst)
    return out


def srv_weight(inst: Instance) -> int:
    """SRV weight from the instance's aggregated health (criticals are filtered earlier)."""
    statuses = set(inst.statuses)
    if "critical" in statuses or "maintenance" in statuses:
        return 0
    if "warning" in statuses:
        return inst.weight_warning
    if statuses - {"passing"}:
        return 1  # a status Consul does not know
    return inst.weight_passing
