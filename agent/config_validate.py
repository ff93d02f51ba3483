"""The merged configuration checked and built into an `AgentConfig`.

Consul's rules and, where it has them, its messages: datacenter names, addresses (IPs,
go-sockaddr templates, unix sockets), ports, the bootstrap combinations, node IDs and meta,
log levels, gossip keys, ACL policies, raft settings. Every error names where the bad value
came from (`View.fail`).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import socket
from typing import Any

from agent.config_errors import ConfigError
from agent.config_merge import View
from agent.config_value import (
    ACLConfig,
    ACLTokens,
    Addresses,
    AgentConfig,
    Ports,
    TLSConfig,
    TLSSettings,
    UnixSockets,
)
from agent.durations import format_duration

__all__ = [
    "build",
]


_LOG_LEVELS = {
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "warn": "warn",
    "warning": "warn",
    "err": "error",
    "error": "error",
}
_DC_RE = re.compile(r"^[a-z0-9_-]+$")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_META_KEY_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_PORT_KEYS = ("http", "https", "grpc", "grpc_tls", "dns", "server", "serf_lan", "serf_wan")
_SIDECAR_PORT_KEYS = ("sidecar_min_port", "sidecar_max_port")


def build(
    v: View, dev: bool, sources: list[str], ignored: list[str], warnings: list[str]
) -> AgentConfig:
    server = bool(v.get("server"))
    bootstrap = bool(v.get("bootstrap")) or (dev and server)
    datacenter = _datacenter(v, "datacenter")
    data_dir = None if dev and not v.is_set("data_dir") else v.get("data_dir")
    _check_data_dir(v, data_dir, server, dev)
    node_name = v.get("node_name") or socket.gethostname()
    if not node_name:
        raise ConfigError("node_name cannot be empty")
    _check_bootstrap(v, server, bootstrap, dev)
    ports = _ports(v, server)
    bind_addr = _ip(v, "bind_addr")
    advertise = _advertise(v, "advertise_addr", "Advertise address")
    advertise_wan = _advertise(v, "advertise_addr_wan", "Advertise WAN address")
    client_addrs = tuple(_ips(v, "client_addr") or ())
    dns_addrs = _ips(v, "addresses.dns")
    if ports.dns > 0 and any(a.startswith("unix://") for a in dns_addrs or client_addrs):
        raise ConfigError("DNS address cannot be a unix socket")  # Consul's builder check
    return AgentConfig(
        node_name=node_name,
        node_id=_node_id(v),
        datacenter=datacenter,
        primary_datacenter=_datacenter(v, "primary_datacenter") or datacenter,
        data_dir=data_dir,
        dev=dev,
        server=server,
        bootstrap=bootstrap,
        bootstrap_expect=int(v.get("bootstrap_expect", 0)),
        bind_addr=bind_addr or "0.0.0.0",
        advertise_addr=advertise,
        advertise_addr_wan=advertise_wan,
        serf_lan_bind=_ip(v, "serf_lan"),
        serf_wan_bind=_ip(v, "serf_wan"),
        client_addrs=client_addrs,
        ports=ports,
        addresses=Addresses(**{k: _ips(v, f"addresses.{k}") for k in Addresses.__annotations__}),
        tagged_addresses=dict(v.get("tagged_addresses", {})),
        ui_enabled=bool(v.get("ui_config.enabled")),
        ui_dir=v.get("ui_config.dir"),
        ui_content_path=_content_path(v.get("ui_config.content_path", "/ui/")),
        autopilot=_autopilot(v),
        unix_sockets=UnixSockets(
            **{k: str(v.get(f"unix_sockets.{k}") or "") for k in ("user", "group", "mode")}
        ),
        ui_metrics_proxy={
            "base_url": v.get("ui_config.metrics_proxy.base_url") or "",
            "add_headers": list(v.get("ui_config.metrics_proxy.add_headers") or []),
            "path_allowlist": list(v.get("ui_config.metrics_proxy.path_allowlist") or []),
        },
        log_level=_log_level(v),
        log_json=bool(v.get("log_json")),
        log_file=v.get("log_file"),
        enable_debug=bool(v.get("enable_debug")),
        enable_script_checks=bool(v.get("enable_script_checks")),
        enable_local_script_checks=bool(v.get("enable_local_script_checks")),
        start_join=tuple(v.get("start_join", [])),
        retry_join=tuple(v.get("retry_join", [])),
        retry_interval=v.seconds("retry_interval"),
        retry_max=_non_negative(v, "retry_max"),
        start_join_wan=tuple(v.get("start_join_wan", [])),
        retry_join_wan=tuple(v.get("retry_join_wan", [])),
        retry_interval_wan=v.seconds("retry_interval_wan"),
        retry_max_wan=_non_negative(v, "retry_max_wan"),
        rejoin_after_leave=bool(v.get("rejoin_after_leave")),
        leave_on_terminate=bool(v.get("leave_on_terminate", not server)),
        skip_leave_on_interrupt=bool(v.get("skip_leave_on_interrupt", server)),
        reconnect_timeout=v.seconds("reconnect_timeout"),
        reconnect_timeout_wan=v.seconds("reconnect_timeout_wan"),
        encrypt=_encrypt(v),
        encrypt_verify_incoming=bool(v.get("encrypt_verify_incoming")),
        encrypt_verify_outgoing=bool(v.get("encrypt_verify_outgoing")),
        acl=_acl(v),
        node_meta=_node_meta(v),
        services=tuple(v.get("services", [])),
        checks=tuple(v.get("checks", [])),
        protocol=int(v.get("protocol")),
        raft_protocol=_raft_protocol(v),
        raft_multiplier=_raft_multiplier(v),
        raft_snapshot_threshold=_non_negative(v, "raft_snapshot_threshold"),
        raft_snapshot_interval=v.seconds("raft_snapshot_interval"),
        raft_trailing_logs=_non_negative(v, "raft_trailing_logs"),
        leave_drain_time=v.seconds("performance.leave_drain_time"),
        rpc_hold_timeout=v.seconds("performance.rpc_hold_timeout"),
        connect_enabled=bool(v.get("connect.enabled", True)),
        # Consul's default since 1.9: proxies and gateways take proxy/service-defaults.
        enable_central_service_config=bool(v.get("enable_central_service_config", True)),
        connect_ca_provider=str(v.get("connect.ca_provider", "consul") or "consul"),
        connect_ca_config=dict(v.get("connect.ca_config") or {}),
        config_entries_bootstrap=tuple(v.get("config_entries.bootstrap") or ()),
        kv_max_value_size=_non_negative(v, "limits.kv_max_value_size"),
        txn_max_req_len=_non_negative(v, "limits.txn_max_req_len"),
        http_response_headers=dict(v.get("http_config.response_headers", {})),
        http_block_endpoints=tuple(v.get("http_config.block_endpoints", [])),
        http_allow_write_from=tuple(v.get("http_config.allow_write_http_from", [])),
        domain=_domain(v.get("domain")),
        alt_domain=_domain(v.get("alt_domain")) if v.get("alt_domain") else None,
        recursors=_recursors(v),
        dns_config=_dns_config(v),
        default_query_time=v.seconds("default_query_time"),
        max_query_time=v.seconds("max_query_time"),
        session_ttl_min=v.seconds("session_ttl_min"),
        check_output_max_size=_positive(v, "check_output_max_size"),
        discard_check_output=bool(v.get("discard_check_output")),
        disable_update_check=bool(v.get("disable_update_check")),
        disable_anonymous_signature=bool(v.get("disable_anonymous_signature")),
        disable_remote_exec=bool(v.get("disable_remote_exec")),
        disable_host_node_id=bool(v.get("disable_host_node_id")),
        disable_coordinates=bool(v.get("disable_coordinates")),
        pid_file=v.get("pid_file"),
        config_sources=tuple(sources),
        ignored_keys=tuple(ignored),
        warnings=tuple(warnings),
        tls=_tls(v),
    )


def _datacenter(v: View, key: str) -> str:
    value = v.get(key)
    if value is None:
        return ""
    lowered = str(value).lower()
    if not lowered:
        raise v.fail(key, "cannot be empty")
    if not _DC_RE.match(lowered):
        raise v.fail(key, f'cannot be "{lowered}". Please use only [a-z0-9-_].')
    return lowered


def _check_data_dir(v: View, data_dir: str | None, server: bool, dev: bool) -> None:
    if not data_dir:
        if server and not dev:
            raise ConfigError("data_dir cannot be empty")
        return
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise v.fail("data_dir", f'"{data_dir}" is not a directory')


def _check_bootstrap(v: View, server: bool, bootstrap: bool, dev: bool) -> None:
    expect = int(v.get("bootstrap_expect", 0))
    if bootstrap and not server:
        raise v.fail("bootstrap", "'bootstrap = true' requires 'server = true'")
    if expect < 0:
        raise v.fail(
            "bootstrap_expect",
            f"cannot be {expect}. Must be greater than or equal to zero",
        )
    if expect > 0 and not server:
        raise v.fail("bootstrap_expect", "'bootstrap_expect > 0' requires 'server = true'")
    if expect > 0 and dev:
        raise v.fail("bootstrap_expect", "'bootstrap_expect > 0' not allowed in dev mode")
    if expect > 0 and bootstrap:
        raise v.fail(
            "bootstrap_expect",
            "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
        )


def _ports(v: View, server: bool) -> Ports:
    values: dict[str, int] = {}
    for name in _PORT_KEYS:
        dotted = f"ports.{name}"
        port = v.get(dotted)
        if port is None:  # only grpc_tls has no fixed default: 8503 on servers
            port = 8503 if server else -1
        port = int(port)
        if port < -1 or port > 65535:
            raise v.fail(dotted, f"invalid port {port}: must be 1-65535, or -1 to disable")
        values[name] = -1 if port <= 0 else port
    for name in ("server", "serf_lan"):
        if values[name] <= 0:
            raise v.fail(f"ports.{name}", "port must be greater than zero")
    for name in _SIDECAR_PORT_KEYS:  # Consul's portVal: zero or less disables
        dotted = f"ports.{name}"
        port = int(v.get(dotted))
        if port > 65535:
            raise v.fail(dotted, f"invalid port: {port}")
        values[name] = -1 if port <= 0 else port
    if values["sidecar_max_port"] < values["sidecar_min_port"]:
        raise v.fail(
            "ports.sidecar_min_port",
            "sidecar_min_port must be less than sidecar_max_port. To disable, set both to zero.",
        )
    return Ports(**values)


def _valid_ip(text: str) -> bool:
    if "{{" in text:  # go-sockaddr template: resolved by the agent
        return True
    try:
        ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    except ValueError:
        return False
    return True


def _ip(v: View, dotted: str) -> str | None:
    value = v.get(dotted)
    if value is None or value == "":
        return None
    value = value.strip()
    if not _valid_ip(value):
        raise v.fail(dotted, f"invalid ip address: {value}")
    return value


def _ips(v: View, dotted: str) -> tuple[str, ...] | None:
    """A space-separated list of IPs (or unix:// sockets), as client_addr allows."""
    value = v.get(dotted)
    if value is None:
        return None
    addrs = tuple(value.split())
    for addr in addrs:
        if not addr.startswith("unix://") and not _valid_ip(addr):
            raise v.fail(dotted, f"invalid ip address: {addr}")
    return addrs


def _advertise(v: View, dotted: str, what: str) -> str | None:
    value = _ip(v, dotted)
    if (
        value is not None
        and "{{" not in value
        and ipaddress.ip_address(value.strip("[]")).is_unspecified
    ):
        raise v.fail(dotted, f"{what} cannot be 0.0.0.0, :: or [::]")
    return value


def _node_id(v: View) -> str | None:
    value = v.get("node_id")
    if not value:
        return None
    if not _UUID_RE.match(value):
        raise v.fail("node_id", f'invalid node ID "{value}": must be a UUID')
    return value.lower()


def _log_level(v: View) -> str:
    raw = str(v.get("log_level"))
    level = _LOG_LEVELS.get(raw.lower())
    if level is None:
        raise v.fail(
            "log_level", f'invalid log level "{raw}" (valid: trace, debug, info, warn, error)'
        )
    return level


def _encrypt(v: View) -> str | None:
    value = v.get("encrypt")
    if not value:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        raise v.fail("encrypt", "invalid key: not valid base64") from None
    if len(key) not in (16, 24, 32):
        raise v.fail(
            "encrypt",
            f"invalid key: key is {len(key)} bytes, must be 16, 24 or 32",
        )
    return value


_TLS_FIELDS = tuple(TLSSettings.__annotations__)


def _tls(v: View) -> TLSConfig:
    def section(name: str) -> TLSSettings:
        values: dict[str, Any] = {}
        for key in _TLS_FIELDS:
            value = v.get(f"tls.{name}.{key}")
            if value is None:
                value = v.get(f"tls.defaults.{key}")
            if value is not None:
                values[key] = bool(value) if key.startswith("verify_") else str(value)
        return TLSSettings(**values)

    return TLSConfig(internal_rpc=section("internal_rpc"), https=section("https"))


def _acl(v: View) -> ACLConfig:
    default_policy = v.get("acl.default_policy")
    if default_policy not in ("allow", "deny"):
        raise v.fail(
            "acl.default_policy", f'invalid policy "{default_policy}": must be allow or deny'
        )
    down_policy = v.get("acl.down_policy")
    if down_policy not in ("allow", "deny", "extend-cache", "async-cache"):
        raise v.fail(
            "acl.down_policy",
            f'invalid policy "{down_policy}": must be allow, deny, extend-cache or async-cache',
        )
    tokens = ACLTokens(
        **{name: v.get(f"acl.tokens.{name}") or None for name in ACLTokens.__annotations__}
    )
    return ACLConfig(
        enabled=bool(v.get("acl.enabled")),
        default_policy=default_policy,
        down_policy=down_policy,
        enable_token_persistence=bool(v.get("acl.enable_token_persistence")),
        enable_key_list_policy=bool(v.get("acl.enable_key_list_policy")),
        enable_token_replication=bool(v.get("acl.enable_token_replication")),
        token_ttl=v.seconds("acl.token_ttl"),
        policy_ttl=v.seconds("acl.policy_ttl"),
        role_ttl=v.seconds("acl.role_ttl"),
        tokens=tokens,
    )


def _node_meta(v: View) -> dict[str, str]:
    meta = dict(v.get("node_meta", {}))
    if len(meta) > 64:
        raise v.fail(
            "node_meta",
            "invalid: node metadata cannot contain more than 64 key/value pairs",
        )
    for key, value in meta.items():
        if not _META_KEY_RE.match(key):
            raise v.fail(
                "node_meta",
                f"invalid: key {key!r} contains invalid characters "
                "(allowed: letters, digits, '_' and '-')",
            )
        if len(key) > 128:
            raise v.fail("node_meta", f"invalid: key {key!r} is longer than 128 characters")
        if key.startswith("consul-"):
            raise v.fail("node_meta", f"invalid: key {key!r} uses the reserved prefix 'consul-'")
        if len(value) > 512:
            raise v.fail("node_meta", f"invalid: value of {key!r} is longer than 512 characters")
    return meta


def _raft_protocol(v: View) -> int:
    value = int(v.get("raft_protocol"))
    if value != 3:
        raise v.fail("raft_protocol", f"raft_protocol version {value} is not supported, only 3")
    return value


def _raft_multiplier(v: View) -> int:
    value = int(v.get("performance.raft_multiplier"))
    if not 1 <= value <= 10:
        raise v.fail(
            "performance.raft_multiplier",
            f"cannot be {value}. Must be between 1 and 10",
        )
    return value


def _autopilot(v: View) -> dict[str, Any]:
    """`autopilot { ... }` as the configuration a leader stores when there is none yet
    (Consul's getOrCreateAutopilotConfig), in the API's field names; Consul's defaults."""

    def duration(key: str, default: str) -> str:
        dotted = f"autopilot.{key}"
        if v.get(dotted) is None:
            return default
        seconds = v.seconds(dotted)
        if seconds < 0:
            raise v.fail(dotted, "cannot be negative")
        return format_duration(seconds)

    return {
        "CleanupDeadServers": bool(v.get("autopilot.cleanup_dead_servers", True)),
        "LastContactThreshold": duration("last_contact_threshold", "200ms"),
        "MaxTrailingLogs": _non_negative(v, "autopilot.max_trailing_logs")
        if v.get("autopilot.max_trailing_logs") is not None
        else 250,
        "MinQuorum": _non_negative(v, "autopilot.min_quorum"),
        "ServerStabilizationTime": duration("server_stabilization_time", "10s"),
        "RedundancyZoneTag": str(v.get("autopilot.redundancy_zone_tag") or ""),
        "DisableUpgradeMigration": bool(v.get("autopilot.disable_upgrade_migration")),
        "UpgradeVersionTag": str(v.get("autopilot.upgrade_version_tag") or ""),
    }


def _non_negative(v: View, dotted: str) -> int:
    value = int(v.get(dotted, 0))
    if value < 0:
        raise v.fail(dotted, f"cannot be {value}. Must be greater than or equal to zero")
    return value


def _positive(v: View, dotted: str) -> int:
    value = int(v.get(dotted, 0))
    if value < 1:
        raise v.fail(dotted, f"cannot be {value}. Must be positive")
    return value


def _domain(value: str | None) -> str:
    value = value or "consul."
    return value if value.endswith(".") else value + "."


def _content_path(value: str) -> str:
    value = "/" + value.strip("/") + "/" if value.strip("/") else "/"
    return value


def _recursors(v: View) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for entry in v.get("recursors", []):
        for addr in entry.split():
            host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr
            if (
                "{{" not in host
                and _valid_ip(host)
                and ipaddress.ip_address(host.strip("[]")).is_unspecified
            ):
                raise v.fail("recursors", "DNS recursor address cannot be 0.0.0.0, :: or [::]")
            seen.setdefault(addr, None)
    return tuple(seen)


def _dns_config(v: View) -> dict[str, Any]:
    dns = dict(v.get("dns_config", {}))
    for key in ("udp_answer_limit", "a_record_limit"):
        if int(dns.get(key, 0)) < 0:
            raise v.fail(
                f"dns_config.{key}",
                f"cannot be {dns[key]}. Must be greater than or equal to zero",
            )
    return dns
