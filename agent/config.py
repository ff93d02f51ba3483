"""Agent command line + config files -> :class:`AgentConfig`.

``load_config(argv)`` accepts the flags of ``consul agent`` and its JSON/HCL
config files and returns one frozen value. Precedence follows Consul:

1. built-in defaults, then the ``-dev`` defaults,
2. list-valued flags (``-retry-join`` ...) - merged *before* the files, so the
   files append to them rather than the other way round,
3. config files in the order given (``-config-dir`` expands to its ``*.json``
   and ``*.hcl`` files in lexical order),
4. scalar flags, then ``-hcl`` fragments.

Later sources override scalars, append to lists and merge maps key by key.
Every source remembers where each value came from, so that a
:class:`ConfigError` can name the flag (``-bind: ...``) or the file and key
(``/etc/consul.d/a.json: bind_addr: ...``) at fault, always on one line.

Errors::

    ConfigError          any bad flag, file or value
     └── HelpRequested   -h / -help was given
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import config_keys as keys
from agent import hcl
from agent.config_keys import ListOf, MapOf
from agent.durations import format_duration, parse_duration

__all__ = [
    "ACLConfig",
    "ACLTokens",
    "Addresses",
    "AgentConfig",
    "ConfigError",
    "HelpRequested",
    "Ports",
    "TLSConfig",
    "TLSSettings",
    "load_config",
]


class ConfigError(Exception):
    """A flag, config file or value is invalid. ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class HelpRequested(ConfigError):
    """``-h``/``-help`` was given; the caller prints usage."""


# --------------------------------------------------------------------------
# the value


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
            "HTTPAddrs": [f"{h}:{p}" for h, p in self.http_addrs()],
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


def _listen(
    override: tuple[str, ...] | None, client: tuple[str, ...], port: int
) -> list[tuple[str, int]]:
    if port < 0:
        return []
    return [(host, port) for host in (override if override is not None else client)]


# --------------------------------------------------------------------------
# sources


@dataclass
class _Source:
    """One layer of configuration. ``label`` is what an error message names."""

    label: str
    data: dict[str, Any]
    is_flag: bool = False  # a single flag: errors name the flag, not the key
    user: bool = True  # given by the user (counts for ignored_keys)


def _where(src: _Source, dotted: str) -> str:
    if src.is_flag:
        return src.label
    if not src.user:
        return dotted
    return f"{src.label}: {dotted}"


# --------------------------------------------------------------------------
# flags


@dataclass(frozen=True)
class _Flag:
    kind: str  # bool int str duration list map
    key: str  # dotted config key it sets ("" for special flags)


