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

This module holds the defaults and that order; the steps live beside it, one way down:
``config_flags`` (the flags), ``config_sources`` (layers and the files behind them),
``config_merge`` (checked against the catalogue in ``config_keys``, deprecated spellings
folded, merged), ``config_validate`` (Consul's rules, building the value) and
``config_value`` (``AgentConfig`` and its parts, re-exported here).

Errors::

    ConfigError          any bad flag, file or value
     └── HelpRequested   -h / -help was given
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent import config_keys as keys
from agent.config_errors import ConfigError, HelpRequested
from agent.config_flags import FLAGS, nest, parse_flags
from agent.config_merge import Shaper, View, apply_renames, leaf_paths, merge
from agent.config_sources import Source, config_paths, parse_text, read_source
from agent.config_validate import build
from agent.config_value import (
    ACLConfig,
    ACLTokens,
    Addresses,
    AgentConfig,
    Ports,
    TLSConfig,
    TLSSettings,
)

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
    # Consul 1.2x enables the service mesh on servers unless told otherwise.
    "connect": {"enabled": True, "ca_provider": "consul"},
    "performance": {"leave_drain_time": "5s", "raft_multiplier": 5, "rpc_hold_timeout": "7s"},
    "ports": {
        "dns": 8600,
        "http": 8500,
        "https": -1,
        "grpc": -1,
        "serf_lan": 8301,
        "serf_wan": 8302,
        "server": 8300,
        "sidecar_min_port": 21000,
        "sidecar_max_port": 21255,
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
    flags = parse_flags(argv)
    dev = any(name == "dev" and value for name, value in flags)
    fmt: str | None = None
    paths: list[tuple[str, str]] = []
    head: list[Source] = [Source("default", _copy(_DEFAULTS), user=False)]
    if dev:
        head.append(Source("dev", _copy(_DEV_DEFAULTS), user=False))
    tail: list[Source] = []
    hcl_fragments: list[str] = []
    for name, value in flags:
        flag = FLAGS[name]
        if name == "config-format":
            if value not in ("hcl", "json"):
                raise ConfigError("-config-format: must be either 'hcl' or 'json'")
            fmt = value
        elif name in ("config-file", "config-dir"):
            paths.append((name, value))
        elif name == "hcl":
            hcl_fragments.append(value)
        elif flag.key:
            data = nest(flag.key, [value] if flag.kind == "list" else value)
            src = Source(f"-{name}", data, is_flag=True)
            # list flags go before the files so files append to them (Consul)
            (head if flag.kind == "list" else tail).append(src)
    files = [read_source(p, fmt) for p in config_paths(paths, fmt)]
    middle = [s for s in files if s is not None]
    fragments = [Source("-hcl", parse_text(text, "hcl", "-hcl")) for text in hcl_fragments]
    sources = head + middle + tail + fragments

    merged: dict[str, Any] = {}
    origin: dict[str, Source] = {}
    ignored: dict[str, None] = {}
    warnings: list[str] = []
    for src in sources:
        data = Shaper(src).block(keys.SCHEMA, src.data, "") if not src.is_flag else src.data
        warnings.extend(apply_renames(data))
        if src.user:
            for dotted in leaf_paths(data, keys.SCHEMA):
                if not keys.is_implemented(dotted):
                    ignored.setdefault(dotted, None)
        merge(merged, data, keys.SCHEMA, origin, src)
    view = View(merged, origin)
    return build(view, dev, [s.label for s in middle], list(ignored), warnings)


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))
