"""Catalog records as Consul's HTTP API renders them (the Go `structs` JSON shapes).

Pure functions from store records to plain dicts; every catalog, health and UI endpoint uses
them, so a field is named, ordered and defaulted in exactly one place. Notable Go-isms kept on
purpose: `Port` and `TaggedAddresses` of a NodeService are omitted when empty (`omitempty`),
a ServiceNode's `ServiceTaggedAddresses` likewise, while empty maps and lists elsewhere are
rendered as `{}` / `[]`. Proxy and Connect are not stored by this agent (no service mesh), so
they render as the zero values Consul prints for a plain service.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.state.structs import HealthCheck, Node, Service

# Consul's zero ConnectProxyConfig / ServiceConnect, as printed for a plain service.
_PROXY = {"Mode": "", "MeshGateway": {}, "Expose": {}}
_CONNECT: dict = {}


def node(n: Node) -> dict:
    return {
        "ID": n.ID,
        "Node": n.Node,
        "Address": n.Address,
        "Datacenter": n.Datacenter,
        "TaggedAddresses": n.TaggedAddresses,
        "Meta": n.Meta,
        "CreateIndex": n.CreateIndex,
        "ModifyIndex": n.ModifyIndex,
    }


def _weights(s: Service) -> dict:
    return {"Passing": s.Weights.Passing, "Warning": s.Weights.Warning}


def node_service(s: Service) -> dict:
    """A NodeService (`/catalog/node`, `/health/service` `Service`, UI node info)."""
    out: dict = {}
    if s.Kind:
        out["Kind"] = s.Kind
    out["ID"] = s.ID
    out["Service"] = s.Service
    out["Tags"] = s.Tags
    out["Address"] = s.Address
    if s.TaggedAddresses:
        out["TaggedAddresses"] = s.TaggedAddresses
    out["Meta"] = s.Meta
    if s.Port:
        out["Port"] = s.Port
    out["Weights"] = _weights(s)
    out["EnableTagOverride"] = s.EnableTagOverride
    out["Proxy"] = _PROXY
    out["Connect"] = _CONNECT
    out["PeerName"] = ""
    out["CreateIndex"] = s.CreateIndex
    out["ModifyIndex"] = s.ModifyIndex
    return out


def service_node(n: Node, s: Service) -> dict:
    """A ServiceNode (`/catalog/service/<name>`): node fields flattened beside the service."""
    out = {
        "ID": n.ID,
        "Node": n.Node,
        "Address": n.Address,
        "Datacenter": n.Datacenter,
        "TaggedAddresses": n.TaggedAddresses,
        "NodeMeta": n.Meta,
        "ServiceKind": s.Kind,
        "ServiceID": s.ID,
        "ServiceName": s.Service,
        "ServiceTags": s.Tags,
        "ServiceAddress": s.Address,
    }
    if s.TaggedAddresses:
        out["ServiceTaggedAddresses"] = s.TaggedAddresses
    out["ServiceWeights"] = _weights(s)
    out["ServiceMeta"] = s.Meta
    out["ServicePort"] = s.Port
    out["ServiceSocketPath"] = ""
    out["ServiceEnableTagOverride"] = s.EnableTagOverride
    out["ServiceProxy"] = _PROXY
    out["ServiceConnect"] = _CONNECT
    out["ServiceLocality"] = None
    out["CreateIndex"] = s.CreateIndex
    out["ModifyIndex"] = s.ModifyIndex
    return out


def check(c: HealthCheck) -> dict:
    return {
        "Node": c.Node,
        "CheckID": c.CheckID,
        "Name": c.Name,
        "Status": c.Status,
        "Notes": c.Notes,
        "Output": c.Output,
        "ServiceID": c.ServiceID,
        "ServiceName": c.ServiceName,
        "ServiceTags": c.ServiceTags,
        "Type": c.Type,
        "Interval": c.Interval,
        "Timeout": c.Timeout,
        "ExposedPort": c.ExposedPort,
        "Definition": c.Definition,
        "CreateIndex": c.CreateIndex,
        "ModifyIndex": c.ModifyIndex,
    }


def instance_checks(checks: Iterable[HealthCheck], service_id: str) -> list[HealthCheck]:
    """The checks that decide one instance's health: node-level ones first, then its own."""
    node_level, own = [], []
    for c in checks:
        if not c.ServiceID:
            node_level.append(c)
        elif c.ServiceID == service_id:
            own.append(c)
    return node_level + own


def check_service_node(n: Node, s: Service, checks: Iterable[HealthCheck]) -> dict:
    """A CheckServiceNode (`/health/service/<name>`)."""
    return {"Node": node(n), "Service": node_service(s), "Checks": [check(c) for c in checks]}


def node_info(n: Node, services: Iterable[Service], checks: Iterable[HealthCheck]) -> dict:
    """A NodeInfo (`/internal/ui/nodes`, `/internal/ui/node/<n>`)."""
    return {
        "ID": n.ID,
        "Node": n.Node,
        "Address": n.Address,
        "TaggedAddresses": n.TaggedAddresses,
        "Meta": n.Meta,
        "Services": [node_service(s) for s in services],
        "Checks": [check(c) for c in checks],
    }
