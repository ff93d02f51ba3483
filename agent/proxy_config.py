"""A registration's Connect settings: decoded into the store's records, judged by Consul's rules.

The `Proxy`, `Connect` and `Locality` of a service arrive three ways (the agent API, `service`
blocks of config files, `PUT /v1/catalog/register`), in any casing Consul reads: the tables of
`agent.definition_types` check their kinds, Go style, and give them Go's field names; the
records of `agent.state.structs` hold them from there on. `SidecarService` stays the folded
definition that was sent: the agent expands it into a registration of its own
(`agent.sidecars`), the catalog keeps it as given.

`service_errors` is Consul's `NodeService.Validate` (`catalog=True`, which adds the port rule of
a connect-proxy) and `ValidateForAgent`: every message, in Consul's order, for the caller to
join with `multierror` as go-multierror prints them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from agent import gojson
from agent.definition_types import CONNECT_PROXY_CONFIG, LOCALITY, SERVICE_CONNECT
from agent.state.structs import ConnectProxyConfig, Locality, ServiceConnect, Upstream

__all__ = [
    "GATEWAY_KINDS",
    "PROXY_KIND",
    "ConnectFields",
    "decode_connect_fields",
    "mode_errors",
    "multierror",
    "service_errors",
    "upstreams_with_default_type",
]

PROXY_KIND = "connect-proxy"
GATEWAY_KINDS = frozenset({"mesh-gateway", "terminating-gateway", "ingress-gateway", "api-gateway"})
_PORTLESS_GATEWAYS = frozenset({"ingress-gateway", "api-gateway"})
_WILDCARD = "*"
_UPSTREAM_TYPES = ("", "service", "prepared_query")
_EXPOSE_PROTOCOLS = ("http", "http2")
_MESH_GATEWAY_MODES = ("", "none", "local", "remote")
_PROXY_MODES = ("", "direct", "transparent")
# Under the 104-byte socket path limit of the BSDs and macOS, with a 32-byte file name.
_MAX_SOCKET_DIR = 70


@dataclass(frozen=True)
class ConnectFields:
    """A registration's Connect settings, decoded. `sidecar` is the nested SidecarService
    definition (Go field names, the rest as sent), None when there is none."""

    proxy: ConnectProxyConfig
    connect: ServiceConnect
    locality: Locality | None
    sidecar: dict[str, Any] | None


def decode_connect_fields(
    raw: Mapping[str, Any], *, struct: str | None = None, path: str = ""
) -> ConnectFields:
    """The Connect settings of a registration whose top-level keys have Go's names.

    `struct`/`path` place the registration inside a larger body for Go's messages (the
    catalog's `Service`). Raises `agent.gojson.Mismatch` on a value of the wrong kind."""

    def where(name: str) -> dict[str, Any]:
        return {"struct": struct or "ServiceDefinition", "path": f"{path}.{name}" if path else name}

    proxy_raw = gojson.conform(raw.get("Proxy"), CONNECT_PROXY_CONFIG, **where("Proxy"))
    locality_raw = gojson.conform(raw.get("Locality"), LOCALITY, **where("Locality"))
    connect_raw = raw.get("Connect")
    gojson.conform(connect_raw, SERVICE_CONNECT, **where("Connect"))
    # SidecarService keeps what no table knows: its checks are decoded later, strictly.
    folded = gojson.fold(connect_raw, SERVICE_CONNECT) if isinstance(connect_raw, dict) else {}
    sidecar = folded.get("SidecarService")
    peer_meta = folded.get("PeerMeta")
    connect = ServiceConnect(
        Native=bool(folded.get("Native")),
        SidecarService=sidecar if isinstance(sidecar, dict) else None,
        PeerMeta=peer_meta if isinstance(peer_meta, dict) else None,
    )
    return ConnectFields(
        proxy=msgspec.convert(proxy_raw or {}, ConnectProxyConfig),
        connect=connect,
        locality=msgspec.convert(locality_raw, Locality) if locality_raw is not None else None,
        sidecar=connect.SidecarService,
    )


