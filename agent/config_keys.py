"""Catalogue of the keys a Consul agent accepts in its configuration files.

The tree below mirrors the key names of Consul's agent configuration (public
key names from its documentation and its config decoder), including the
deprecated spellings it still accepts. It answers three questions for the
loader in :mod:`agent.config`:

* is a key known at all (unknown keys are an error, as in Consul),
* what shape does its value have (checked before merging), and
* do we implement it (:data:`IMPLEMENTED`) or only accept it (recorded in
  ``AgentConfig.ignored_keys`` so the agent can say so).

A node of the tree is a *kind*:

* a leaf kind string (:data:`STR`, :data:`BOOL`, ...),
* a ``dict`` of child keys (a nested block such as ``ports``),
* :class:`ListOf` / :class:`MapOf` wrapping a block (``segments``, ``audit.sink``),
* :data:`SERVICE` / :data:`CHECK`: definitions whose insides the agent validates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

STR: Final = "string"
BOOL: Final = "bool"
INT: Final = "int"
FLOAT: Final = "number"
DURATION: Final = "duration"
STRINGS: Final = "list of strings"
STRMAP: Final = "map of strings"
ANY: Final = "any"
# Opaque definitions: a single block or a list of blocks, contents unchecked here.
SERVICE: Final = "service definition"
CHECK: Final = "check definition"
# A list of opaque objects (watches, config_entries.bootstrap).
OBJECTS: Final = "list of objects"


@dataclass(frozen=True)
class ListOf:
    """A list whose items are blocks of the given shape."""

    item: dict[str, Kind]


@dataclass(frozen=True)
class MapOf:
    """A map from free-form names to blocks of the given shape."""

    item: dict[str, Kind]


Kind: TypeAlias = str | dict[str, "Kind"] | ListOf | MapOf

LEAF_KINDS: Final = frozenset({STR, BOOL, INT, FLOAT, DURATION, STRINGS, STRMAP, ANY, OBJECTS})

_GOSSIP: dict[str, Kind] = {
    "gossip_nodes": INT,
    "gossip_interval": DURATION,
    "probe_interval": DURATION,
    "probe_timeout": DURATION,
    "suspicion_mult": INT,
    "retransmit_mult": INT,
}

_TLS_PROTOCOL: dict[str, Kind] = {
    "ca_file": STR,
    "ca_path": STR,
    "cert_file": STR,
    "key_file": STR,
    "tls_min_version": STR,
    "tls_cipher_suites": STR,
    "verify_incoming": BOOL,
    "verify_outgoing": BOOL,
    "verify_server_hostname": BOOL,
    "use_auto_cert": BOOL,
}

_AUTO_CONFIG_AUTHORIZER: dict[str, Kind] = {
    "claim_assertions": STRINGS,
    "allow_reuse": BOOL,
    "jwt_supported_algs": STRINGS,
    "bound_audiences": STRINGS,
    "claim_mappings": STRMAP,
    "list_claim_mappings": STRMAP,
    "oidc_discovery_url": STR,
    "oidc_discovery_ca_cert": STR,
    "jwks_url": STR,
    "jwks_ca_cert": STR,
    "jwt_validation_pub_keys": STRINGS,
    "bound_issuer": STR,
    "expiration_leeway": DURATION,
    "not_before_leeway": DURATION,
    "clock_skew_leeway": DURATION,
}

_TELEMETRY: dict[str, Kind] = {
    "circonus_api_app": STR,
    "circonus_api_token": STR,
    "circonus_api_url": STR,
    "circonus_broker_id": STR,
    "circonus_broker_select_tag": STR,
    "circonus_check_display_name": STR,
    "circonus_check_force_metric_activation": STR,
    "circonus_check_id": STR,
    "circonus_check_instance_id": STR,
    "circonus_check_search_tag": STR,
    "circonus_check_tags": STR,
    "circonus_submission_interval": STR,
    "circonus_submission_url": STR,
    "disable_hostname": BOOL,
    "disable_per_tenancy_usage_metrics": BOOL,
    "dogstatsd_addr": STR,
    "dogstatsd_tags": STRINGS,
    "enable_host_metrics": BOOL,
    "retry_failed_connection": BOOL,
    "filter_default": BOOL,
    "prefix_filter": STRINGS,
    "metrics_prefix": STR,
    "prometheus_retention_time": DURATION,
    "statsd_address": STR,
    "statsite_address": STR,
}

SCHEMA: Final[dict[str, Kind]] = {
    "acl": {
        "enabled": BOOL,
        "enable_token_replication": BOOL,
        "policy_ttl": DURATION,
        "role_ttl": DURATION,
        "token_ttl": DURATION,
        "down_policy": STR,
        "default_policy": STR,
        "enable_key_list_policy": BOOL,
        "enable_token_persistence": BOOL,
        "disabled_ttl": DURATION,
        "msp_disable_bootstrap": BOOL,
        "tokens": {
            "initial_management": STR,
            "replication": STR,
            "agent_recovery": STR,
            "default": STR,
            "agent": STR,
            "dns": STR,
            "config_file_service_registration": STR,
            "managed_service_provider": ListOf({"accessor_id": STR, "secret_id": STR}),
            # deprecated spellings, renamed by the loader
            "master": STR,
            "agent_master": STR,
        },
    },
    "addresses": {"dns": STR, "http": STR, "https": STR, "grpc": STR, "grpc_tls": STR},
    "advertise_addr": STR,
    "advertise_addr_ipv4": STR,
    "advertise_addr_ipv6": STR,
    "advertise_addr_wan": STR,
    "advertise_addr_wan_ipv4": STR,
    "advertise_addr_wan_ipv6": STR,
    "advertise_reconnect_timeout": DURATION,
    "alt_domain": STR,
    "audit": {
        "enabled": BOOL,
        "sink": MapOf(
            {
                "name": STR,
                "type": STR,
                "format": STR,
                "path": STR,
                "delivery_guarantee": STR,
                "mode": STR,
                "rotate_bytes": INT,
                "rotate_duration": DURATION,
                "rotate_max_files": INT,
            }
        ),
    },
    "auto_config": {
        "enabled": BOOL,
        "intro_token": STR,
        "intro_token_file": STR,
        "server_addresses": STRINGS,
        "dns_sans": STRINGS,
        "ip_sans": STRINGS,
        "authorization": {"enabled": BOOL, "static": _AUTO_CONFIG_AUTHORIZER},
    },
    "auto_encrypt": {"tls": BOOL, "dns_san": STRINGS, "ip_san": STRINGS, "allow_tls": BOOL},
    "auto_reload_config": BOOL,
    "autopilot": {
        "cleanup_dead_servers": BOOL,
        "last_contact_threshold": DURATION,
        "max_trailing_logs": INT,
        "min_quorum": INT,
        "server_stabilization_time": DURATION,
        "disable_upgrade_migration": BOOL,
        "redundancy_zone_tag": STR,
        "upgrade_version_tag": STR,
    },
    "bind_addr": STR,
    "bootstrap": BOOL,
    "bootstrap_expect": INT,
    "cache": {"entry_fetch_max_burst": INT, "entry_fetch_rate": FLOAT},
    "check": CHECK,
    "checks": CHECK,
    "check_output_max_size": INT,
    "check_update_interval": DURATION,
    "client_addr": STR,
    "cloud": {
        "resource_id": STR,
        "client_id": STR,
        "client_secret": STR,
        "hostname": STR,
        "auth_url": STR,
        "scada_address": STR,
        "management_token": STR,
    },
    "config_entries": {"bootstrap": OBJECTS},
    "connect": {
        "enabled": BOOL,
        "ca_provider": STR,
        "ca_config": ANY,
        "enable_mesh_gateway_wan_federation": BOOL,
        "test_ca_leaf_root_change_spread": DURATION,
    },
    "data_dir": STR,
    "datacenter": STR,
    "default_query_time": DURATION,
    "disable_anonymous_signature": BOOL,
    "disable_coordinates": BOOL,
    "disable_host_node_id": BOOL,
    "disable_http_unprintable_char_filter": BOOL,
    "disable_keyring_file": BOOL,
    "disable_remote_exec": BOOL,
    "disable_update_check": BOOL,
    "discard_check_output": BOOL,
    "discovery_max_stale": DURATION,
    "dns_config": {
        "allow_stale": BOOL,
        "a_record_limit": INT,
        "disable_compression": BOOL,
        "enable_truncate": BOOL,
        "max_stale": DURATION,
        "node_ttl": DURATION,
        "only_passing": BOOL,
        "recursor_strategy": STR,
        "recursor_timeout": DURATION,
        "service_ttl": STRMAP,
        "udp_answer_limit": INT,
        "enable_additional_node_meta_txt": BOOL,
        "soa": {"refresh": INT, "retry": INT, "expire": INT, "min_ttl": INT},
        "use_cache": BOOL,
        "cache_max_age": DURATION,
        "prefer_namespace": BOOL,
    },
    "domain": STR,
    "enable_agent_tls_for_checks": BOOL,
    "enable_central_service_config": BOOL,
    "enable_debug": BOOL,
    "enable_local_script_checks": BOOL,
    "enable_script_checks": BOOL,
    "enable_syslog": BOOL,
    "encrypt": STR,
    "encrypt_verify_incoming": BOOL,
    "encrypt_verify_outgoing": BOOL,
    "experiments": STRINGS,
    "gossip_lan": dict(_GOSSIP),
    "gossip_wan": dict(_GOSSIP),
    "http_config": {
        "block_endpoints": STRINGS,
        "allow_write_http_from": STRINGS,
        "response_headers": STRMAP,
        "use_cache": BOOL,
        "max_header_bytes": INT,
    },
    "leave_on_terminate": BOOL,
    "license_path": STR,
    "limits": {
        "http_max_conns_per_client": INT,
        "https_handshake_timeout": DURATION,
        "request_limits": {"mode": STR, "read_rate": FLOAT, "write_rate": FLOAT},
        "rpc_client_timeout": DURATION,
        "rpc_handshake_timeout": DURATION,
        "rpc_max_burst": INT,
        "rpc_max_conns_per_client": INT,
        "rpc_rate": FLOAT,
        "kv_max_value_size": INT,
        "txn_max_req_len": INT,
    },
    "locality": {"region": STR, "zone": STR},
    "log_file": STR,
    "log_json": BOOL,
    "log_level": STR,
    "log_rotate_bytes": INT,
    "log_rotate_duration": DURATION,
    "log_rotate_max_files": INT,
    "log_sublevels": STRMAP,
    "max_query_time": DURATION,
    "node_id": STR,
    "node_meta": STRMAP,
    "node_name": STR,
    "partition": STR,
    "peering": {"enabled": BOOL, "test_allow_peer_registrations": BOOL},
    "performance": {
        "leave_drain_time": DURATION,
        "raft_multiplier": INT,
        "rpc_hold_timeout": DURATION,
    },
    "pid_file": STR,
    "ports": {
        "dns": INT,
        "http": INT,
        "https": INT,
        "serf_lan": INT,
        "serf_wan": INT,
        "server": INT,
        "grpc": INT,
        "grpc_tls": INT,
        "proxy_min_port": INT,
        "proxy_max_port": INT,
        "sidecar_min_port": INT,
        "sidecar_max_port": INT,
        "expose_min_port": INT,
        "expose_max_port": INT,
    },
    "primary_datacenter": STR,
    "primary_gateways": STRINGS,
    "primary_gateways_interval": DURATION,
    "protocol": INT,
    "raft_logstore": {
        "backend": STR,
        "disable_log_cache": BOOL,
        "verification": {"enabled": BOOL, "interval": DURATION},
        "boltdb": {"no_freelist_sync": BOOL},
        "wal": {"segment_size_mb": INT},
    },
    "raft_prevote_disabled": BOOL,
    "raft_protocol": INT,
    "raft_snapshot_interval": DURATION,
    "raft_snapshot_threshold": INT,
    "raft_trailing_logs": INT,
    "read_replica": BOOL,
    "reconnect_timeout": DURATION,
    "reconnect_timeout_wan": DURATION,
    "recursors": STRINGS,
    "rejoin_after_leave": BOOL,
    "reporting": {"license": {"enabled": BOOL}},
    "retry_interval": DURATION,
    "retry_interval_wan": DURATION,
    "retry_join": STRINGS,
    "retry_join_wan": STRINGS,
    "retry_max": INT,
    "retry_max_wan": INT,
    "rpc": {"enable_streaming": BOOL},
    "segment": STR,
    "segments": ListOf(
        {"name": STR, "bind": STR, "advertise": STR, "port": INT, "rpc_listener": BOOL}
    ),
    "serf_lan": STR,
    "serf_lan_allowed_cidrs": STRINGS,
    "serf_wan": STR,
    "serf_wan_allowed_cidrs": STRINGS,
    "server": BOOL,
    "server_name": STR,
    "server_rejoin_age_max": DURATION,
    "service": SERVICE,
    "services": SERVICE,
    "session_ttl_min": DURATION,
    "skip_leave_on_interrupt": BOOL,
    "snapshot_agent": ANY,
    "start_join": STRINGS,
    "start_join_wan": STRINGS,
    "syslog_facility": STR,
    "tagged_addresses": STRMAP,
    "telemetry": _TELEMETRY,
    "tls": {
        "defaults": dict(_TLS_PROTOCOL),
        "internal_rpc": dict(_TLS_PROTOCOL),
        "https": dict(_TLS_PROTOCOL),
        "grpc": dict(_TLS_PROTOCOL),
    },
    "translate_wan_addrs": BOOL,
    "ui_config": {
        "enabled": BOOL,
        "dir": STR,
        "content_path": STR,
        "metrics_provider": STR,
        "metrics_provider_files": STRINGS,
        "metrics_provider_options_json": STR,
        "metrics_proxy": {
            "base_url": STR,
            "add_headers": ListOf({"name": STR, "value": STR}),
            "path_allowlist": STRINGS,
        },
        "dashboard_url_templates": STRMAP,
    },
    "unix_sockets": {"group": STR, "mode": STR, "user": STR},
    "use_streaming_backend": BOOL,
    "watches": OBJECTS,
    "xds": {"update_max_per_second": FLOAT},
    # Values Consul sets itself; still decodable from a file.
    "ae_interval": DURATION,
    "check_deregister_interval_min": DURATION,
    "check_reap_interval": DURATION,
    "consul": {
        "coordinate": {
            "update_batch_size": INT,
            "update_max_batches": INT,
            "update_period": DURATION,
        },
        "raft": {
            "election_timeout": DURATION,
            "heartbeat_timeout": DURATION,
            "leader_lease_timeout": DURATION,
        },
        "server": {"health_interval": DURATION},
    },
    "revision": STR,
    "segment_limit": INT,
    "segment_name_limit": INT,
    "sync_coordinate_interval_min": DURATION,
    "sync_coordinate_rate_target": FLOAT,
    "version": STR,
    "version_prerelease": STR,
    "version_metadata": STR,
    "build_date": STR,
    "license_poll_base_time": DURATION,
    "license_poll_max_time": DURATION,
    "license_update_base_time": DURATION,
    "license_update_max_time": DURATION,
    # Deprecated top-level spellings (renamed by the loader, see RENAMED).
    "acl_agent_master_token": STR,
    "acl_agent_token": STR,
    "acl_datacenter": STR,
    "acl_default_policy": STR,
    "acl_down_policy": STR,
    "acl_enable_key_list_policy": BOOL,
    "acl_master_token": STR,
    "acl_replication_token": STR,
    "acl_token": STR,
    "acl_ttl": DURATION,
    "acl_disabled_ttl": DURATION,
    "acl_enforce_version_8": BOOL,
    "enable_acl_replication": BOOL,
    "ca_file": STR,
    "ca_path": STR,
    "cert_file": STR,
    "key_file": STR,
    "tls_cipher_suites": STR,
    "tls_min_version": STR,
    "tls_prefer_server_cipher_suites": BOOL,
    "verify_incoming": BOOL,
    "verify_incoming_https": BOOL,
    "verify_incoming_rpc": BOOL,
    "verify_outgoing": BOOL,
    "verify_server_hostname": BOOL,
    "non_voting_server": BOOL,
    "raft_boltdb": {"no_freelist_sync": BOOL},
    "ui": BOOL,
    "ui_dir": STR,
    "ui_content_path": STR,
}

# old dotted key -> new dotted key. The new key wins when a source sets both,
# as in Consul; the agent logs the deprecation warning the loader returns.
RENAMED: Final[dict[str, str]] = {
    "acl_agent_master_token": "acl.tokens.agent_recovery",
    "acl.tokens.agent_master": "acl.tokens.agent_recovery",
    "acl_agent_token": "acl.tokens.agent",
    "acl_token": "acl.tokens.default",
    "acl_master_token": "acl.tokens.initial_management",
    "acl.tokens.master": "acl.tokens.initial_management",
    "acl_replication_token": "acl.tokens.replication",
    "enable_acl_replication": "acl.enable_token_replication",
    "acl_datacenter": "primary_datacenter",
    "acl_default_policy": "acl.default_policy",
    "acl_down_policy": "acl.down_policy",
    "acl_ttl": "acl.token_ttl",
    "acl_disabled_ttl": "acl.disabled_ttl",
    "acl_enable_key_list_policy": "acl.enable_key_list_policy",
    "ca_file": "tls.defaults.ca_file",
    "ca_path": "tls.defaults.ca_path",
    "cert_file": "tls.defaults.cert_file",
    "key_file": "tls.defaults.key_file",
    "tls_cipher_suites": "tls.defaults.tls_cipher_suites",
    "tls_min_version": "tls.defaults.tls_min_version",
    "verify_incoming": "tls.defaults.verify_incoming",
    "verify_incoming_https": "tls.https.verify_incoming",
    "verify_incoming_rpc": "tls.internal_rpc.verify_incoming",
    "verify_outgoing": "tls.defaults.verify_outgoing",
    "verify_server_hostname": "tls.internal_rpc.verify_server_hostname",
    "non_voting_server": "read_replica",
    "raft_boltdb.no_freelist_sync": "raft_logstore.boltdb.no_freelist_sync",
    "ui": "ui_config.enabled",
    "ui_dir": "ui_config.dir",
    "ui_content_path": "ui_config.content_path",
}

# Deprecated keys that only produce a warning and have no new home.
DROPPED: Final[frozenset[str]] = frozenset(
    {"acl_enforce_version_8", "tls_prefer_server_cipher_suites"}
)

# Dotted keys (or key prefixes) the agent acts on. Everything else that a
# user sets is reported in AgentConfig.ignored_keys - including a few values
# AgentConfig still carries for later use (gRPC ports, leave drain time).
IMPLEMENTED: Final[frozenset[str]] = frozenset(
    {
        "acl.enabled",
        "acl.default_policy",
        "acl.down_policy",
        "acl.enable_token_persistence",
        "acl.enable_key_list_policy",
        "acl.enable_token_replication",
        "acl.token_ttl",
        "acl.policy_ttl",
        "acl.role_ttl",
        "acl.tokens.initial_management",
        "acl.tokens.agent",
        "acl.tokens.default",
        "acl.tokens.agent_recovery",
        "acl.tokens.replication",
        "acl.tokens.dns",
        "acl.tokens.config_file_service_registration",
        "addresses.dns",
        "addresses.http",
        "addresses.https",
        "autopilot",  # stored by the first leader as the autopilot configuration
        "unix_sockets",  # owner and mode of the HTTP API's unix sockets
        "advertise_addr",
        "advertise_addr_wan",
        "alt_domain",
        "bind_addr",
        "bootstrap",
        "bootstrap_expect",
        "check",
        "checks",
        "check_output_max_size",
        "client_addr",
        "data_dir",
        "datacenter",
        "default_query_time",
        "disable_anonymous_signature",
        "disable_coordinates",
        "disable_host_node_id",
        "disable_remote_exec",
        "disable_update_check",
        "discard_check_output",
        "dns_config",
        "domain",
        "enable_central_service_config",
        "enable_debug",
        "enable_local_script_checks",
        "enable_script_checks",
        "encrypt",
        "encrypt_verify_incoming",
        "encrypt_verify_outgoing",
        "http_config.allow_write_http_from",
        "http_config.block_endpoints",
        "http_config.response_headers",
        "leave_on_terminate",
        "config_entries.bootstrap",
        "connect.enabled",
        "connect.ca_provider",
        "connect.ca_config",
        "limits.kv_max_value_size",
        "limits.txn_max_req_len",
        "log_file",
        "log_json",
        "log_level",
        "max_query_time",
        "node_id",
        "node_meta",
        "node_name",
        "performance.raft_multiplier",
        "pid_file",
        "ports.dns",
        "ports.http",
        "ports.https",
        "ports.serf_lan",
        "ports.serf_wan",
        "ports.server",
        "ports.sidecar_min_port",
        "ports.sidecar_max_port",
        "primary_datacenter",
        "protocol",
        "raft_protocol",
        "raft_snapshot_interval",
        "raft_snapshot_threshold",
        "raft_trailing_logs",
        "reconnect_timeout",
        "reconnect_timeout_wan",
        "recursors",
        "rejoin_after_leave",
        "retry_interval",
        "retry_interval_wan",
        "retry_join",
        "retry_join_wan",
        "retry_max",
        "retry_max_wan",
        "serf_lan",
        "serf_wan",
        "server",
        "service",
        "services",
        "session_ttl_min",
        "skip_leave_on_interrupt",
        "start_join",
        "start_join_wan",
        "tagged_addresses",
        "tls.defaults",
        "tls.internal_rpc",
        "tls.https",
        "ui_config.enabled",
        "ui_config.dir",
        "ui_config.content_path",
    }
)


def is_implemented(dotted: str) -> bool:
    """True when ``dotted`` or one of its parent keys is implemented."""
    parts = dotted.split(".")
    return any(".".join(parts[:n]) in IMPLEMENTED for n in range(1, len(parts) + 1))


def lookup(dotted: str) -> Kind | None:
    """The kind of a dotted key, or None if Consul does not know it."""
    node: Kind = SCHEMA
    for part in dotted.split("."):
        if isinstance(node, ListOf | MapOf):
            node = node.item
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