_FLAGS: dict[str, _Flag] = {
    "advertise": _Flag("str", "advertise_addr"),
    "advertise-wan": _Flag("str", "advertise_addr_wan"),
    "allow-write-http-from": _Flag("list", "http_config.allow_write_http_from"),
    "alt-domain": _Flag("str", "alt_domain"),
    "auto-reload-config": _Flag("bool", "auto_reload_config"),
    "bind": _Flag("str", "bind_addr"),
    "bootstrap": _Flag("bool", "bootstrap"),
    "bootstrap-expect": _Flag("int", "bootstrap_expect"),
    "check_output_max_size": _Flag("int", "check_output_max_size"),
    "client": _Flag("str", "client_addr"),
    "config-dir": _Flag("list", ""),
    "config-file": _Flag("list", ""),
    "config-format": _Flag("str", ""),
    "data-dir": _Flag("str", "data_dir"),
    "datacenter": _Flag("str", "datacenter"),
    "default-query-time": _Flag("duration", "default_query_time"),
    "dev": _Flag("bool", ""),
    "disable-host-node-id": _Flag("bool", "disable_host_node_id"),
    "disable-keyring-file": _Flag("bool", "disable_keyring_file"),
    "dns-port": _Flag("int", "ports.dns"),
    "domain": _Flag("str", "domain"),
    "enable-local-script-checks": _Flag("bool", "enable_local_script_checks"),
    "enable-script-checks": _Flag("bool", "enable_script_checks"),
    "encrypt": _Flag("str", "encrypt"),
    "grpc-port": _Flag("int", "ports.grpc"),
    "grpc-tls-port": _Flag("int", "ports.grpc_tls"),
    "hcl": _Flag("list", ""),
    "http-port": _Flag("int", "ports.http"),
    "https-port": _Flag("int", "ports.https"),
    "join": _Flag("list", "start_join"),
    "join-wan": _Flag("list", "start_join_wan"),
    "log-file": _Flag("str", "log_file"),
    "log-json": _Flag("bool", "log_json"),
    "log-level": _Flag("str", "log_level"),
    "log-rotate-bytes": _Flag("int", "log_rotate_bytes"),
    "log-rotate-duration": _Flag("duration", "log_rotate_duration"),
    "log-rotate-max-files": _Flag("int", "log_rotate_max_files"),
    "max-query-time": _Flag("duration", "max_query_time"),
    "node": _Flag("str", "node_name"),
    "node-id": _Flag("str", "node_id"),
    "node-meta": _Flag("map", "node_meta"),
    "non-voting-server": _Flag("bool", "read_replica"),
    "pid-file": _Flag("str", "pid_file"),
    "primary-gateway": _Flag("list", "primary_gateways"),
    "protocol": _Flag("int", "protocol"),
    "raft-protocol": _Flag("int", "raft_protocol"),
    "read-replica": _Flag("bool", "read_replica"),
    "recursor": _Flag("list", "recursors"),
    "rejoin": _Flag("bool", "rejoin_after_leave"),
    "retry-interval": _Flag("duration", "retry_interval"),
    "retry-interval-wan": _Flag("duration", "retry_interval_wan"),
    "retry-join": _Flag("list", "retry_join"),
    "retry-join-wan": _Flag("list", "retry_join_wan"),
    "retry-max": _Flag("int", "retry_max"),
    "retry-max-wan": _Flag("int", "retry_max_wan"),
    "segment": _Flag("str", "segment"),
    "serf-lan-allowed-cidrs": _Flag("list", "serf_lan_allowed_cidrs"),
    "serf-lan-bind": _Flag("str", "serf_lan"),
    "serf-lan-port": _Flag("int", "ports.serf_lan"),
    "serf-wan-allowed-cidrs": _Flag("list", "serf_wan_allowed_cidrs"),
    "serf-wan-bind": _Flag("str", "serf_wan"),
    "serf-wan-port": _Flag("int", "ports.serf_wan"),
    "server": _Flag("bool", "server"),
    "server-port": _Flag("int", "ports.server"),
    "syslog": _Flag("bool", "enable_syslog"),
    "ui": _Flag("bool", "ui_config.enabled"),
    "ui-content-path": _Flag("str", "ui_config.content_path"),
    "ui-dir": _Flag("str", "ui_config.dir"),
}

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _parse_flags(argv: Sequence[str]) -> list[tuple[str, Any]]:
    """Parse argv like Go's flag package: returns (flag name, typed value) in order."""
    out: list[tuple[str, Any]] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            raise ConfigError(f"unexpected argument: {arg}")
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name.startswith("-") or name.startswith("="):
            raise ConfigError(f"bad flag syntax: {arg}")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in ("h", "help"):
            raise HelpRequested("flag: help requested")
        flag = _FLAGS.get(name)
        if flag is None:
            raise ConfigError(f"flag provided but not defined: -{name}")
        if flag.kind == "bool":
            if value is None:
                out.append((name, True))
            elif value in _TRUE or value in _FALSE:
                out.append((name, value in _TRUE))
            else:
                raise ConfigError(f'invalid boolean value "{value}" for -{name}: parse error')
            continue
        if value is None:
            if i >= len(args):
                raise ConfigError(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        out.append((name, _flag_value(name, flag, value)))
    if i < len(args):
        raise ConfigError(f"unexpected argument: {args[i]}")
    return out


def _flag_value(name: str, flag: _Flag, value: str) -> Any:
    if flag.kind == "int":
        try:
            return int(value, 0)
        except ValueError:
            try:
                return int(value, 10)
            except ValueError:
                raise ConfigError(
                    f'invalid value "{value}" for flag -{name}: parse error'
                ) from None
    if flag.kind == "duration":
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f'invalid value "{value}" for flag -{name}: {exc}') from None
        return value
    if flag.kind == "map":
        key, sep, val = value.partition(":")
        if not sep:
            raise ConfigError(
                f'invalid value "{value}" for flag -{name}: missing \':\' in "{value}"'
            )
        return {key: val}
    return value


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    parts = dotted.split(".")
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


# --------------------------------------------------------------------------
# files


