"""service-defaults and proxy-defaults: their structs, Normalize and Validate
(`agent/structs/config_entry.go`, `connect_proxy_config.go`).

Both collect most problems into one go-multierror text (a single problem still reads
"1 error occurred: ..."), except the name and MutualTLSMode checks, which stop at once.
"""

from __future__ import annotations

import json

from agent.connect.entry_checks import (
    WILDCARD,
    byte_len,
    extension_problems,
    fail,
    go_lower,
    go_quote,
    is_domain_name,
    is_ip,
    meta_problems,
    multierror,
    raise_all,
    raise_meta,
)
from agent.connect.entry_decode import go_value_text
from agent.connect.entry_types import (
    ACCESS_LOGS,
    ENVOY_EXTENSIONS,
    EXPOSE,
    FAILOVER_POLICY,
    HASH_FIELD,
    INT,
    MESH_GATEWAY,
    META_FIELD,
    OPAQUE,
    PASSIVE_HEALTH_CHECK,
    PRIORITIZE_BY_LOCALITY,
    RAFT_INDEX_FIELD,
    STRING,
    STRINGS,
    TRANSPARENT_PROXY,
    F,
    KindSpec,
    Ptr,
    Slice,
    Struct,
    named,
)

__all__ = ["PROXY_DEFAULTS", "SERVICE_DEFAULTS"]

UPSTREAM_LIMITS = Struct(
    "UpstreamLimits",
    (
        F("MaxConnections", Ptr(INT), "max_connections"),
        F("MaxPendingRequests", Ptr(INT), "max_pending_requests"),
        F("MaxConcurrentRequests", Ptr(INT), "max_concurrent_requests"),
    ),
)
UPSTREAM_CONFIG = Struct(
    "UpstreamConfig",
    (
        F("Name", STRING),
        F("Peer", STRING, keep=True),
        F("EnvoyListenerJSON", STRING, "envoy_listener_json"),
        F("EnvoyClusterJSON", STRING, "envoy_cluster_json"),
        F("Protocol", STRING),
        F("ConnectTimeoutMs", INT, "connect_timeout_ms"),
        F("Limits", Ptr(UPSTREAM_LIMITS)),
        F("PassiveHealthCheck", Ptr(PASSIVE_HEALTH_CHECK), "passive_health_check"),
        F("MeshGateway", MESH_GATEWAY, "mesh_gateway"),
        F("BalanceOutboundConnections", STRING, "balance_outbound_connections"),
    ),
)
UPSTREAM_CONFIGURATION = Struct(
    "UpstreamConfiguration",
    (F("Overrides", Slice(Ptr(UPSTREAM_CONFIG))), F("Defaults", Ptr(UPSTREAM_CONFIG))),
)
DESTINATION = Struct("DestinationConfig", (F("Addresses", STRINGS), F("Port", INT)))
_ROUTE_LIMITS = Struct(
    "InstanceLevelRouteRateLimits",
    (
        F("PathExact", STRING, "path_exact", keep=True),
        F("PathPrefix", STRING, "path_prefix", keep=True),
        F("PathRegex", STRING, "path_regex", keep=True),
        F("RequestsPerSecond", INT, "requests_per_second", keep=True),
        F("RequestsMaxBurst", INT, "requests_max_burst", keep=True),
    ),
)
RATE_LIMITS = Struct(
    "RateLimits",
    (
        F(
            "InstanceLevel",
            Struct(
                "InstanceLevelRateLimits",
                (
                    F("RequestsPerSecond", INT, "requests_per_second", keep=True),
                    F("RequestsMaxBurst", INT, "requests_max_burst", keep=True),
                    F("Routes", Slice(_ROUTE_LIMITS), keep=True),
                ),
            ),
            "instance_level",
        ),
    ),
)
_MODE = named("structs.ProxyMode")
_MTLS = named("structs.MutualTLSMode")

