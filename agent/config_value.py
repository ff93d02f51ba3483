"""The agent's configuration as one frozen value, `AgentConfig`, and the parts it is made of.

Built only by `agent.config.load_config`; everything else reads it. Durations are seconds
(float); the listener address lists are derived from the ports and bind addresses on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.durations import format_duration

__all__ = [
    "ACLConfig",
    "ACLTokens",
    "Addresses",
    "AgentConfig",
    "Ports",
    "TLSConfig",
    "TLSSettings",
]


@dataclass(frozen=True)
class Ports:
    """Listener ports; -1 means the listener is disabled."""

    http: int = 8500
    https: int = -1
    grpc: int = -1
    grpc_tls: int = -1
    dns: int = 8600
    server: int = 8300
    serf_lan: int = 8301
    serf_wan: int = 8302
    # The range sidecar proxies get their port from when registered without one (-1: none).
    sidecar_min_port: int = 21000
    sidecar_max_port: int = 21255


@dataclass(frozen=True)
class Addresses:
    """Per-listener bind overrides of ``client_addrs`` (None = use client_addrs)."""

    http: tuple[str, ...] | None = None
    https: tuple[str, ...] | None = None
    dns: tuple[str, ...] | None = None
    grpc: tuple[str, ...] | None = None
    grpc_tls: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ACLTokens:
    """Tokens from ``acl.tokens`` (deprecated spellings already folded in)."""

    initial_management: str | None = field(default=None, repr=False)
    agent: str | None = field(default=None, repr=False)
    default: str | None = field(default=None, repr=False)
    agent_recovery: str | None = field(default=None, repr=False)
    replication: str | None = field(default=None, repr=False)
    dns: str | None = field(default=None, repr=False)
    config_file_service_registration: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ACLConfig:
    enabled: bool = False
    default_policy: str = "allow"
    down_policy: str = "extend-cache"
    enable_token_persistence: bool = False
    enable_key_list_policy: bool = False
    enable_token_replication: bool = False
    token_ttl: float = 30.0
    policy_ttl: float = 30.0
    role_ttl: float = 30.0
    tokens: ACLTokens = field(default_factory=ACLTokens)


@dataclass(frozen=True)
class TLSSettings:
    """One listener family's effective TLS settings (its own section over `tls.defaults`)."""

    ca_file: str | None = None
    ca_path: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_incoming: bool = False
    verify_outgoing: bool = False
    verify_server_hostname: bool = False
    tls_min_version: str | None = None


@dataclass(frozen=True)
class TLSConfig:
    """`tls { defaults internal_rpc https }` after the deprecated top-level keys are folded in."""

    internal_rpc: TLSSettings = field(default_factory=TLSSettings)
    https: TLSSettings = field(default_factory=TLSSettings)


