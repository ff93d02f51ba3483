"""What a proxy runs, as plain values: its service, the public listener and the upstreams.

Two sources, as in `consul connect proxy`: the flags (`-service`, `-listen`, `-service-addr`,
`-upstream`), or a `connect-proxy` registration on the local agent (`-sidecar-for`,
`-proxy-id`), read from `GET /v1/agent/service/<id>`: its `Address`/`Port` are the public
listener, `Proxy.LocalServiceAddress`/`LocalServicePort` the application, `Proxy.Upstreams`
the upstream listeners, and `Proxy.Config` may set `local_connect_timeout_ms` and
`handshake_timeout_ms`. Defaults are Consul's: listen on 0.0.0.0, upstreams on 127.0.0.1,
1 s to reach the application, 10 s for a TLS handshake, 10 s to reach an upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitkv.connect.errors import ConfigError
from gitkv.connect.flags import ProxyFlags

__all__ = [
    "SIDECAR_SUFFIX",
    "ProxyConfig",
    "PublicListener",
    "Upstream",
    "find_sidecar",
    "from_flags",
    "from_registration",
    "sidecar_proxy_id",
    "split_host_port",
]

SIDECAR_SUFFIX = "-sidecar-proxy"


@dataclass(frozen=True)
class Upstream:
    """A plain TCP listener on this host whose connections go to `destination` over mTLS."""

    destination: str
    bind_port: int
    bind_address: str = "127.0.0.1"
    datacenter: str = ""  # "" = the agent's own
    namespace: str = "default"
    connect_timeout: float = 10.0

    def __str__(self) -> str:
        return f"{self.bind_address}:{self.bind_port}->service:{self.namespace}/{self.destination}"


@dataclass(frozen=True)
class PublicListener:
    """The mTLS listener for inbound connections, and the application behind it."""

    bind_address: str
    bind_port: int
    local_address: str
    local_port: int
    local_connect_timeout: float = 1.0
    handshake_timeout: float = 10.0


@dataclass(frozen=True)
class ProxyConfig:
    service: str  # the service *name* this proxy speaks for (its leaf certificate's)
    public: PublicListener | None = None
    upstreams: tuple[Upstream, ...] = ()
    proxy_id: str = ""  # the registration it came from, if any


def split_host_port(text: str, what: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (Go's net.SplitHostPort plus a port check)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ConfigError(f"{what} {text!r}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{what} {text!r}: too many colons in address")
    try:
        number = int(port, 10)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: invalid port {port!r}") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{what} {text!r}: port out of range")
    return host, number


def from_flags(flags: ProxyFlags) -> ProxyConfig:
    if not flags.service:
        raise ConfigError(
            "-service or -proxy-id must be specified so that proxy can configure itself."
        )
    public = None
    if flags.listen:
        host, port = split_host_port(flags.listen, "-listen")
        if not flags.service_addr:
            raise ConfigError(
                "-service-addr must be specified with -listen so the proxy knows the backend "
                "service address."
            )
        local_host, local_port = split_host_port(flags.service_addr, "-service-addr")
        public = PublicListener(host or "0.0.0.0", port, local_host or "127.0.0.1", local_port)
    upstreams = []
    for flag in flags.upstreams:
        if flag.destination_type != "service":
            raise ConfigError(
                f"upstream {flag.destination}: prepared query upstreams are not supported"
            )
        upstreams.append(
            Upstream(flag.destination, flag.bind_port, flag.bind_address or "127.0.0.1")
        )
    return ProxyConfig(flags.service, public, tuple(upstreams))


def sidecar_proxy_id(service_id: str) -> str:
    return service_id + SIDECAR_SUFFIX


def _milliseconds(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    if value in (None, "", 0):
        return default
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        raise ConfigError(f"Proxy.Config.{key}: not a number of milliseconds: {value!r}") from None


def _upstream(raw: Mapping[str, Any]) -> Upstream:
    name = str(raw.get("DestinationName") or "")
    kind = raw.get("DestinationType") or "service"
    if kind != "service":
        raise ConfigError(f"upstream {name}: destination type {kind!r} is not supported")
    if raw.get("LocalBindSocketPath"):
        raise ConfigError(f"upstream {name}: unix socket upstreams are not supported")
    port = int(raw.get("LocalBindPort") or 0)
    if not name or port <= 0:
        raise ConfigError(f"upstream {raw!r}: needs DestinationName and LocalBindPort")
    config = raw.get("Config") or {}
    return Upstream(
        destination=name,
        bind_port=port,
        bind_address=str(raw.get("LocalBindAddress") or "127.0.0.1"),
        datacenter=str(raw.get("Datacenter") or ""),
        namespace=str(raw.get("DestinationNamespace") or "default"),
        connect_timeout=_milliseconds(config, "connect_timeout_ms", 10.0),
    )


def from_registration(service: Mapping[str, Any]) -> ProxyConfig:
    """The config of a `connect-proxy` registration (`GET /v1/agent/service/<id>`)."""
    ident = str(service.get("ID") or "")
    if service.get("Kind") != "connect-proxy":
        raise ConfigError(f"service {ident!r} is not a valid connect proxy (Kind connect-proxy)")
    proxy = service.get("Proxy") or {}
    name = str(proxy.get("DestinationServiceName") or "")
    if not name:
        raise ConfigError(
            f"service {ident!r} has no Proxy.DestinationServiceName: the agent did not return "
            "the proxy's configuration"
        )
    config = proxy.get("Config") or {}
    public = None
    port = int(service.get("Port") or 0)
    if port > 0:
        local_port = int(proxy.get("LocalServicePort") or 0)
        if local_port <= 0:
            raise ConfigError(f"service {ident!r}: Proxy.LocalServicePort is not set")
        public = PublicListener(
            bind_address=str(service.get("Address") or "0.0.0.0"),
            bind_port=port,
            local_address=str(proxy.get("LocalServiceAddress") or "127.0.0.1"),
            local_port=local_port,
            local_connect_timeout=_milliseconds(config, "local_connect_timeout_ms", 1.0),
            handshake_timeout=_milliseconds(config, "handshake_timeout_ms", 10.0),
        )
    upstreams = tuple(_upstream(u) for u in proxy.get("Upstreams") or ())
    return ProxyConfig(name, public, upstreams, proxy_id=ident)


def find_sidecar(services: Mapping[str, Mapping[str, Any]], sidecar_for: str) -> str:
    """The one local connect-proxy whose Proxy.DestinationServiceID is `sidecar_for`."""
    found = sorted(
        ident
        for ident, svc in services.items()
        if svc.get("Kind") == "connect-proxy"
        and str((svc.get("Proxy") or {}).get("DestinationServiceID") or "").lower() == sidecar_for
    )
    if not found:
        raise ConfigError(f"No sidecar proxy registered for {sidecar_for}")
    if len(found) > 1:
        raise ConfigError(
            f"More than one sidecar proxy registered for {sidecar_for}.\n"
            f"    Start proxy with -proxy-id and one of the following IDs: {', '.join(found)}"
        )
    return found[0]