SERVICE_DEFAULTS_TABLE = Struct(
    "ServiceConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Protocol", STRING, keep=True),
        F("Mode", _MODE),
        F("TransparentProxy", TRANSPARENT_PROXY, "transparent_proxy"),
        F("MutualTLSMode", _MTLS, "mutual_tls_mode"),
        F("MeshGateway", MESH_GATEWAY, "mesh_gateway"),
        F("Expose", EXPOSE),
        F("ExternalSNI", STRING, "external_sni"),
        F("UpstreamConfig", Ptr(UPSTREAM_CONFIGURATION), "upstream_config"),
        F("Destination", Ptr(DESTINATION)),
        F("MaxInboundConnections", INT, "max_inbound_connections"),
        F("LocalConnectTimeoutMs", INT, "local_connect_timeout_ms"),
        F("LocalRequestTimeoutMs", INT, "local_request_timeout_ms"),
        F("BalanceInboundConnections", STRING, "balance_inbound_connections"),
        F("RateLimits", Ptr(RATE_LIMITS), "rate_limits"),
        F("EnvoyExtensions", ENVOY_EXTENSIONS, "envoy_extensions"),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)
PROXY_DEFAULTS_TABLE = Struct(
    "ProxyConfigEntry",
    (
        F("Kind", STRING, keep=True),
        F("Name", STRING, keep=True),
        F("Config", OPAQUE, keep=True),
        # json:"-" in Go, but mapstructure still fills it from a request (then Normalize
        # recomputes it from Config.protocol).
        F("Protocol", STRING, hidden=True),
        F("Mode", _MODE),
        F("TransparentProxy", TRANSPARENT_PROXY, "transparent_proxy"),
        F("MutualTLSMode", _MTLS, "mutual_tls_mode"),
        F("MeshGateway", MESH_GATEWAY, "mesh_gateway"),
        F("Expose", EXPOSE),
        F("AccessLogs", ACCESS_LOGS, "access_logs"),
        F("EnvoyExtensions", ENVOY_EXTENSIONS, "envoy_extensions"),
        F("FailoverPolicy", Ptr(FAILOVER_POLICY), "failover_policy"),
        F("PrioritizeByLocality", Ptr(PRIORITIZE_BY_LOCALITY), "prioritize_by_locality"),
        META_FIELD,
        HASH_FIELD,
        RAFT_INDEX_FIELD,
    ),
)

GLOBAL = "global"


# --------------------------------------------------------------------- shared pieces


def mutual_tls_problem(entry: dict) -> str | None:
    mode = entry.get("MutualTLSMode") or ""
    if mode in ("", "strict", "permissive"):
        return None
    return f'Invalid MutualTLSMode {go_quote(mode)}. Must be one of "", "strict", or "permissive".'


def passive_health_check_problem(check: dict) -> str | None:
    if (check.get("Interval") or 0) < 0:
        return "passive health check interval cannot be negative"
    if check.get("EnforcingConsecutive5xx", 0) > 100:
        return (
            "passive health check enforcing_consecutive_5xx must be a percentage between 0 and 100"
        )
    if check.get("MaxEjectionPercent", 0) > 100:
        return "passive health check max_ejection_percent must be a percentage between 0 and 100"
    if check.get("BaseEjectionTime", 0) < 0:
        return "passive health check base_ejection_time cannot be negative"
    return None


def _limits_problem(limits: dict) -> str | None:
    for key, what in (
        ("MaxConnections", "max connections"),
        ("MaxPendingRequests", "max pending requests"),
        ("MaxConcurrentRequests", "max concurrent requests"),
    ):
        if limits.get(key, 0) < 0:
            return f"{what} cannot be negative"
    return None


def _balance_ok(value: str) -> bool:
    return value in ("", "exact_balance")


def _normalize_upstream(upstream: dict) -> None:
    if upstream.get("Protocol"):
        upstream["Protocol"] = go_lower(upstream["Protocol"])
    if upstream.get("ConnectTimeoutMs", 0) < 0:
        upstream.pop("ConnectTimeoutMs")