def _config_paths(paths: Sequence[tuple[str, str]], fmt: str | None) -> Iterator[str]:
    """Expand -config-file/-config-dir arguments into the files to read, in order."""
    for flag, path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"-{flag}: cannot read {path}: no such file or directory")
        if not os.path.isdir(path):
            if fmt is None and _format_of(path) is None:
                raise ConfigError(
                    f"file {path} has unknown extension; must be .hcl or .json, "
                    "or config format must be set"
                )
            yield path
            continue
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isdir(full):
                continue  # Consul does not recurse
            if fmt is None and _format_of(name) is None:
                continue
            yield full


def _format_of(path: str) -> str | None:
    if path.endswith(".json"):
        return "json"
    if path.endswith(".hcl"):
        return "hcl"
    return None


def _read_source(path: str, fmt: str | None) -> _Source | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not text.strip():
        return None  # Consul skips empty files
    data = _parse_text(text, fmt or _format_of(path) or "json", path)
    return _Source(path, data)


def _parse_text(text: str, fmt: str, label: str) -> dict[str, Any]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{label}: invalid JSON: {exc}") from None
    else:
        try:
            data = hcl.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{label}: invalid HCL: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: config must be an object at the top level")
    return data


# --------------------------------------------------------------------------
# shape check against the catalogue


_LIST_KINDS = {keys.STRINGS, keys.OBJECTS, keys.SERVICE, keys.CHECK}
# Inside service/check definitions these keys hold lists of objects; every
# other single-element list of one object is an HCL block and is unwrapped.
_DEFINITION_LISTS = {"checks", "upstreams", "paths", "services"}


class _Shaper:
    """Check one source against the catalogue and canonicalise its keys."""

    def __init__(self, src: _Source) -> None:
        self.src = src

    def fail(self, dotted: str, message: str) -> ConfigError:
        return ConfigError(f"{_where(self.src, dotted)}: {message}")

    def block(self, schema: dict[str, keys.Kind], value: Any, path: str) -> dict[str, Any]:
        value = self._one_object(value, path)
        out: dict[str, Any] = {}
        lowered = {k.lower(): k for k in schema}
        for raw_key, item in value.items():
            key = raw_key if raw_key in schema else lowered.get(str(raw_key).lower())
            dotted = f"{path}.{raw_key}" if path else str(raw_key)
            if key is None:
                raise ConfigError(f"{self.src.label}: invalid config key {dotted}")
            if item is None:
                continue  # JSON null: as if the key were absent (Consul)
            dotted = f"{path}.{key}" if path else key
            out[key] = self.value(schema[key], item, dotted)
        return out

    def value(self, kind: keys.Kind, value: Any, path: str) -> Any:
        if isinstance(kind, dict):
            return self.block(kind, value, path)
        if isinstance(kind, ListOf):
            items = value if isinstance(value, list) else [value]
            return [self.block(kind.item, x, f"{path}[{i}]") for i, x in enumerate(items)]
        if isinstance(kind, MapOf):
            named = self._one_object(value, path)
            return {str(k): self.block(kind.item, v, f"{path}.{k}") for k, v in named.items()}
        if kind not in _LIST_KINDS and isinstance(value, list) and len(value) == 1:
            value = value[0]  # Consul's weak decode: [x] -> x (HCL blocks)
        return self.leaf(kind, value, path)

    def _one_object(self, value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            merged: dict[str, Any] = {}
            for part in value:
                merged.update(part)
            value = merged
        if not isinstance(value, dict):
            raise self.fail(path, f"expected object, got {_type_name(value)}")
        return value

    def leaf(self, kind: str, value: Any, path: str) -> Any:
        checks: dict[str, Callable[[Any], bool]] = {
            keys.STR: lambda v: isinstance(v, str),
            keys.BOOL: lambda v: isinstance(v, bool),
            keys.INT: lambda v: (
                (isinstance(v, int) and not isinstance(v, bool))
                or (isinstance(v, float) and v.is_integer())
            ),
            keys.FLOAT: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            keys.DURATION: lambda v: isinstance(v, str),
            keys.STRINGS: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            keys.STRMAP: lambda v: (
                isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            ),
            keys.ANY: lambda v: True,
        }
        if kind == keys.STRMAP:
            value = self._one_object(value, path) if isinstance(value, list) else value
        if kind in (keys.OBJECTS, keys.SERVICE, keys.CHECK):
            return self.definitions(value, path)
        if kind == keys.ANY and isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not checks[kind](value):
            raise self.fail(path, f"expected {kind}, got {_type_name(value)}")
        if kind == keys.INT:
            return int(value)
        if kind == keys.DURATION:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise self.fail(path, str(exc)) from None
        return value

    def definitions(self, value: Any, path: str) -> list[dict[str, Any]]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, dict) for x in items):
            raise self.fail(path, "expected an object or a list of objects")
        return [_unwrap_blocks(x) for x in items]