def upstreams_with_default_type(proxy: ConnectProxyConfig) -> ConnectProxyConfig:
    """An agent registration's upstreams without a DestinationType are `service` ones."""
    if all(u.DestinationType for u in proxy.Upstreams):
        return proxy
    upstreams = [
        u if u.DestinationType else msgspec.structs.replace(u, DestinationType="service")
        for u in proxy.Upstreams
    ]
    return msgspec.structs.replace(proxy, Upstreams=upstreams)


# ---------------------------------------------------------------------- validation


def multierror(errors: list[str]) -> str:
    """The errors as hashicorp/go-multierror prints them."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def service_errors(
    kind: str,
    port: int,
    socket_path: str,
    fields: ConnectFields,
    *,
    catalog: bool,
) -> list[str]:
    """Consul's NodeService.Validate (`catalog`) or ValidateForAgent, as messages."""
    errors: list[str] = []
    if catalog and kind == PROXY_KIND and not port and not socket_path:
        errors.append(f"Port or SocketPath must be set for a {kind}")
    proxy, connect = fields.proxy, fields.connect
    if kind == PROXY_KIND:
        errors.extend(_proxy_errors(proxy, connect))
    if kind in GATEWAY_KINDS:
        errors.extend(_gateway_errors(kind, port, proxy, fields.sidecar))
    sidecar = fields.sidecar
    if sidecar is not None:
        if sidecar.get("ID"):
            errors.append("A SidecarService cannot specify an ID as this is managed by the agent")
        nested = sidecar.get("Connect")
        if isinstance(nested, dict) and nested.get("SidecarService") is not None:
            errors.append("A SidecarService cannot have a nested SidecarService")
    if connect.Native and not port and not socket_path:
        errors.append("Port or SocketPath must be set for a Connect native service.")
    return errors


def _proxy_errors(proxy: ConnectProxyConfig, connect: ServiceConnect) -> list[str]:
    errors: list[str] = []
    if not proxy.DestinationServiceName.strip():
        errors.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
    if proxy.DestinationServiceName == _WILDCARD:
        errors.append(
            "Proxy.DestinationServiceName must not be a wildcard for Connect proxy services"
        )
    if connect.Native:
        errors.append("A Proxy cannot also be Connect Native, only typical services")
    socket_dir = proxy.Config.get("envoy_hcp_metrics_bind_socket_dir")
    if isinstance(socket_dir, str) and len(socket_dir) > _MAX_SOCKET_DIR:
        errors.append(
            "Proxy.Config: envoy_hcp_metrics_bind_socket_dir length "
            f"{len(socket_dir)} exceeds max {_MAX_SOCKET_DIR}"
        )
    errors.extend(_upstream_errors(proxy))
    errors.extend(_expose_errors(proxy))
    return errors


def _upstream_errors(proxy: ConnectProxyConfig) -> list[str]:
    errors: list[str] = []
    keys: set[tuple[str, ...]] = set()
    binds: set[str] = set()
    for u in proxy.Upstreams:
        # Partitions are an Enterprise feature: every service is in "default".
        partition = u.DestinationPartition or "default"
        if not u.DestinationPeer and u.Datacenter and partition != "default":
            errors.append("upstreams cannot target another datacenter in non default partition")
            continue
        if u.DestinationPeer and partition != "default":
            errors.append("upstreams must target peers in the same partition as the service")
            continue
        why = _upstream_error(u)
        if why is not None:
            errors.append(why)
            continue
        key = (
            u.DestinationType,
            u.DestinationName,
            u.DestinationPartition,
            u.DestinationNamespace,
            u.DestinationPeer,
            u.Datacenter,
        )
        if key in keys:
            errors.append(
                "upstreams cannot contain duplicates of "
                "[type={}, name={}, partition={}, namespace={}, peer={}, datacenter={}]".format(
                    *(_go_quote(part) for part in key)
                )
            )
            continue
        keys.add(key)
        address = _bind_address(u)
        if address in binds and not u.CentrallyConfigured:
            errors.append(
                "upstreams cannot contain duplicates by local bind address and port or unix "
                f"path; {_go_quote(address)} is specified twice"
            )
            continue
        binds.add(address)
    return errors


