"""Service registrations as the agent accepts them (`PUT /v1/agent/service/register`). Pure.

A registration becomes a `ServiceDefinition`: the AgentService JSON the agent reports, the
NodeService fields anti-entropy writes to the catalog (they differ: the agent shows a proxy's
settings only for proxies and gateways, the catalog keeps them for every service), and its
checks (validated by `agent.checks`). Validation follows Consul's order and messages, the
Connect rules of `agent.proxy_config` included. A `Connect.SidecarService` is checked here
(its checks too) and handed on as `sidecar`: `agent.sidecars` makes it a registration of its
own, and the service itself is kept without it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from agent import render
from agent.casing import normalize
from agent.check_decode import InvalidCheck
from agent.checks import CheckDefinition, CheckError, parse_service_checks
from agent.gojson import Mismatch
from agent.limits import identifier_error, service_meta_error
from agent.proxy_config import (
    GATEWAY_KINDS,
    PROXY_KIND,
    ConnectFields,
    decode_connect_fields,
    mode_errors,
    multierror,
    service_errors,
    upstreams_with_default_type,
)

# How much of Consul's NodeService validation a registration meets: all of it (an API or
# config registration), the agent's part (a sidecar, whose port the agent assigns after), none
# (a sidecar once expanded and checked).
VALIDATE_FULL = "full"
VALIDATE_AGENT = "agent"
VALIDATE_NONE = "none"


class ServiceError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    name: str
    service: dict[str, Any]  # AgentService JSON (no indexes, no ContentHash)
    checks: tuple[CheckDefinition, ...]
    raw: dict[str, Any]  # the normalized registration (no SidecarService), kept for persistence
    record: dict[str, Any]  # the NodeService fields of the catalog's ServiceRecord
    sidecar: dict[str, Any] | None = None  # Connect.SidecarService, Go field names
    # Registered as the sidecar of `<id minus -sidecar-proxy>`: it goes when that service goes
    # (Consul's LocallyRegisteredAsSidecar).
    is_sidecar: bool = False


def validate_meta(meta: Any, kind: str = "") -> dict[str, str]:
    """The registration's Meta, within Consul's rules (agent/limits.py)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ServiceError("Request decode failed: Meta must be a map of strings")
    why = service_meta_error(kind, meta)
    if why is not None:
        raise ServiceError(f"Invalid Service Meta: {why}")
    return dict(meta)


