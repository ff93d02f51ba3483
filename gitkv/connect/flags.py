"""`gitkv connect proxy` flags, parsed the way Go's `flag` package parses `consul connect proxy`.

`-name value`, `-name=value` and `--name` spellings; bool flags take no value (or `=true`);
parsing stops at `--` or the first argument that is not a flag. Messages are Go's
(`flag provided but not defined: -x`). `CONNECT_PROXY_ID` / `CONNECT_SIDECAR_FOR` fill their
flags when absent, as in Consul; the HTTP flags fall back to the `CONSUL_HTTP_*` variables
later, when `gitkv.client.ConsulSettings` resolves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gitkv.connect.errors import UsageError

__all__ = ["HTTP_FLAGS", "ProxyFlags", "UpstreamFlag", "parse_proxy_flags", "parse_upstream"]


@dataclass(frozen=True)
class UpstreamFlag:
    """One `-upstream name[.service|.query]:[addr:]port`."""

    destination: str
    bind_port: int
    bind_address: str = ""
    destination_type: str = "service"


@dataclass(frozen=True)
class ProxyFlags:
    proxy_id: str = ""
    sidecar_for: str = ""
    service: str = ""
    service_addr: str = ""
    listen: str = ""
    upstreams: tuple[UpstreamFlag, ...] = ()
    log_level: str = "INFO"
    log_json: bool = False
    http: Mapping[str, str] = field(default_factory=dict)  # flag name -> value, as given
    help: bool = False


# The HTTP client flags every consul command takes, and the variable each one overrides.
HTTP_FLAGS = {
    "http-addr": "CONSUL_HTTP_ADDR",
    "token": "CONSUL_HTTP_TOKEN",
    "token-file": "CONSUL_HTTP_TOKEN_FILE",
    "ca-file": "CONSUL_CACERT",
    "client-cert": "CONSUL_CLIENT_CERT",
    "client-key": "CONSUL_CLIENT_KEY",
}
_STRINGS = {
    "proxy-id",
    "sidecar-for",
    "service",
    "service-addr",
    "listen",
    "log-level",
    *HTTP_FLAGS,
}
_BOOLS = {"log-json"}
_REPEATED = {"upstream"}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _int(text: str) -> int:
    """strconv.ParseInt(s, 0, 0): decimal, or 0x / 0o / 0b prefixed."""
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def parse_upstream(value: str) -> UpstreamFlag:
    """`db:8181`, `db:127.0.0.10:8282`, `db.service:8181`, `q.query:9000`."""
    name, sep, rest = value.partition(":")
    if not sep:
        raise ValueError(f"Upstream value should be name:addr in {value!r}")
    address = ""
    if ":" in rest:
        address, _, rest = rest.partition(":")
    kind = "service"
    if "." in name:
        name, _, suffix = name.partition(".")
        if suffix == "query":
            kind = "prepared_query"
        elif suffix not in ("", "service"):
            raise ValueError(f"Upstream type must be blank, 'service', or 'query'. Got: {suffix!r}")
    return UpstreamFlag(name, _int(rest), address, kind)


def _split(arg: str) -> tuple[str, str | None]:
    body = arg[2:] if arg.startswith("--") else arg[1:]
    if not body or body[0] in "-=":
        raise UsageError(f"bad flag syntax: {arg}")
    name, eq, value = body.partition("=")
    return name, (value if eq else None)


def parse_proxy_flags(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[ProxyFlags, list[str]]:
    """The flags in `args` and the arguments left after them (Consul refuses any)."""
    env = env or {}
    strings: dict[str, str] = {}
    bools: dict[str, bool] = {}
    upstreams: dict[str, UpstreamFlag] = {}  # a map in Consul: the last flag for a name wins
    wants_help = False
    rest = list(args)
    while rest:
        arg = rest[0]
        if len(arg) < 2 or not arg.startswith("-"):
            break
        rest.pop(0)
        if arg == "--":
            break
        name, value = _split(arg)
        if name in ("h", "help"):
            wants_help = True
        elif name in _BOOLS:
            if value is None or value in _TRUE:
                bools[name] = True
            elif value in _FALSE:
                bools[name] = False
            else:
                raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
        elif name in _STRINGS or name in _REPEATED:
            if value is None:
                if not rest:
                    raise UsageError(f"flag needs an argument: -{name}")
                value = rest.pop(0)
            if name in _REPEATED:
                try:
                    upstream = parse_upstream(value)
                except ValueError as exc:
                    raise UsageError(f'invalid value "{value}" for flag -{name}: {exc}') from None
                upstreams[upstream.destination] = upstream
            else:
                strings[name] = value
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
    flags = ProxyFlags(
        proxy_id=strings.get("proxy-id") or env.get("CONNECT_PROXY_ID", ""),
        sidecar_for=strings.get("sidecar-for") or env.get("CONNECT_SIDECAR_FOR", ""),
        service=strings.get("service", ""),
        service_addr=strings.get("service-addr", ""),
        listen=strings.get("listen", ""),
        upstreams=tuple(upstreams[k] for k in sorted(upstreams)),
        log_level=strings.get("log-level", "INFO"),
        log_json=bools.get("log-json", False),
        http={k: strings[k] for k in HTTP_FLAGS if k in strings},
        help=wants_help,
    )
    return flags, rest
