"""`Connect.SidecarService`: registration sugar the agent expands into a service of its own.

A service registered with `"Connect": {"SidecarService": {...}}` brings a second registration,
`<id>-sidecar-proxy`, built the way Consul's agent builds it (`sidecar_registration`): a
`connect-proxy` for the service, named `<name>-sidecar-proxy`, on the service's address,
forwarding to the service's port on 127.0.0.1 (or its unix socket), with the service's tags,
meta and locality unless the sidecar names its own. What is left to the agent, since it
depends on what else is registered here, is the port (`allocate_port`: the lowest free one in
`ports.sidecar_min_port`..`sidecar_max_port`, the same one again on re-registration) and,
when the sidecar names no checks, the two Consul gives it (`default_checks`): a TCP check of
the proxy's listener and an alias of the service's own health.

Pure: the agent's local state (`agent.local`) calls these and keeps the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.limits import service_meta_error
from agent.services import ServiceDefinition, ServiceError

__all__ = [
    "SIDECAR_SUFFIX",
    "allocate_port",
    "default_checks",
    "parent_id",
    "sidecar_id",
    "sidecar_registration",
]

SIDECAR_SUFFIX = "-sidecar-proxy"


def sidecar_id(service_id: str) -> str:
    return service_id + SIDECAR_SUFFIX


def parent_id(sidecar: str) -> str:
    return sidecar.removesuffix(SIDECAR_SUFFIX)


def sidecar_registration(parent: ServiceDefinition) -> dict[str, Any]:
    """The sidecar's registration (Go field names), defaults filled from `parent`; its port
    and checks may still be missing. Raises ServiceError for a Meta Consul refuses."""
    nested = dict(parent.sidecar or {})
    svc = parent.service
    body: dict[str, Any] = {**nested, "ID": sidecar_id(parent.id)}
    meta = nested.get("Meta")
    if meta:
        why = service_meta_error(nested.get("Kind") or "", meta)
        if why is not None:
            raise ServiceError(f"Invalid SidecarService: {why}")
    elif svc.get("Meta"):
        body["Meta"] = dict(svc["Meta"])
    if not nested.get("Tags") and svc.get("Tags"):
        body["Tags"] = list(svc["Tags"])
    if nested.get("Locality") is None and parent.record.get("Locality") is not None:
        body["Locality"] = dict(parent.record["Locality"])
    body["Kind"] = nested.get("Kind") or "connect-proxy"
    body["Name"] = nested.get("Name") or parent.name + SIDECAR_SUFFIX
    body["Address"] = nested.get("Address") or svc.get("Address") or ""
    body["Proxy"] = _proxy_defaults(nested.get("Proxy"), parent)
    return body


def _proxy_defaults(raw: Any, parent: ServiceDefinition) -> Any:
    if raw is not None and not isinstance(raw, dict):
        return raw  # refused, in Go's words, when the registration is parsed
    proxy = dict(raw or {})
    proxy["DestinationServiceName"] = proxy.get("DestinationServiceName") or parent.name
    proxy["DestinationServiceID"] = proxy.get("DestinationServiceID") or parent.id
    port = proxy.get("LocalServicePort")
    port_unset = not isinstance(port, int) or port < 1
    if not proxy.get("LocalServiceSocketPath") and (
        not proxy.get("LocalServiceAddress") or port_unset
    ):
        socket_path = parent.record.get("SocketPath") or ""
        if socket_path:
            proxy["LocalServiceSocketPath"] = socket_path
        else:
            proxy["LocalServiceAddress"] = proxy.get("LocalServiceAddress") or "127.0.0.1"
            if port_unset:
                proxy["LocalServicePort"] = parent.service.get("Port") or 0
    return proxy


def allocate_port(sidecar: str, ports: Iterable[tuple[str, int]], low: int, high: int) -> int:
    """The port for a sidecar registered without one: the one it already has, if in range,
    else the lowest in [low, high] no local service uses. `ports` are (service ID, port) of
    every local service. Raises ServiceError (a 500, as Consul answers) when none is left."""
    used: set[int] = set()
    if low > 0 and high >= low:
        for service, port in ports:
            if low <= port <= high:
                if service == sidecar:
                    return port
                used.add(port)
        for port in range(low, high + 1):
            if port not in used:
                return port
    if low < 1 or high < 1:
        raise ServiceError(
            "no port provided for sidecar_service and auto-assignment disabled in config", 500
        )
    raise ServiceError(
        "no port provided for sidecar_service and none left in the configured range "
        f"[{low}, {high}]",
        500,
    )


def default_checks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The two checks of a sidecar registered without any: its listener (on its own address,
    else the service's local address) and an alias of the service it fronts."""
    proxy = body.get("Proxy") or {}
    host = body.get("Address") or proxy.get("LocalServiceAddress") or ""
    port = body.get("Port") or 0
    service = parent_id(str(body["ID"]))
    return [
        {
            "Name": "Connect Sidecar Listening",
            "TCP": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "Interval": "10s",
        },
        {"Name": f"Connect Sidecar Aliasing {service}", "AliasService": service},
    ]