def _check_address(address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return  # hostnames are allowed
    if ip.is_unspecified:
        raise ServiceError("Invalid service address")


def parse_service(
    body: Any,
    datacenter: str,
    *,
    enable_script_checks: bool,
    remote: bool = True,
    validation: str = VALIDATE_FULL,
) -> ServiceDefinition:
    if not isinstance(body, dict):
        raise ServiceError("Request decode failed: body must be a JSON object")
    raw = normalize(body)
    name = raw.get("Name") or raw.get("Service")
    if isinstance(name, dict):  # catalog-style {"Service": {...}} is not an agent registration
        name = None
    if not name or not isinstance(name, str):
        raise ServiceError("Missing service name")
    service_id = raw.get("ID") or name
    too_long = identifier_error("Service ID", service_id) or identifier_error("Service name", name)
    if too_long is not None:
        raise ServiceError(too_long)
    address = raw.get("Address") or ""
    if address:
        _check_address(address)
    port = raw.get("Port") or 0
    if not isinstance(port, int) or port < 0 or port > 65535:
        raise ServiceError("Request decode failed: invalid Port")
    weights = raw.get("Weights") or {"Passing": 1, "Warning": 1}
    if not isinstance(weights, dict):
        raise ServiceError("Request decode failed: invalid Weights")
    passing = weights.get("Passing", 1)
    if not isinstance(passing, int) or passing < 1:
        raise ServiceError("Passing must be greater than 0")
    tags = raw.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ServiceError("Request decode failed: Tags must be a list of strings")
    tagged = raw.get("TaggedAddresses") or {}
    for key, value in tagged.items():
        if not isinstance(value, dict):
            raise ServiceError(f"Request decode failed: TaggedAddresses.{key} must be an object")
        if value.get("Address"):
            _check_address(value["Address"])
    kind = raw.get("Kind") or ""
    meta = validate_meta(raw.get("Meta"), kind)
    socket_path = raw.get("SocketPath") or ""
    fields = _connect_fields(raw, kind, port, socket_path, remote=remote, validation=validation)
    tagged_addresses = {
        k: {"Address": v.get("Address", ""), "Port": v.get("Port", 0)} for k, v in tagged.items()
    }
    weights = {"Passing": passing, "Warning": weights.get("Warning", 1)}
    common = {"ID": service_id, "Service": name, "Tags": list(tags)}
    service = _agent_service(common, kind, meta, port, address, socket_path, fields)
    service["Weights"] = weights
    service["EnableTagOverride"] = bool(raw.get("EnableTagOverride", False))
    if tagged_addresses:  # omitted when empty, as Consul's omitempty does
        service["TaggedAddresses"] = tagged_addresses
    _agent_connect(service, kind, fields)
    service["Datacenter"] = datacenter
    if fields.locality is not None:
        service["Locality"] = render.locality(fields.locality)
    record = common | {
        "Kind": kind,
        "Address": address,
        "TaggedAddresses": tagged_addresses,
        "Meta": meta,
        "Port": port,
        "SocketPath": socket_path,
        "Weights": weights,
        "EnableTagOverride": service["EnableTagOverride"],
        "Locality": render.locality(fields.locality),
        "Proxy": msgspec.to_builtins(fields.proxy),
        # the sugar is expanded by the agent, never kept (Consul strips it before storing)
        "Connect": msgspec.to_builtins(
            msgspec.structs.replace(fields.connect, SidecarService=None)
        ),
    }
    checks = _checks(body, service_id, name, enable_script_checks, remote)
    if fields.sidecar is not None:
        _check_sidecar_checks(fields.sidecar, service_id, name, enable_script_checks, remote)
        raw = _without_sidecar(raw)
    return ServiceDefinition(service_id, name, service, checks, raw, record, fields.sidecar)


def _connect_fields(
    raw: dict[str, Any], kind: str, port: int, socket_path: str, *, remote: bool, validation: str
) -> ConnectFields:
    try:
        fields = decode_connect_fields(raw)
    except Mismatch as exc:
        raise ServiceError(f"Request decode failed: {exc}") from None
    fields = replace(fields, proxy=upstreams_with_default_type(fields.proxy))
    if not remote and (why := mode_errors(fields.proxy)):
        raise ServiceError(why[0])
    if validation == VALIDATE_NONE:
        return fields
    errors = service_errors(kind, port, socket_path, fields, catalog=validation == VALIDATE_FULL)
    if errors:
        prefix = "Validation failed: " if validation == VALIDATE_FULL else "Failed Validation: "
        raise ServiceError(prefix + multierror(errors))
    return fields


def _agent_service(
    common: dict[str, Any],
    kind: str,
    meta: dict[str, str],
    port: int,
    address: str,
    socket_path: str,
    fields: ConnectFields,
) -> dict[str, Any]:
    """The head of the AgentService JSON, in api.AgentService's field order."""
    service: dict[str, Any] = {"Kind": kind} if kind else {}
    service |= common
    service |= {"Meta": meta, "Port": port, "Address": address}
    if socket_path:
        service["SocketPath"] = socket_path
    return service


def _agent_connect(service: dict[str, Any], kind: str, fields: ConnectFields) -> None:
    """The API shows a proxy's settings only for proxies and gateways, Connect only when
    the service is Connect-native."""
    if kind == PROXY_KIND or kind in GATEWAY_KINDS:
        service["Proxy"] = render.agent_proxy(fields.proxy)
    if fields.connect.Native:
        service["Connect"] = {"Native": True}


def _checks(
    body: Any, service_id: str, name: str, scripts: bool, remote: bool
) -> tuple[CheckDefinition, ...]:
    try:
        return parse_service_checks(
            body,
            service_id=service_id,
            service_name=name,
            enable_script_checks=scripts,
            remote=remote,
        )
    except CheckError as exc:
        raise ServiceError(str(exc), getattr(exc, "status", None) or 400) from None


def _check_sidecar_checks(
    sidecar: dict[str, Any], service_id: str, name: str, scripts: bool, remote: bool
) -> None:
    """A sidecar's own checks are judged with the service's registration, as Consul does."""
    try:
        parse_service_checks(
            sidecar,
            service_id=service_id,
            service_name=name,
            enable_script_checks=scripts,
            remote=remote,
        )
    except InvalidCheck as exc:
        raise ServiceError(f"Invalid check in sidecar_service: {exc.reason}") from None
    except CheckError as exc:
        raise ServiceError(str(exc), getattr(exc, "status", None) or 400) from None


def _without_sidecar(raw: dict[str, Any]) -> dict[str, Any]:
    connect = {k: v for k, v in (raw.get("Connect") or {}).items() if k != "SidecarService"}
    return {**raw, "Connect": connect}


def content_hash(service: dict[str, Any]) -> str:
    """A stable digest for `?hash=` blocking on /v1/agent/service/<id>."""
    return hashlib.sha256(msgspec.json.encode(service, order="sorted")).hexdigest()[:16]
