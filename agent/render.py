"""Catalog records as Consul's HTTP API renders them (the Go `structs` JSON shapes).

Pure functions from store records to plain dicts; every catalog, health and UI endpoint uses
them, so a field is named, ordered and defaulted in exactly one place. Notable Go-isms kept on
purpose: `Port` and `TaggedAddresses` of a NodeService are omitted when empty (`omitempty`),
a ServiceNode's `ServiceTaggedAddresses` likewise, while empty maps and lists elsewhere are
rendered as `{}` / `[]`.

A service's Connect settings render twice over, as Consul's two structs print them: the
catalog's ConnectProxyConfig (`proxy`: `Mode`, `MeshGateway` and `Expose` always there, the
transparent-proxy and access-log blocks first and only when set, since its MarshalJSON puts
them there), and the agent API's AgentServiceConnectProxyConfig (`agent_proxy`: `Mode` omitted
when empty, upstreams without an empty type or datacenter, no Envoy extensions).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from agent.state.structs import (
    ConnectProxyConfig,
    EnvoyExtension,
    HealthCheck,
    Locality,
    Node,
    Service,
    ServiceConnect,
    Upstream,
)


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


def _set(out: dict, key: str, value: Any) -> None:
    if value:  # Go's omitempty
        out[key] = value


def _struct(value: msgspec.Struct) -> dict:
    # The nested records are omit_defaults: their builtins are Go's omitempty rendering.
    return msgspec.to_builtins(value)


def _upstream(u: Upstream, *, agent: bool) -> dict:
    out: dict = {}
    if u.DestinationType or not agent:
        out["DestinationType"] = u.DestinationType
    if agent:
        _set(out, "DestinationPartition", u.DestinationPartition)
        _set(out, "DestinationNamespace", u.DestinationNamespace)
    else:
        _set(out, "DestinationNamespace", u.DestinationNamespace)
        _set(out, "DestinationPartition", u.DestinationPartition)
    _set(out, "DestinationPeer", u.DestinationPeer)
    out["DestinationName"] = u.DestinationName
    if u.Datacenter or not agent:
        out["Datacenter"] = u.Datacenter
    _set(out, "LocalBindAddress", u.LocalBindAddress)
    _set(out, "LocalBindPort", u.LocalBindPort)
    _set(out, "LocalBindSocketPath", u.LocalBindSocketPath)
    _set(out, "LocalBindSocketMode", u.LocalBindSocketMode)
    _set(out, "Config", u.Config)
    out["MeshGateway"] = _struct(u.MeshGateway)
    if not agent:  # the API's upstreams never carry it
        _set(out, "CentrallyConfigured", u.CentrallyConfigured)
    return out


def _envoy_extension(e: EnvoyExtension) -> dict:
    return {
        "Name": e.Name,
        "Required": e.Required,
        "Arguments": e.Arguments,
        "ConsulVersion": e.ConsulVersion,
        "EnvoyVersion": e.EnvoyVersion,
    }


def _proxy_target(p: ConnectProxyConfig, out: dict) -> None:
    _set(out, "DestinationServiceName", p.DestinationServiceName)
    _set(out, "DestinationServiceID", p.DestinationServiceID)
    _set(out, "LocalServiceAddress", p.LocalServiceAddress)
    _set(out, "LocalServicePort", p.LocalServicePort)
    _set(out, "LocalServiceSocketPath", p.LocalServiceSocketPath)


def proxy(p: ConnectProxyConfig) -> dict:
    """A ConnectProxyConfig as the catalog prints it (NodeService.Proxy, ServiceProxy)."""
    out: dict = {}
    _set(out, "TransparentProxy", _struct(p.TransparentProxy))
    _set(out, "AccessLogs", _struct(p.AccessLogs))
    _set(out, "EnvoyExtensions", [_envoy_extension(e) for e in p.EnvoyExtensions])
    _proxy_target(p, out)
    out["Mode"] = p.Mode
    _set(out, "Config", p.Config)
    _set(out, "Upstreams", [_upstream(u, agent=False) for u in p.Upstreams])
    out["MeshGateway"] = _struct(p.MeshGateway)
    out["Expose"] = _struct(p.Expose)
    return out


def agent_proxy(p: ConnectProxyConfig) -> dict:
    """A ConnectProxyConfig as `/v1/agent/services` prints it (api.AgentService.Proxy)."""
    out: dict = {}
    _proxy_target(p, out)
    _set(out, "Mode", p.Mode)
    _set(out, "TransparentProxy", _struct(p.TransparentProxy))
    _set(out, "Config", p.Config)
    _set(out, "Upstreams", [_upstream(u, agent=True) for u in p.Upstreams])
    out["MeshGateway"] = _struct(p.MeshGateway)
    out["Expose"] = _struct(p.Expose)
    _set(out, "AccessLogs", _struct(p.AccessLogs))
    return out


def connect(c: ServiceConnect) -> dict:
    return _struct(c)


def locality(loc: Locality | None) -> dict | None:
    return None if loc is None else _struct(loc)


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
    _set(out, "Port", s.Port)
    _set(out, "SocketPath", s.SocketPath)
    out["Weights"] = _weights(s)
    out["EnableTagOverride"] = s.EnableTagOverride
    if s.Locality is not None:
        out["Locality"] = locality(s.Locality)
    out["Proxy"] = proxy(s.Proxy)
    out["Connect"] = connect(s.Connect)
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
    out["ServiceSocketPath"] = s.SocketPath
    out["ServiceEnableTagOverride"] = s.EnableTagOverride
    out["ServiceProxy"] = proxy(s.Proxy)
    out["ServiceConnect"] = connect(s.Connect)
    out["ServiceLocality"] = locality(s.Locality)
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
