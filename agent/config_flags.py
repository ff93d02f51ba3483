"""The flags of `consul agent`, read the way Go's flag package reads them.

`-name=value` or `-name value` (one dash or two), booleans as `-name` or `-name=false`, and
Go's messages for what it refuses. Each flag names the dotted config key it sets, so that
flags and files merge as one tree; flags with no key (`-dev`, `-config-dir`, `-hcl`) steer
loading itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.config_errors import ConfigError, HelpRequested
from agent.durations import parse_duration

__all__ = [
    "FLAGS",
    "Flag",
    "nest",
    "parse_flags",
]


@dataclass(frozen=True)
class Flag:
    kind: str  # bool int str duration list map
    key: str  # dotted config key it sets ("" for special flags)


FLAGS: dict[str, Flag] = {
    "advertise": Flag("str", "advertise_addr"),
    "advertise-wan": Flag("str", "advertise_addr_wan"),
    "allow-write-http-from": Flag("list", "http_config.allow_write_http_from"),
    "alt-domain": Flag("str", "alt_domain"),
    "auto-reload-config": Flag("bool", "auto_reload_config"),
    "bind": Flag("str", "bind_addr"),
    "bootstrap": Flag("bool", "bootstrap"),
    "bootstrap-expect": Flag("int", "bootstrap_expect"),
    "check_output_max_size": Flag("int", "check_output_max_size"),
    "client": Flag("str", "client_addr"),
    "config-dir": Flag("list", ""),
    "config-file": Flag("list", ""),
    "config-format": Flag("str", ""),
    "data-dir": Flag("str", "data_dir"),
    "datacenter": Flag("str", "datacenter"),
    "default-query-time": Flag("duration", "default_query_time"),
    "dev": Flag("bool", ""),
    "disable-host-node-id": Flag("bool", "disable_host_node_id"),
    "disable-keyring-file": Flag("bool", "disable_keyring_file"),
    "dns-port": Flag("int", "ports.dns"),
    "domain": Flag("str", "domain"),
    "enable-local-script-checks": Flag("bool", "enable_local_script_checks"),
    "enable-script-checks": Flag("bool", "enable_script_checks"),
    "encrypt": Flag("str", "encrypt"),
    "grpc-port": Flag("int", "ports.grpc"),
    "grpc-tls-port": Flag("int", "ports.grpc_tls"),
    "hcl": Flag("list", ""),
    "http-port": Flag("int", "ports.http"),
    "https-port": Flag("int", "ports.https"),
    "join": Flag("list", "start_join"),
    "join-wan": Flag("list", "start_join_wan"),
    "log-file": Flag("str", "log_file"),
    "log-json": Flag("bool", "log_json"),
    "log-level": Flag("str", "log_level"),
    "log-rotate-bytes": Flag("int", "log_rotate_bytes"),
    "log-rotate-duration": Flag("duration", "log_rotate_duration"),
    "log-rotate-max-files": Flag("int", "log_rotate_max_files"),
    "max-query-time": Flag("duration", "max_query_time"),
    "node": Flag("str", "node_name"),
    "node-id": Flag("str", "node_id"),
    "node-meta": Flag("map", "node_meta"),
    "non-voting-server": Flag("bool", "read_replica"),
    "pid-file": Flag("str", "pid_file"),
    "primary-gateway": Flag("list", "primary_gateways"),
    "protocol": Flag("int", "protocol"),
    "raft-protocol": Flag("int", "raft_protocol"),
    "read-replica": Flag("bool", "read_replica"),
    "recursor": Flag("list", "recursors"),
    "rejoin": Flag("bool", "rejoin_after_leave"),
    "retry-interval": Flag("duration", "retry_interval"),
    "retry-interval-wan": Flag("duration", "retry_interval_wan"),
    "retry-join": Flag("list", "retry_join"),
    "retry-join-wan": Flag("list", "retry_join_wan"),
    "retry-max": Flag("int", "retry_max"),
    "retry-max-wan": Flag("int", "retry_max_wan"),
    "segment": Flag("str", "segment"),
    "serf-lan-allowed-cidrs": Flag("list", "serf_lan_allowed_cidrs"),
    "serf-lan-bind": Flag("str", "serf_lan"),
    "serf-lan-port": Flag("int", "ports.serf_lan"),
    "serf-wan-allowed-cidrs": Flag("list", "serf_wan_allowed_cidrs"),
    "serf-wan-bind": Flag("str", "serf_wan"),
    "serf-wan-port": Flag("int", "ports.serf_wan"),
    "server": Flag("bool", "server"),
    "server-port": Flag("int", "ports.server"),
    "syslog": Flag("bool", "enable_syslog"),
    "ui": Flag("bool", "ui_config.enabled"),
    "ui-content-path": Flag("str", "ui_config.content_path"),
    "ui-dir": Flag("str", "ui_config.dir"),
}

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_flags(argv: Sequence[str]) -> list[tuple[str, Any]]:
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
        flag = FLAGS.get(name)
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


def _flag_value(name: str, flag: Flag, value: str) -> Any:
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


def nest(dotted: str, value: Any) -> dict[str, Any]:
    parts = dotted.split(".")
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out