def _upstream_problem(upstream: dict, named_: bool) -> str | None:
    """UpstreamConfig.validate: a plain error for the name rules, else go-multierror's text."""
    name = upstream.get("Name") or ""
    if named_:
        if not name:
            return "Name is required"
        if name == WILDCARD:
            return "Wildcard name is not supported"
    elif name:
        return "Name must be empty"
    problems = [
        problem
        for problem in (
            passive_health_check_problem(upstream.get("PassiveHealthCheck") or {}),
            _limits_problem(upstream.get("Limits") or {}),
        )
        if problem
    ]
    balance = upstream.get("BalanceOutboundConnections") or ""
    if not _balance_ok(balance):
        problems.append(f"invalid value for balance_outbound_connections: {balance}")
    return multierror(problems)


def _peered_name(upstream: dict) -> str:
    # PeeredServiceName's String() is "%v:%v" of name and peer; without a Name the whole
    # value is empty, so both parts are.
    name = upstream.get("Name") or ""
    return f"{name}:{upstream.get('Peer') or ''}" if name else ":"


# --------------------------------------------------------------------- service-defaults


def _normalize_service_defaults(entry: dict) -> None:
    if entry.get("Protocol"):
        entry["Protocol"] = go_lower(entry["Protocol"])
    upstream = entry.get("UpstreamConfig")
    if upstream is not None:
        for override in upstream.get("Overrides") or ():
            _normalize_upstream(override)
        if upstream.get("Defaults") is not None:
            _normalize_upstream(upstream["Defaults"])


def _validate_service_defaults(entry: dict) -> None:
    name = entry.get("Name") or ""
    if not name:
        raise fail("Name is required")
    if name == WILDCARD:
        raise fail("service-defaults name must be the name of a service, and not a wildcard")
    problems = meta_problems(entry.get("Meta"))
    balance = entry.get("BalanceInboundConnections") or ""
    if not _balance_ok(balance):
        problems.append(f"invalid value for balance_inbound_connections: {balance}")
    upstream, destination = entry.get("UpstreamConfig"), entry.get("Destination")
    if upstream is not None and destination is not None:
        problems.append(
            "UpstreamConfig and Destination are mutually exclusive for service defaults"
        )
        raise_all(problems)
    if upstream is not None:
        for override in upstream.get("Overrides") or ():
            if problem := _upstream_problem(override, named_=True):
                problems.append(
                    f"error in upstream override for {_peered_name(override)}: {problem}"
                )
        defaults = upstream.get("Defaults")
        if defaults is not None and (problem := _upstream_problem(defaults, named_=False)):
            problems.append(f"error in upstream defaults: {problem}")
    if destination is not None:
        problems += _destination_problems(destination)
    if entry.get("RateLimits") is not None:
        problems.append("invalid rate_limit config. Rate limiting is a consul enterprise feature")
    problems += extension_problems(entry.get("EnvoyExtensions"))
    if problem := mutual_tls_problem(entry):
        raise fail(problem)
    raise_all(problems)


def _destination_problems(destination: dict) -> list[str]:
    addresses = destination.get("Addresses") or []
    problems = []
    if not addresses:
        problems.append("Destination must contain at least one valid address")
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            problems.append(f"Duplicate address '{address}' is not allowed")
            continue
        seen.add(address)
        valid = is_ip(address) or (is_domain_name(address) and WILDCARD not in address)
        if not valid:
            problems.append(
                f"Destination address '{address}' is invalid "
                f"Could not validate address {address} as an IP or Hostname"
            )
    port = destination.get("Port", 0)
    if not 1 <= port <= 65535:
        problems.append(f"Invalid Port number {port}")
    return problems


SERVICE_DEFAULTS = KindSpec(
    "service-defaults",
    SERVICE_DEFAULTS_TABLE,
    _normalize_service_defaults,
    _validate_service_defaults,
)


# --------------------------------------------------------------------- proxy-defaults


def proxy_defaults_name_problem(name: str) -> str | None:
    """The name rule Normalize, Validate and DELETE share."""
    if name in ("", GLOBAL):
        return None
    return f"invalid name ({go_quote(name)}), only {go_quote(GLOBAL)} is supported"