@dataclass(frozen=True)
class UnixSockets:
    """`unix_sockets { user group mode }`: ownership and mode of the API's unix sockets, as
    given (checked when the socket is made, as Consul does): user by ID or name, group by
    ID, mode in octal; empty = this process's user and group, the default mode."""

    user: str = ""
    group: str = ""
    mode: str = ""


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs to start. Durations are seconds (float)."""

    node_name: str
    node_id: str | None
    datacenter: str
    primary_datacenter: str
    data_dir: str | None
    dev: bool
    server: bool
    bootstrap: bool
    bootstrap_expect: int
    bind_addr: str
    advertise_addr: str | None
    advertise_addr_wan: str | None
    serf_lan_bind: str | None
    serf_wan_bind: str | None
    client_addrs: tuple[str, ...]
    ports: Ports
    addresses: Addresses
    tagged_addresses: dict[str, str]
    ui_enabled: bool
    ui_dir: str | None
    ui_content_path: str
    log_level: str
    log_json: bool
    log_file: str | None
    enable_debug: bool
    enable_script_checks: bool
    enable_local_script_checks: bool
    start_join: tuple[str, ...]
    retry_join: tuple[str, ...]
    retry_interval: float
    retry_max: int
    start_join_wan: tuple[str, ...]
    retry_join_wan: tuple[str, ...]
    retry_interval_wan: float
    retry_max_wan: int
    rejoin_after_leave: bool
    leave_on_terminate: bool
    skip_leave_on_interrupt: bool
    reconnect_timeout: float
    reconnect_timeout_wan: float
    encrypt: str | None = field(repr=False)
    encrypt_verify_incoming: bool
    encrypt_verify_outgoing: bool
    acl: ACLConfig
    node_meta: dict[str, str]
    services: tuple[dict[str, Any], ...]
    checks: tuple[dict[str, Any], ...]
    protocol: int
    raft_protocol: int
    raft_multiplier: int
    raft_snapshot_threshold: int
    raft_snapshot_interval: float
    raft_trailing_logs: int
    leave_drain_time: float
    rpc_hold_timeout: float
    connect_enabled: bool
    enable_central_service_config: bool
    connect_ca_provider: str
    connect_ca_config: dict[str, Any]
    config_entries_bootstrap: tuple[dict[str, Any], ...]
    kv_max_value_size: int
    txn_max_req_len: int
    http_response_headers: dict[str, str]
    http_block_endpoints: tuple[str, ...]
    http_allow_write_from: tuple[str, ...]
    domain: str
    alt_domain: str | None
    recursors: tuple[str, ...]
    dns_config: dict[str, Any]
    default_query_time: float
    max_query_time: float
    session_ttl_min: float
    check_output_max_size: int
    discard_check_output: bool
    disable_update_check: bool
    disable_anonymous_signature: bool
    disable_remote_exec: bool
    disable_host_node_id: bool
    disable_coordinates: bool
    pid_file: str | None
    config_sources: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    tls: TLSConfig = field(default_factory=TLSConfig)
    # ui_config.metrics_proxy: {"base_url", "add_headers": [{"name", "value"}], "path_allowlist"}
    ui_metrics_proxy: dict[str, Any] = field(default_factory=dict)
    unix_sockets: UnixSockets = field(default_factory=UnixSockets)
    # `autopilot { ... }` in the API's shape (api.AutopilotConfiguration, durations as text)
    autopilot: dict[str, Any] = field(default_factory=dict)

    def http_addrs(self) -> list[tuple[str, int]]:
        """(host, port) pairs the HTTP API listens on; empty when disabled."""
        return _listen(self.addresses.http, self.client_addrs, self.ports.http)

    def https_addrs(self) -> list[tuple[str, int]]:
        return _listen(self.addresses.https, self.client_addrs, self.ports.https)

    def dns_addrs(self) -> list[tuple[str, int]]:
        """(host, port) pairs the DNS server listens on (UDP and TCP)."""
        return _listen(self.addresses.dns, self.client_addrs, self.ports.dns)

    def grpc_addrs(self) -> list[tuple[str, int]]:
        return _listen(self.addresses.grpc, self.client_addrs, self.ports.grpc)

    def advertise(self) -> str:
        """The LAN address other agents reach us on (before 0.0.0.0 resolution)."""
        return self.advertise_addr or self.bind_addr

    def advertise_wan(self) -> str:
        return self.advertise_addr_wan or self.advertise()

    def summary(self) -> dict[str, Any]:
        """``{"Config": ..., "DebugConfig": ...}`` for /v1/agent/self; no secrets.

        The agent adds Version/Revision; ACL tokens and the gossip key are
        never part of the result.
        """
        config = {
            "Datacenter": self.datacenter,
            "PrimaryDatacenter": self.primary_datacenter,
            "NodeName": self.node_name,
            "NodeID": self.node_id or "",
            "Server": self.server,
        }
        debug = {
            "ACLsEnabled": self.acl.enabled,
            "ACLDefaultPolicy": self.acl.default_policy,
            "ACLDownPolicy": self.acl.down_policy,
            "ACLEnableKeyListPolicy": self.acl.enable_key_list_policy,
            "ACLEnableTokenPersistence": self.acl.enable_token_persistence,
            "AdvertiseAddrLAN": self.advertise(),
            "AdvertiseAddrWAN": self.advertise_wan(),
            "BindAddr": self.bind_addr,
            "Bootstrap": self.bootstrap,
            "BootstrapExpect": self.bootstrap_expect,
            "ClientAddrs": list(self.client_addrs),
            "DataDir": self.data_dir or "",
            "Datacenter": self.datacenter,
            "PrimaryDatacenter": self.primary_datacenter,
            "DevMode": self.dev,
            "DNSDomain": self.domain,
            "DNSAltDomain": self.alt_domain or "",
            "DNSPort": self.ports.dns,
            "DNSRecursors": list(self.recursors),
            "EncryptionEnabled": bool(self.encrypt),
            "EnableLocalScriptChecks": self.enable_local_script_checks,
            "EnableRemoteScriptChecks": self.enable_script_checks,
            "EnableDebug": self.enable_debug,
            "HTTPPort": self.ports.http,
            "HTTPSPort": self.ports.https,
            "GRPCPort": self.ports.grpc,
            "GRPCTLSPort": self.ports.grpc_tls,
            "HTTPAddrs": [listen_label(h, p) for h, p in self.http_addrs()],
            "DNSAddrs": [f"{h}:{p}" for h, p in self.dns_addrs()],
            "HTTPResponseHeaders": dict(self.http_response_headers),
            "KVMaxValueSize": self.kv_max_value_size,
            "TxnMaxReqLen": self.txn_max_req_len,
            "LogLevel": self.log_level.upper(),
            "LogJSON": self.log_json,
            "NodeID": self.node_id or "",
            "NodeMeta": dict(self.node_meta),
            "NodeName": self.node_name,
            "PidFile": self.pid_file or "",
            "RaftProtocol": self.raft_protocol,
            "RaftMultiplier": self.raft_multiplier,
            "RejoinAfterLeave": self.rejoin_after_leave,
            "RetryJoinIntervalLAN": format_duration(self.retry_interval),
            "RetryJoinIntervalWAN": format_duration(self.retry_interval_wan),
            "RetryJoinLAN": list(self.retry_join),
            "RetryJoinMaxAttemptsLAN": self.retry_max,
            "RetryJoinWAN": list(self.retry_join_wan),
            "RetryJoinMaxAttemptsWAN": self.retry_max_wan,
            "StartJoinAddrsLAN": list(self.start_join),
            "StartJoinAddrsWAN": list(self.start_join_wan),
            "SerfPortLAN": self.ports.serf_lan,
            "SerfPortWAN": self.ports.serf_wan,
            "ServerMode": self.server,
            "ServerPort": self.ports.server,
            "UIConfig": {"Enabled": self.ui_enabled, "ContentPath": self.ui_content_path},
        }
        return {"Config": config, "DebugConfig": debug}


def listen_label(host: str, port: int) -> str:
    """A listener as logs and /v1/agent/self show it: `unix:///path` or `host:port`."""
    return host if host.startswith("unix://") else f"{host}:{port}"


def _listen(
    override: tuple[str, ...] | None, client: tuple[str, ...], port: int
) -> list[tuple[str, int]]:
    if port < 0:
        return []
    return [(host, port) for host in (override if override is not None else client)]
