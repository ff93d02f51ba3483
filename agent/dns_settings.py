"""The agent config as the DNS resolver reads it: `DNSSettings`, built once per (re)load.

Durations arrive as Consul spells them (`"10s"`, or bare numbers of seconds) and leave as whole
seconds, the unit of a record's TTL; recursors leave as `(host, port)` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from agent.config import AgentConfig

__all__ = ["DNSSettings", "recursor_address"]


@dataclass(frozen=True)
class DNSSettings:
    """The agent config as the resolver needs it (durations already in whole seconds)."""

    datacenter: str = "dc1"
    domain: str = "consul."
    alt_domain: str = ""
    node_name: str = ""
    node_ttl: int = 0
    service_ttl: dict[str, int] = field(default_factory=dict)
    only_passing: bool = False
    udp_answer_limit: int = 3
    a_record_limit: int = 0
    enable_truncate: bool = False
    node_meta_txt: bool = True
    soa_refresh: int = 3600
    soa_retry: int = 600
    soa_expire: int = 86400
    soa_min_ttl: int = 0
    recursors: tuple[tuple[str, int], ...] = ()
    recursor_timeout: float = 2.0
    recursor_random: bool = False

    @classmethod
    def from_config(cls, config: AgentConfig) -> DNSSettings:
        raw = dict(config.dns_config or {})
        soa = dict(raw.get("soa") or {})
        return cls(
            datacenter=config.datacenter.lower(),
            domain=_fqdn(config.domain),
            alt_domain=_fqdn(config.alt_domain) if config.alt_domain else "",
            node_name=config.node_name,
            node_ttl=_seconds(raw.get("node_ttl", 0)),
            service_ttl={k: _seconds(v) for k, v in (raw.get("service_ttl") or {}).items()},
            only_passing=bool(raw.get("only_passing", False)),
            udp_answer_limit=int(raw.get("udp_answer_limit", 3)),
            a_record_limit=int(raw.get("a_record_limit", 0)),
            enable_truncate=bool(raw.get("enable_truncate", False)),
            node_meta_txt=bool(raw.get("enable_additional_node_meta_txt", True)),
            soa_refresh=int(soa.get("refresh", 3600)),
            soa_retry=int(soa.get("retry", 600)),
            soa_expire=int(soa.get("expire", 86400)),
            soa_min_ttl=int(soa.get("min_ttl", 0)),
            recursors=tuple(recursor_address(r) for r in config.recursors),
            recursor_timeout=float(_seconds_float(raw.get("recursor_timeout", "2s")) or 2.0),
            recursor_random=raw.get("recursor_strategy", "sequential") == "random",
        )

    def ttl_for_service(self, service: str) -> int:
        """Exact `service_ttl` key first, else the longest `prefix*` key that matches."""
        if service in self.service_ttl:
            return self.service_ttl[service]
        best, ttl = -1, 0
        for key, value in self.service_ttl.items():
            if key.endswith("*") and service.startswith(key[:-1]) and len(key) > best:
                best, ttl = len(key), value
        return ttl


def _fqdn(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _seconds_float(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value))
    except DurationError:
        return 0.0


def _seconds(value: Any) -> int:
    return max(0, int(_seconds_float(value)))


def recursor_address(text: str) -> tuple[str, int]:
    """`ip`, `ip:port`, `[v6]:port` or a bare IPv6 address; port 53 when none is given."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53