def _config_protocol_problem(config: dict | None) -> str | None:
    """ComputeProtocol: mapstructure.WeakDecode of Config into {protocol string}."""
    if not config:
        return None
    key = "protocol" if "protocol" in config else None
    if key is None:
        key = next((k for k in config if isinstance(k, str) and k.lower() == "protocol"), None)
    value = config.get(key) if key is not None else None
    if value is None or isinstance(value, str | bool | int | float):
        return None
    kind = "map[string]interface {}" if isinstance(value, dict) else "[]interface {}"
    return (
        "1 error(s) decoding:\n\n* 'protocol' expected type 'string', got unconvertible "
        f"type '{kind}', value: '{go_value_text(value)}'"
    )


def _normalize_proxy_defaults(entry: dict) -> None:
    problem = proxy_defaults_name_problem(entry.get("Name") or "")
    if problem:
        raise fail(problem)
    entry["Name"] = GLOBAL
    if problem := _config_protocol_problem(entry.get("Config")):
        raise fail(problem)
    # Protocol is derived (and json:"-"); the discovery chain reads Config itself.
    entry.pop("Protocol", None)


def access_logs_problem(logs: dict) -> str | None:
    kind = logs.get("Type") or ""
    path = logs.get("Path") or ""
    if kind == "file":
        if not path:
            return "path must be specified when using file type access logs"
    elif kind not in ("", "stderr", "stdout"):
        return f"invalid access log type: {kind}"
    if logs.get("JSONFormat") and logs.get("TextFormat"):
        return "cannot specify both access log JSONFormat and TextFormat"
    if kind != "file" and path:
        return "path is only valid for file type access logs"
    if logs.get("JSONFormat"):
        problem = _json_problem(logs["JSONFormat"])
        if problem:
            return f"invalid access log json for JSON format: {problem}"
    return None


def _json_problem(text: str) -> str | None:
    """Go's json.Unmarshal error for text that is not JSON (the common cases)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        return f"invalid character {go_char(text[err.pos])} looking for beginning of value"
    except (TypeError, ValueError):
        return "unexpected end of JSON input"
    return None


def go_char(char: str) -> str:
    """encoding/json's quoteChar."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = go_quote(char)
    return "'" + quoted[1:-1] + "'"


def _validate_proxy_defaults(entry: dict) -> None:
    name = entry.get("Name") or ""
    if name != GLOBAL:
        raise fail(f"invalid name ({go_quote(name)}), only {go_quote(GLOBAL)} is supported")
    if problem := access_logs_problem(entry.get("AccessLogs") or {}):
        raise fail(problem)
    raise_meta(entry)
    socket_dir = (entry.get("Config") or {}).get("envoy_hcp_metrics_bind_socket_dir")
    if isinstance(socket_dir, str) and byte_len(socket_dir) > 70:
        raise fail(
            f"Config: envoy_hcp_metrics_bind_socket_dir length {byte_len(socket_dir)} "
            "exceeds max 70"
        )
    raise_all(extension_problems(entry.get("EnvoyExtensions")))
    if problem := failover_policy_problem(entry.get("FailoverPolicy")):
        raise fail(problem)
    if problem := prioritize_by_locality_problem(entry.get("PrioritizeByLocality")):
        raise fail(problem)
    if problem := mutual_tls_problem(entry):
        raise fail(problem)


def failover_policy_problem(policy: dict | None) -> str | None:
    if policy is None or (policy.get("Mode") or "") in ("", "sequential", "order-by-locality"):
        return None
    return "Failover-policy mode must be one of '', 'sequential', or 'order-by-locality'"


def prioritize_by_locality_problem(value: dict | None) -> str | None:
    if not value:
        return None
    # Consul's CE message ends with a space.
    return "Prioritize-by-locality requires Consul Enterprise "


PROXY_DEFAULTS = KindSpec(
    "proxy-defaults",
    PROXY_DEFAULTS_TABLE,
    _normalize_proxy_defaults,
    _validate_proxy_defaults,
)
