"""The catalog's usage counts, as Consul's `/v1/operator/usage` reports them per datacenter.

Consul keeps running counters in a `usage` table, updated on every catalog change; the counts
are the same as counting the catalog now, which is what this does (one pass over the
services, cheap next to the HTTP round trip for the sizes an agent of ours holds):

- `Services`: distinct service names; `ServiceInstances`: every registered instance.
- `ConnectServiceInstances`: instances per non-typical kind, plus `connect-native` for the
  instances that speak Connect themselves (always every key, zeros included, as CE answers).
- `BillableServiceInstances`: typical instances (Connect-native ones among them), the
  `consul` service excluded.
- `Nodes`: registered nodes.

The index is the services table's, as Consul's (the usage entry of the services table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.state.store import Store

__all__ = ["CONNECT_KINDS", "service_usage"]

CONSUL_SERVICE = "consul"
CONNECT_NATIVE = "connect-native"
# The kinds CE reports, in its own order (allConnectKind in Consul's state/usage.go).
CONNECT_KINDS = (
    "connect-proxy",
    "ingress-gateway",
    "mesh-gateway",
    "terminating-gateway",
    "api-gateway",
    CONNECT_NATIVE,
)


def service_usage(store: Store) -> tuple[int, dict]:
    """(index, ServiceUsage) of this datacenter's catalog."""
    names: set[str] = set()
    instances = 0
    billable = 0
    by_kind = dict.fromkeys(CONNECT_KINDS, 0)
    for per_node in store.services.values():
        for svc in per_node.values():
            instances += 1
            names.add(svc.Service)
            if svc.Kind:
                if svc.Kind in by_kind:
                    by_kind[svc.Kind] += 1
            elif svc.Service != CONSUL_SERVICE:
                billable += 1
            if svc.Connect.Native:
                by_kind[CONNECT_NATIVE] += 1
    usage = {
        "Services": len(names),
        "ServiceInstances": instances,
        "ConnectServiceInstances": by_kind,
        "BillableServiceInstances": billable,
        "Nodes": len(store.nodes),
    }
    return store.table_index("services"), usage