def _upstream_error(u: Upstream) -> str | None:
    """Consul's Upstream.Validate."""
    if u.DestinationType not in _UPSTREAM_TYPES:
        return f"unknown upstream destination type: {_go_quote(u.DestinationType)}"
    if not u.DestinationName:
        return "upstream destination name cannot be empty"
    if u.DestinationName == _WILDCARD and not u.CentrallyConfigured:
        return "upstream destination name cannot be a wildcard"
    if u.DestinationPeer and u.Datacenter:
        return "upstream cannot specify both destination peer and datacenter"
    if not u.CentrallyConfigured:
        if not u.LocalBindPort and not u.LocalBindSocketPath:
            return "upstream local bind port or local socket path must be defined and nonzero"
        if u.LocalBindPort and u.LocalBindSocketPath:
            return (
                "only one of upstream local bind port or local socket path can be defined "
                "and nonzero"
            )
    return None


def _bind_address(u: Upstream) -> str:
    """Consul's UpstreamAddressToString: the socket path, or host:port (127.0.0.1 default)."""
    if not u.LocalBindPort and not u.LocalBindAddress and u.LocalBindSocketPath:
        return u.LocalBindSocketPath
    host = u.LocalBindAddress or "127.0.0.1"
    return f"[{host}]:{u.LocalBindPort}" if ":" in host else f"{host}:{u.LocalBindPort}"


def _expose_errors(proxy: ConnectProxyConfig) -> list[str]:
    errors: list[str] = []
    listeners: set[int] = set()
    for path in proxy.Expose.Paths:
        if not path.Path:
            errors.append("expose.paths: empty path exposed")
        if path.ListenerPort in listeners:
            errors.append("expose.paths: duplicate listener ports exposed")
        listeners.add(path.ListenerPort)
        if path.ListenerPort <= 0 or path.ListenerPort > 65535:
            errors.append(f"expose.paths: invalid listener port: {path.ListenerPort}")
        protocol = path.Protocol.lower()
        if protocol and protocol not in _EXPOSE_PROTOCOLS:
            # Consul prints the allowed set from a Go map, in no fixed order.
            errors.append(
                f"protocol '{protocol}' not supported for path: {path.Path}, "
                f"must be in: [{' '.join(_EXPOSE_PROTOCOLS)}]"
            )
    return errors


def _gateway_errors(
    kind: str, port: int, proxy: ConnectProxyConfig, sidecar: dict[str, Any] | None
) -> list[str]:
    errors: list[str] = []
    if not port and kind not in _PORTLESS_GATEWAYS:
        errors.append(f"Port must be non-zero for a {kind}")
    if sidecar is not None:
        errors.append(f"A {kind} cannot have a sidecar service defined")
    for field in (
        "DestinationServiceName",
        "DestinationServiceID",
        "LocalServiceAddress",
        "LocalServicePort",
        "LocalServiceSocketPath",
        "Upstreams",
    ):
        if getattr(proxy, field):
            errors.append(f"The Proxy.{field} configuration is invalid for a {kind}")
    return errors


def mode_errors(proxy: ConnectProxyConfig) -> list[str]:
    """The modes a config file's definition may name (Consul's config builder checks them;
    the HTTP API keeps any string)."""
    errors: list[str] = []
    modes = [proxy.MeshGateway.Mode] + [u.MeshGateway.Mode for u in proxy.Upstreams]
    for mode in modes:
        if mode not in _MESH_GATEWAY_MODES:
            errors.append(f"Invalid Mesh Gateway Mode: {_go_quote(mode)}")
    if proxy.Mode not in _PROXY_MODES:
        errors.append(f"Invalid Proxy Mode: {_go_quote(proxy.Mode)}")
    return errors


def _go_quote(text: str) -> str:
    """Go's %q for the plain strings these messages carry (JSON's escaping, near enough)."""
    return msgspec.json.encode(text).decode()
