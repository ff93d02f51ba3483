"""Service registrations as the agent accepts them (`PUT /v1/agent/service/register`). Pure.

A registration becomes a `ServiceDefinition`: the AgentService JSON the agent reports, plus its
checks (validated by `agent.checks`). Validation follows Consul's order and messages.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

import msgspec

from agent.casing import normalize
from agent.checks import CheckDefinition, CheckError, parse_service_checks
from agent.limits import identifier_error, service_meta_error


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
    raw: dict[str, Any]  # the normalized registration, kept for persistence


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
    body: Any, datacenter: str, *, enable_script_checks: bool, remote: bool = True
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
    service: dict[str, Any] = {
        "ID": service_id,
        "Service": name,
        "Tags": list(tags),
        "Meta": validate_meta(raw.get("Meta"), raw.get("Kind") or ""),
        "Port": port,
        "Address": address,
        "Weights": {"Passing": passing, "Warning": weights.get("Warning", 1)},
        "EnableTagOverride": bool(raw.get("EnableTagOverride", False)),
        "Datacenter": datacenter,
    }
    if tagged:  # omitted when empty, as Consul's omitempty does
        service["TaggedAddresses"] = {
            k: {"Address": v.get("Address", ""), "Port": v.get("Port", 0)}
            for k, v in tagged.items()
        }
    kind = raw.get("Kind") or ""
    if kind:
        service["Kind"] = kind
    try:
        checks = parse_service_checks(
            body,
            service_id=service_id,
            service_name=name,
            enable_script_checks=enable_script_checks,
            remote=remote,
        )
    except CheckError as exc:
        raise ServiceError(str(exc), getattr(exc, "status", None) or 400) from None
    return ServiceDefinition(service_id, name, service, checks, raw)


def content_hash(service: dict[str, Any]) -> str:
    """A stable digest for `?hash=` blocking on /v1/agent/service/<id>."""
    return hashlib.sha256(msgspec.json.encode(service, order="sorted")).hexdigest()[:16]
