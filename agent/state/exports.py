"""The services an `exported-services` config entry exports, resolved as Consul CE resolves
them for `/v1/exported-services`.

CE has one partition, so there is one entry (named `default`). Its `*` service stands for
every typical service registered (proxies and gateways are not exported by name); the
`consul` service is never exported; a service named twice is one service with the union of
its consumers. CE reports only peer consumers: a service exported to partitions alone is
listed with no consumers. The answer is sorted by service name, each one's peers sorted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.state.store import Store

__all__ = ["EXPORTED_SERVICES", "resolved_exported_services"]

EXPORTED_SERVICES = "exported-services"
_WILDCARD = "*"
_CONSUL = "consul"


def _typical_names(store: Store) -> set[str]:
    return {
        svc.Service
        for per_node in store.services.values()
        for svc in per_node.values()
        if svc.Kind == ""
    }


def resolved_exported_services(store: Store) -> tuple[int, list[dict]]:
    """(index, [api.ResolvedExportedService]) for the default partition."""
    entry = store.mesh.entry(EXPORTED_SERVICES, "default")
    entries_index = store.table_index("config-entries")
    if entry is None:
        return entries_index, []
    index = max(entries_index, int(entry.get("ModifyIndex") or 0))
    peers: dict[str, set[str]] = {}
    for exported in entry.get("Services") or ():
        name = str(exported.get("Name") or "")
        consumers = exported.get("Consumers") or ()
        if name == _WILDCARD:
            index = max(index, store.table_index("services"))
            names = _typical_names(store)
        else:
            names = {name}
        for service in names - {_CONSUL}:
            found = peers.setdefault(service, set())
            found.update(str(c["Peer"]) for c in consumers if c.get("Peer"))
    out = []
    for service in sorted(peers):
        consumers = {"Peers": sorted(peers[service])} if peers[service] else {}
        out.append({"Service": service, "Consumers": consumers})
    return index, out