def _unwrap_blocks(value: Any, key: str = "") -> Any:
    """Turn HCL's [ {block} ] into {block} inside service/check definitions."""
    if isinstance(value, dict):
        return {k: _unwrap_blocks(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        items = [_unwrap_blocks(v) for v in value]
        plural = key.lower().replace("_", "") in _DEFINITION_LISTS
        if len(items) == 1 and isinstance(items[0], dict) and not plural:
            return items[0]
        return items
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------
# deprecated spellings


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _pop(data: dict[str, Any], dotted: str) -> Any:
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    return node.pop(parts[-1], None)


def _apply_renames(data: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    for old, new in keys.RENAMED.items():
        value = _pop(data, old)
        if value is None:
            continue
        if _get(data, new) is None:
            _set(data, new, value)
        warnings.append(f"The '{old}' field is deprecated. Use the '{new}' field instead.")
        if old == "acl_replication_token":
            _set(data, "acl.enable_token_replication", True)
        if old == "acl_datacenter":
            _set(data, "acl.enabled", True)
    for old in sorted(keys.DROPPED):
        if _pop(data, old) is not None:
            warnings.append(f"config key {old!r} is deprecated and should be removed")
    # a single service/check block joins the list, as Consul does
    for single, plural in (("service", "services"), ("check", "checks")):
        if single in data:
            data[plural] = data.get(plural, []) + data.pop(single)
    return warnings


def _leaf_paths(data: dict[str, Any], schema: keys.Kind, prefix: str = "") -> Iterator[str]:
    """Dotted paths of everything a source sets (blocks are descended)."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        kind = schema.get(key) if isinstance(schema, dict) else None
        if isinstance(kind, dict) and isinstance(value, dict):
            yield from _leaf_paths(value, kind, dotted + ".")
        else:
            yield dotted


# --------------------------------------------------------------------------
# merging


def _merge(
    dst: dict[str, Any],
    src: dict[str, Any],
    schema: dict[str, keys.Kind],
    origin: dict[str, _Source],
    source: _Source,
    prefix: str = "",
) -> None:
    for key, value in src.items():
        dotted = prefix + key
        kind = schema.get(key)
        if isinstance(kind, dict):
            _merge(dst.setdefault(key, {}), value, kind, origin, source, dotted + ".")
            continue
        if isinstance(kind, ListOf) or (isinstance(kind, str) and kind in _LIST_KINDS):
            dst[key] = list(dst.get(key, [])) + list(value)
        elif (isinstance(kind, MapOf) or kind in (keys.STRMAP, keys.ANY)) and isinstance(
            value, dict
        ):
            base = dst.get(key)
            dst[key] = {**(base if isinstance(base, dict) else {}), **value}
        else:
            dst[key] = value
        origin[dotted] = source


# --------------------------------------------------------------------------
# defaults

_DEFAULTS: dict[str, Any] = {
    "acl": {
        "default_policy": "allow",
        "down_policy": "extend-cache",
        "token_ttl": "30s",
        "policy_ttl": "30s",
        "role_ttl": "30s",
    },
    "bind_addr": "0.0.0.0",
    "bootstrap": False,
    "bootstrap_expect": 0,
    "check_output_max_size": 4096,
    "client_addr": "127.0.0.1",
    "datacenter": "dc1",
    "default_query_time": "300s",
    "disable_host_node_id": True,
    "disable_remote_exec": True,
    "domain": "consul.",
    "encrypt_verify_incoming": True,
    "encrypt_verify_outgoing": True,
    "log_level": "INFO",
    "max_query_time": "600s",
    "protocol": 2,
    "raft_protocol": 3,
    "raft_snapshot_threshold": 16384,
    "raft_snapshot_interval": "30s",
    "raft_trailing_logs": 10240,
    "reconnect_timeout": "72h",
    "reconnect_timeout_wan": "72h",
    "retry_interval": "30s",
    "retry_interval_wan": "30s",
    "retry_max": 0,
    "retry_max_wan": 0,
    "server": False,
    "session_ttl_min": "10s",
    "dns_config": {
        "allow_stale": True,
        "a_record_limit": 0,
        "udp_answer_limit": 3,
        "max_stale": "87600h",
        "recursor_timeout": "2s",
        "node_ttl": "0s",
        "only_passing": False,
        "enable_truncate": False,
        "disable_compression": False,
        "use_cache": False,
    },
    "limits": {"kv_max_value_size": 512 * 1024, "txn_max_req_len": 512 * 1024},
    "performance": {"leave_drain_time": "5s", "raft_multiplier": 5, "rpc_hold_timeout": "7s"},
    "ports": {
        "dns": 8600,
        "http": 8500,
        "https": -1,
        "grpc": -1,
        "serf_lan": 8301,
        "serf_wan": 8302,
        "server": 8300,
    },
    "ui_config": {"enabled": False, "content_path": "/ui/"},
}

_DEV_DEFAULTS: dict[str, Any] = {
    "bind_addr": "127.0.0.1",
    "client_addr": "127.0.0.1",
    "disable_anonymous_signature": True,
    "enable_debug": True,
    "ui_config": {"enabled": True},
    "log_level": "DEBUG",
    "server": True,
    "performance": {"raft_multiplier": 1},
    "ports": {"grpc": 8502},
}


# --------------------------------------------------------------------------
# load_config


def load_config(argv: list[str], *, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Build the agent's configuration from ``consul agent``-style arguments.

    :param argv: the arguments after ``agent`` (``["-dev", "-node=n1"]``).
    :param environ: reserved; Consul's agent takes no settings from the
        environment, so neither do we (tests pass ``{}``).
    :raises ConfigError: with a one-line message naming the flag or file:key.
    """
    del environ
    flags = _parse_flags(argv)
    dev = any(name == "dev" and value for name, value in flags)
    fmt: str | None = None
    paths: list[tuple[str, str]] = []
    head: list[_Source] = [_Source("default", _copy(_DEFAULTS), user=False)]
    if dev:
        head.append(_Source("dev", _copy(_DEV_DEFAULTS), user=False))
    tail: list[_Source] = []
    hcl_fragments: list[str] = []
    for name, value in flags:
        flag = _FLAGS[name]
        if name == "config-format":
            if value not in ("hcl", "json"):
                raise ConfigError("-config-format: must be either 'hcl' or 'json'")
            fmt = value
        elif name in ("config-file", "config-dir"):
            paths.append((name, value))
        elif name == "hcl":
            hcl_fragments.append(value)
        elif flag.key:
            data = _nest(flag.key, [value] if flag.kind == "list" else value)
            src = _Source(f"-{name}", data, is_flag=True)
            # list flags go before the files so files append to them (Consul)
            (head if flag.kind == "list" else tail).append(src)
    files = [_read_source(p, fmt) for p in _config_paths(paths, fmt)]
    middle = [s for s in files if s is not None]
    fragments = [_Source("-hcl", _parse_text(text, "hcl", "-hcl")) for text in hcl_fragments]
    sources = head + middle + tail + fragments

    merged: dict[str, Any] = {}
    origin: dict[str, _Source] = {}
    ignored: dict[str, None] = {}
    warnings: list[str] = []
    for src in sources:
        data = _Shaper(src).block(keys.SCHEMA, src.data, "") if not src.is_flag else src.data
        warnings.extend(_apply_renames(data))
        if src.user:
            for dotted in _leaf_paths(data, keys.SCHEMA):
                if not keys.is_implemented(dotted):
                    ignored.setdefault(dotted, None)
        _merge(merged, data, keys.SCHEMA, origin, src)
    view = _View(merged, origin)
    return _build(view, dev, [s.label for s in middle], list(ignored), warnings)


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))


class _View:
    """Merged values plus where each came from, for error messages."""

    def __init__(self, merged: dict[str, Any], origin: dict[str, _Source]) -> None:
        self.merged = merged
        self.origin = origin

    def get(self, dotted: str, default: Any = None) -> Any:
        value = _get(self.merged, dotted)
        return default if value is None else value

    def is_set(self, dotted: str) -> bool:
        src = self.origin.get(dotted)
        return src is not None and src.user

    def where(self, dotted: str) -> str:
        src = self.origin.get(dotted)
        return dotted if src is None else _where(src, dotted)

    def fail(self, dotted: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(dotted)}: {message}")

    def seconds(self, dotted: str) -> float:
        value = self.get(dotted)
        return 0.0 if value is None else parse_duration(value)


# --------------------------------------------------------------------------
# building and validating the value

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


def _build(
    v: _View, dev: bool, sources: list[str], ignored: list[str], warnings: list[str]
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


def _datacenter(v: _View, key: str) -> str:
    value = v.get(key)
    if value is None:
        return ""
    lowered = str(value).lower()
    if not lowered:
        raise v.fail(key, "cannot be empty")
    if not _DC_RE.match(lowered):
        raise v.fail(key, f'cannot be "{lowered}". Please use only [a-z0-9-_].')
    return lowered


def _check_data_dir(v: _View, data_dir: str | None, server: bool, dev: bool) -> None:
    if not data_dir:
        if server and not dev:
            raise ConfigError("data_dir cannot be empty")
        return
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise v.fail("data_dir", f'"{data_dir}" is not a directory')


def _check_bootstrap(v: _View, server: bool, bootstrap: bool, dev: bool) -> None:
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


def _ports(v: _View, server: bool) -> Ports:
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
    return Ports(**values)


def _valid_ip(text: str) -> bool:
    if "{{" in text:  # go-sockaddr template: resolved by the agent
        return True
    try:
        ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    except ValueError:
        return False
    return True


def _ip(v: _View, dotted: str) -> str | None:
    value = v.get(dotted)
    if value is None or value == "":
        return None
    value = value.strip()
    if not _valid_ip(value):
        raise v.fail(dotted, f"invalid ip address: {value}")
    return value


def _ips(v: _View, dotted: str) -> tuple[str, ...] | None:
    """A space-separated list of IPs (or unix:// sockets), as client_addr allows."""
    value = v.get(dotted)
    if value is None:
        return None
    addrs = tuple(value.split())
    for addr in addrs:
        if not addr.startswith("unix://") and not _valid_ip(addr):
            raise v.fail(dotted, f"invalid ip address: {addr}")
    return addrs


def _advertise(v: _View, dotted: str, what: str) -> str | None:
    value = _ip(v, dotted)
    if (
        value is not None
        and "{{" not in value
        and ipaddress.ip_address(value.strip("[]")).is_unspecified
    ):
        raise v.fail(dotted, f"{what} cannot be 0.0.0.0, :: or [::]")
    return value


def _node_id(v: _View) -> str | None:
    value = v.get("node_id")
    if not value:
        return None
    if not _UUID_RE.match(value):
        raise v.fail("node_id", f'invalid node ID "{value}": must be a UUID')
    return value.lower()


def _log_level(v: _View) -> str:
    raw = str(v.get("log_level"))
    level = _LOG_LEVELS.get(raw.lower())
    if level is None:
        raise v.fail(
            "log_level", f'invalid log level "{raw}" (valid: trace, debug, info, warn, error)'
        )
    return level


def _encrypt(v: _View) -> str | None:
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


def _tls(v: _View) -> TLSConfig:
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


def _acl(v: _View) -> ACLConfig:
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


def _node_meta(v: _View) -> dict[str, str]:
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


def _raft_protocol(v: _View) -> int:
    value = int(v.get("raft_protocol"))
    if value != 3:
        raise v.fail("raft_protocol", f"raft_protocol version {value} is not supported, only 3")
    return value


def _raft_multiplier(v: _View) -> int:
    value = int(v.get("performance.raft_multiplier"))
    if not 1 <= value <= 10:
        raise v.fail(
            "performance.raft_multiplier",
            f"cannot be {value}. Must be between 1 and 10",
        )
    return value


def _non_negative(v: _View, dotted: str) -> int:
    value = int(v.get(dotted, 0))
    if value < 0:
        raise v.fail(dotted, f"cannot be {value}. Must be greater than or equal to zero")
    return value


def _positive(v: _View, dotted: str) -> int:
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


def _recursors(v: _View) -> tuple[str, ...]:
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


def _dns_config(v: _View) -> dict[str, Any]:
    dns = dict(v.get("dns_config", {}))
    for key in ("udp_answer_limit", "a_record_limit"):
        if int(dns.get(key, 0)) < 0:
            raise v.fail(
                f"dns_config.{key}",
                f"cannot be {dns[key]}. Must be greater than or equal to zero",
            )
    return dns
