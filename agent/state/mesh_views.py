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

__all__ = [
    "INGRESS_GATEWAY",
    "TERMINATING_GATEWAY",
    "ConnectInstances",
    "connect_instances",
    "gateway_services",
    "ingress_gateways",
]

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


# ---------------------------------------------------------------------- gateway services
#
# Consul keeps a gateway-services table, filled from ingress- and terminating-gateway entries
# (a `*` expanded to every typical service registered); here it is computed from the entries
# and the catalog on each read, which is the same answer without a second table to keep.

INGRESS_GATEWAY = "ingress-gateway"


def _typical_names(store: Store) -> list[str]:
    names = {
        svc.Service
        for per_node in store.services.values()
        for svc in per_node.values()
        if svc.Kind == ""
    }
    return sorted(names)


def gateway_services(store: Store, gateway: str) -> list[dict]:
    """`/v1/catalog/gateway-services/<gateway>`: what the gateway's config entry links."""
    found: list[dict] = []
    ingress = store.mesh.entry(INGRESS_GATEWAY, gateway)
    if ingress is not None:
        for listener in ingress.get("Listeners") or ():
            for linked in listener.get("Services") or ():
                found.extend(_ingress_links(store, gateway, ingress, listener, linked))
    terminating = store.mesh.entry(TERMINATING_GATEWAY, gateway)
    if terminating is not None:
        for linked in terminating.get("Services") or ():
            name = str(linked.get("Name") or "")
            wildcard = name == "*"
            for service in _typical_names(store) if wildcard else [name]:
                item: dict = {
                    "Gateway": {"Name": gateway},
                    "Service": {"Name": service},
                    "GatewayKind": TERMINATING_GATEWAY,
                }
                for key in ("CAFile", "CertFile", "KeyFile", "SNI"):
                    if linked.get(key):
                        item[key] = linked[key]
                if wildcard:
                    item["FromWildcard"] = True
                item["ServiceKind"] = "service"
                item["CreateIndex"] = terminating.get("CreateIndex", 0)
                item["ModifyIndex"] = terminating.get("ModifyIndex", 0)
                found.append(item)
    return sorted(found, key=lambda g: (g["Service"]["Name"], g.get("Port", 0)))


def _ingress_links(
    store: Store, gateway: str, entry: dict, listener: dict, linked: dict
) -> list[dict]:
    name = str(linked.get("Name") or "")
    wildcard = name == "*"
    out = []
    for service in _typical_names(store) if wildcard else [name]:
        item: dict = {
            "Gateway": {"Name": gateway},
            "Service": {"Name": service},
            "GatewayKind": INGRESS_GATEWAY,
            "Port": listener.get("Port", 0),
            "Protocol": listener.get("Protocol") or "tcp",
        }
        if linked.get("Hosts"):
            item["Hosts"] = list(linked["Hosts"])
        if wildcard:
            item["FromWildcard"] = True
        item["CreateIndex"] = entry.get("CreateIndex", 0)
        item["ModifyIndex"] = entry.get("ModifyIndex", 0)
        out.append(item)
    return out


def ingress_gateways(store: Store, service: str) -> ConnectInstances:
    """`/v1/health/ingress/<svc>` and `<svc>.ingress.<domain>`: instances of the ingress
    gateways whose entry exposes the service (by name, or by a `*` listener service)."""
    wanted = service.lower()
    gateways = set()
    for entry in store.mesh.of_kind(INGRESS_GATEWAY):
        for listener in entry.get("Listeners") or ():
            for linked in listener.get("Services") or ():
                linked_name = str(linked.get("Name") or "")
                if linked_name.lower() == wanted or (
                    linked_name == "*" and _has_typical(store, wanted)
                ):
                    gateways.add(str(entry.get("Name") or ""))
    pairs = [
        (node, svc)
        for node in _nodes(store)
        for _, svc in sorted(store.services[node.Node].items())
        if svc.Kind == INGRESS_GATEWAY and svc.Service in gateways
    ]
    index = max(store.table_index(_ENTRIES_TABLE), store.table_index("services"), 1)
    topics = (("table", "services"), ("table", _ENTRIES_TABLE))
    return ConnectInstances(pairs, index, topics)
