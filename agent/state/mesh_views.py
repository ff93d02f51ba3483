"""The service mesh's views of the catalog: which instances accept Connect traffic for a service.

Consul answers `/v1/catalog/connect/<svc>`, `/v1/health/connect/<svc>` and
`<svc>.connect.<domain>` from its connect index: the connect-proxies whose
`Proxy.DestinationServiceName` is the service and the Connect-native instances named after it
(`Service.connect_name`), names matched without regard to case, then the terminating gateways
that a `terminating-gateway` config entry links to the service (by name, or by `*` for every
typical service registered).

The index of such an answer follows Consul's rule (the highest index of every service name in
it) raised to the services table's, so that it never goes back when an instance leaves the
answer (Consul falls back to the service's own index, which may); a blocking reader wakes on
those names, on any change to the services table (a new proxy may join) and on config entries.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.state.structs import Node, Service

if TYPE_CHECKING:
    from agent.state.store import Store

__all__ = ["TERMINATING_GATEWAY", "ConnectInstances", "connect_instances"]

TERMINATING_GATEWAY = "terminating-gateway"
_ENTRIES_TABLE = "config-entries"


@dataclass(frozen=True)
class ConnectInstances:
    pairs: list[tuple[Node, Service]]
    index: int
    topics: tuple[Hashable, ...]


def connect_instances(store: Store, name: str) -> ConnectInstances:
    wanted = name.lower()
    proxies: list[tuple[Node, Service]] = []
    for node in _nodes(store):
        for _, svc in sorted(store.services[node.Node].items()):
            target = svc.connect_name
            if target and target.lower() == wanted:
                proxies.append((node, svc))
    pairs = proxies + _terminating_gateways(store, wanted)
    names = {svc.Service for _, svc in pairs} | {name}
    index = max(
        store.table_index("services"),
        store.indexes.get(_ENTRIES_TABLE, 0),
        *(store.service_name_index(n) for n in names),
    )
    topics: list[Hashable] = [("table", "services"), ("table", _ENTRIES_TABLE)]
    topics.extend(("service", n) for n in sorted(names))
    return ConnectInstances(pairs, index, tuple(topics))


def _nodes(store: Store) -> list[Node]:
    nodes = store.nodes
    return [nodes[n] for n in sorted(store.services, key=lambda n: (n.lower(), n)) if n in nodes]


def _terminating_gateways(store: Store, wanted: str) -> list[tuple[Node, Service]]:
    """Instances of the terminating gateways linked to the service `wanted` (lower-cased)."""
    gateways: set[str] = set()
    typical: bool | None = None
    for entry in store.mesh.of_kind(TERMINATING_GATEWAY):
        for linked in entry.get("Services") or ():
            linked_name = str(linked.get("Name") or "")
            if linked_name == "*":
                if typical is None:
                    typical = _has_typical(store, wanted)
                hit = typical
            else:
                hit = linked_name.lower() == wanted
            if hit:
                gateways.add(str(entry.get("Name") or ""))
                break
    if not gateways:
        return []
    return [
        (node, svc)
        for node in _nodes(store)
        for sid, svc in sorted(store.services[node.Node].items())
        if svc.Kind == TERMINATING_GATEWAY and svc.Service in gateways
    ]


def _has_typical(store: Store, wanted: str) -> bool:
    """A wildcard links the services registered as typical ones, as Consul's does."""
    return any(
        svc.Kind == "" and svc.Service.lower() == wanted
        for per_node in store.services.values()
        for svc in per_node.values()
    )
