"""Request bodies as Consul decodes them: JSON keys matched case-insensitively.

Consul decodes bodies into Go structs, where `encoding/json` matches field names without regard
to case and also accepts snake_case aliases for many fields. Maps of user data (`Meta`,
`NodeMeta`, `Header`, ...) keep their keys as sent.
"""

from __future__ import annotations

from typing import Any

CANONICAL = [
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "Meta",
    "Service",
    "Services",
    "Check",
    "Checks",
    "SkipNodeUpdate",
    "Tags",
    "Port",
    "Weights",
    "Passing",
    "Warning",
    "EnableTagOverride",
    "Kind",
    "Proxy",
    "Connect",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Definition",
    "HTTP",
    "TLSSkipVerify",
    "TLSServerName",
    "Header",
    "Method",
    "Body",
    "TCP",
    "UDP",
    "TTL",
    "Args",
    "Script",
    "Shell",
    "Interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "Verb",
    "Key",
    "Value",
    "Flags",
    "Index",
    "Session",
    "KV",
    "ModifyIndex",
    "CreateIndex",
    "Type",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
    "Namespace",
    "Partition",
    "GRPC",
    "GRPCUseTLS",
    "AliasNode",
    "AliasService",
    "DockerContainerID",
    "H2PING",
    "H2PingUseTLS",
    "OutputMaxSize",
    "ExposedPort",
    "Token",
    "Locality",
    "SocketPath",
    "LocallyRegisteredAsSidecar",
    "PeerName",
    "Interval",
    "IntervalDuration",
    "TimeoutDuration",
    "DeregisterCriticalServiceAfterDuration",
    "Segment",
    "Reason",
    "Enable",
    "Payload",
    "NodeFilter",
    "ServiceFilter",
    "TagFilter",
    "LockDelay",
    "Behavior",
    "NodeChecks",
    "ServiceChecks",
    "Description",
    "Policies",
    "Roles",
    "Rules",
]
_BY_LOWER = {name.lower(): name for name in CANONICAL}
# snake_case spellings Consul accepts in agent registrations (config-file style)
_ALIASES = {
    "service_id": "ServiceID",
    "check_id": "CheckID",
    "tagged_addresses": "TaggedAddresses",
    "enable_tag_override": "EnableTagOverride",
    "tls_skip_verify": "TLSSkipVerify",
    "tls_server_name": "TLSServerName",
    "deregister_critical_service_after": "DeregisterCriticalServiceAfter",
    "docker_container_id": "DockerContainerID",
    "alias_node": "AliasNode",
    "alias_service": "AliasService",
    "node_meta": "NodeMeta",
    "success_before_passing": "SuccessBeforePassing",
    "failures_before_warning": "FailuresBeforeWarning",
    "failures_before_critical": "FailuresBeforeCritical",
    "output_max_size": "OutputMaxSize",
    "grpc_use_tls": "GRPCUseTLS",
    "service_name": "ServiceName",
    "service_tags": "ServiceTags",
    "skip_node_update": "SkipNodeUpdate",
}
# Values under these keys are user data: their keys are not field names.
_USER_MAPS = {"Meta", "NodeMeta", "Header", "ServiceMeta"}


def canonical_key(key: str) -> str:
    return _BY_LOWER.get(key.lower()) or _ALIASES.get(key) or key


def normalize(value: Any) -> Any:
    """Rename known field names to Consul's casing, recursively; user maps are kept as sent."""
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = canonical_key(key)
        if name in _USER_MAPS:
            out[name] = item
        elif name == "TaggedAddresses" and isinstance(item, dict):
            out[name] = {k: normalize(v) if isinstance(v, dict) else v for k, v in item.items()}
        else:
            out[name] = normalize(item)
    return out
