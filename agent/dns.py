"""The DNS interface's answers: a query message in, a response message out.

Everything here is pure apart from reading the catalog through the small async `Catalog`
protocol, so the whole behaviour is testable with `MemoryCatalog` and no sockets; the asyncio
listeners, the store/remote catalog adapters and recursor forwarding live in
`agent.dns_server`.

The behaviour is Consul's (agent/dns.go, v1 resolver):

- `<node>.node[.<dc>].<domain>`: A/AAAA (or a CNAME for a hostname address) plus node meta as
  TXT (in the answer for TXT/ANY, else in the additional section). Other query types get an
  empty NOERROR.
- `[<tag>.]<svc>.service[.<dc>].<domain>` and RFC 2782 `_<svc>._<tag>.service...` (`_tcp` = no
  tag filter; for SRV the `service` label may even be left out): instances with a critical
  check are dropped (also warning ones under `only_passing`), shuffled, one A/AAAA per address.
  SRV answers are priority 1, weight from `Weights` by aggregated health, target the node's
  canonical name, or `<hex-ip>.addr.<dc>.<domain>` when the service has its own address, with
  the target's address record in the additional section.
- `<hex-ip>.addr.<domain>`: the decoded address. `<name>.query...`: prepared queries are not
  supported by this agent, so every one is "not found", which Consul answers NXDOMAIN.
- PTR under `arpa.`: node addresses first, then service addresses.
- No matching name: NXDOMAIN; a name that exists without records of the type asked for
  (NODATA): NOERROR. Both carry the zone's SOA in the authority section.
- Names outside the domain: forwarded to `recursors` when configured, else REFUSED (what the
  Go DNS mux answers when no handler matches).
- UDP answers are cut to `min(8, udp_answer_limit)` records for a plain 512-byte client and
  to the datagram size in any case; TC is set only with `enable_truncate`. TCP answers are cut
  only at the 64 KiB message limit.
- Another datacenter: this agent has no WAN federation, so there is no path to it; Consul
  answers "no path to datacenter" with NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.reversename
import dns.rrset

from agent.durations import DurationError, parse_duration

__all__ = [
    "FORWARD",
    "Catalog",
    "CatalogUnavailable",
    "DNSSettings",
    "Instance",
    "MemoryCatalog",
    "NodeRecord",
    "error_reply",
    "in_zone",
    "instance_from_json",
    "instance_from_struct",
    "node_from_json",
    "node_from_struct",
    "parse_request",
    "refused",
    "resolve",
    "servfail",
]

IN = dns.rdataclass.IN
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
ANY = dns.rdatatype.ANY
CNAME = dns.rdatatype.CNAME
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
SRV = dns.rdatatype.SRV
TXT = dns.rdatatype.TXT
AXFR = dns.rdatatype.AXFR

MAX_UDP_ANSWERS = 8  # Consul's hard cap under udp_answer_limit for non-EDNS clients
PLAIN_UDP_SIZE = 512
MAX_UDP_DATAGRAM = 65535 - 68
MAX_TCP_SIZE = 65523
QUERY_KINDS = ("service", "connect", "virtual", "ingress", "node", "query", "addr")


class _Forward:
    """Returned by `resolve` when the question belongs to the configured recursors."""

    def __repr__(self) -> str:
        return "FORWARD"


FORWARD = _Forward()


# --------------------------------------------------------------------------- settings


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
    def from_config(cls, config: Any) -> DNSSettings:
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


# --------------------------------------------------------------------------- catalog values


@dataclass(frozen=True)
class NodeRecord:
    name: str
    address: str
    datacenter: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    tagged_addresses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """One service instance with the statuses of the checks that decide its health
    (node-level checks and its own)."""

    node: NodeRecord
    service: str
    service_id: str = ""
    address: str = ""
    port: int = 0
    tags: tuple[str, ...] = ()
    weight_passing: int = 1
    weight_warning: int = 1
    statuses: tuple[str, ...] = ()


class CatalogUnavailable(Exception):
    """The catalog could not be read (a client agent that cannot reach a server)."""


class Catalog(Protocol):
    """Where the resolver reads the datacenter's catalog (a server's store, or a server's
    HTTP API from a client agent). Names are matched case-insensitively by the caller's
    contract: `node("WEB1")` finds node `web1`."""

    async def node(self, name: str) -> NodeRecord | None: ...

    async def nodes(self) -> list[NodeRecord]: ...

    async def service(self, name: str) -> list[Instance]:
        """Every instance of the service, healthy or not."""
        ...

    async def instances_at(self, address: str) -> list[Instance]:
        """Instances whose own service address is `address` (for PTR)."""
        ...


class MemoryCatalog:
    """An in-memory `Catalog` (tests, and the shape the adapters follow)."""

    def __init__(self, nodes: Iterable[NodeRecord] = (), instances: Iterable[Instance] = ()):
        self._nodes = list(nodes)
        self._instances = list(instances)

    async def node(self, name: str) -> NodeRecord | None:
        wanted = name.lower()
        return next((n for n in self._nodes if n.name.lower() == wanted), None)

    async def nodes(self) -> list[NodeRecord]:
        return list(self._nodes)

    async def service(self, name: str) -> list[Instance]:
        wanted = name.lower()
        return [i for i in self._instances if i.service.lower() == wanted]

    async def instances_at(self, address: str) -> list[Instance]:
        return [i for i in self._instances if i.address and i.address == address]


def node_from_struct(node: Any) -> NodeRecord:
    """From the store's `Node` struct."""
    return NodeRecord(
        name=node.Node,
        address=node.Address,
        datacenter=node.Datacenter,
        meta=dict(node.Meta or {}),
        tagged_addresses=dict(node.TaggedAddresses or {}),
    )


def instance_from_struct(node: Any, service: Any, checks: Iterable[Any]) -> Instance:
    """From the store's `Node`, `Service` and the instance's `HealthCheck`s."""
    return Instance(
        node=node_from_struct(node),
        service=service.Service,
        service_id=service.ID,
        address=service.Address,
        port=service.Port,
        tags=tuple(service.Tags or ()),
        weight_passing=service.Weights.Passing,
        weight_warning=service.Weights.Warning,
        statuses=tuple(c.Status for c in checks),
    )


def node_from_json(node: dict) -> NodeRecord:
    """From a `Node` object of the HTTP API."""
    return NodeRecord(
        name=node.get("Node", ""),
        address=node.get("Address", ""),
        datacenter=node.get("Datacenter", ""),
        meta=dict(node.get("Meta") or {}),
        tagged_addresses=dict(node.get("TaggedAddresses") or {}),
    )


def instance_from_json(entry: dict) -> Instance:
    """From one `/v1/health/service/<name>` entry (a CheckServiceNode)."""
    svc = entry.get("Service") or {}
    weights = svc.get("Weights") or {}
    return Instance(
        node=node_from_json(entry.get("Node") or {}),
        service=svc.get("Service", ""),
        service_id=svc.get("ID", ""),
        address=svc.get("Address", ""),
        port=int(svc.get("Port") or 0),
        tags=tuple(svc.get("Tags") or ()),
        weight_passing=int(weights.get("Passing", 1)),
        weight_warning=int(weights.get("Warning", 1)),
        statuses=tuple(c.get("Status", "") for c in entry.get("Checks") or ()),
    )


# --------------------------------------------------------------------------- health


def healthy(instances: Iterable[Instance], only_passing: bool) -> list[Instance]:
    """Drop instances with a critical check (and, under only_passing, any non-passing one)."""
    out = []
    for inst in instances:
        if any(s == "critical" or (only_passing and s != "passing") for s in inst.statuses):
            continue
        out.append(inst)
    return out


def srv_weight(inst: Instance) -> int:
    """SRV weight from the instance's aggregated health (criticals are filtered earlier)."""
    statuses = set(inst.statuses)
    if "critical" in statuses or "maintenance" in statuses:
        return 0
    if "warning" in statuses:
        return inst.weight_warning
    if statuses - {"passing"}:
        return 1  # a status Consul does not know
    return inst.weight_passing


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """One resource record; names stay text until the message is built."""

    name: str
    ttl: int
    rdata: dns.rdata.Rdata

    @property
    def rdtype(self) -> int:
        return self.rdata.rdtype

    def wire_len(self) -> int:
        """Uncompressed size on the wire (the conservative measure Consul trims by)."""
        return _name_len(self.name) + 10 + len(self.rdata.to_wire())


def _name_len(name: str) -> int:
    return len(dns.name.from_text(name).to_wire())


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_record(name: str, qtype: int, ip: Any, ttl: int) -> Record | None:
    """A or AAAA for the address when the query type admits it (Consul's makeARecord)."""
    if ip.version == 4:
        if qtype in (SRV, A, ANY, NS, TXT):
            return Record(name, ttl, dns.rdtypes.IN.A.A(IN, A, str(ip)))
        return None
    if qtype in (SRV, AAAA, ANY, NS, TXT):
        return Record(name, ttl, dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, str(ip)))
    return None


def _cname(name: str, target: str, ttl: int) -> Record:
    return Record(name, ttl, dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, _name(_fqdn_keep(target))))


def _fqdn_keep(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _node_address(node: NodeRecord, qtype: int) -> str:
    """The node address, or its tagged lan_ipv4/lan_ipv6 when only that family is asked."""
    addr = node.address
    ip = _ip(addr)
    if qtype == A and (ip is None or ip.version != 4):
        return node.tagged_addresses.get("lan_ipv4") or addr
    if qtype == AAAA and (ip is None or ip.version != 6):
        return node.tagged_addresses.get("lan_ipv6") or addr
    return addr


def node_address_records(node: NodeRecord, qtype: int, name: str, ttl: int) -> list[Record]:
    """The node's A/AAAA, or a CNAME when its address is a hostname."""
    addr = _node_address(node, qtype)
    ip = _ip(addr)
    if ip is None:
        return [_cname(name, addr, ttl)] if addr else []
    record = address_record(name, qtype, ip, ttl)
    return [record] if record is not None else []


def rfc1464(key: str, value: str) -> str:
    """`key=value` with RFC 1464 quoting of the key (backquote for `=`, backquote, edge spaces)."""
    key = key.replace("`", "``").replace("=", "`=")
    stripped = key.lstrip(" ")
    key = "` " * (len(key) - len(stripped)) + stripped
    stripped = key.rstrip(" ")
    key = stripped + "` " * (len(key) - len(stripped))
    return key + "=" + value.replace("`", "``")


def meta_txt_records(node: NodeRecord, name: str, ttl: int) -> list[Record]:
    """Node meta as TXT; `rfc1035-` keys carry their value verbatim."""
    out = []
    for key, value in node.meta.items():
        text = value if key.lower().startswith("rfc1035-") else rfc1464(key, value)
        raw = text.encode()
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        out.append(Record(name, ttl, dns.rdtypes.ANY.TXT.TXT(IN, TXT, chunks)))
    return out


def _srv(name: str, ttl: int, inst: Instance, target: str) -> Record:
    rdata = dns.rdtypes.IN.SRV.SRV(
        IN, SRV, 1, srv_weight(inst) & 0xFFFF, inst.port & 0xFFFF, _name(target)
    )
    return Record(name, ttl, rdata)


def addr_name(ip: Any, datacenter: str, domain: str) -> str:
    """`<hex-ip>.addr.<dc>.<domain>`: a name that resolves back to the address."""
    return f"{ip.packed.hex()}.addr.{datacenter}.{domain}"


# --------------------------------------------------------------------------- query parsing


@dataclass(frozen=True)
class Query:
    """A parsed question inside our domain."""

    kind: str  # one of QUERY_KINDS, or "invalid"
    parts: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


def in_zone(qname: str, settings: DNSSettings) -> str | None:
    """Which of our domains the lower-cased name is in ("" for `arpa.`), None if neither."""
    domains = [settings.domain] + ([settings.alt_domain] if settings.alt_domain else [])
    best = None
    for domain in domains:
        if (qname == domain or qname.endswith("." + domain)) and (
            best is None or len(domain) > len(best)
        ):
            best = domain
    if best is not None:
        return best
    if qname == "arpa." or qname.endswith(".arpa."):
        return ""
    return None


def _labels(text: str) -> list[str]:
    return [label for label in text.rstrip(".").split(".") if label]


def _relative_labels(qname: str, domain: str) -> list[str]:
    """The lower-cased labels of the name in front of the domain."""
    labels = _labels(qname.lower())
    return labels[: len(labels) - len(_labels(domain))]


def parse_query(labels: Sequence[str], qtype: int) -> Query:
    """Find the query kind scanning from the right, as Consul does; for SRV questions an
    `_`-prefixed label implies `service`."""
    for i in range(len(labels) - 1, -1, -1):
        label = labels[i]
        if label in QUERY_KINDS:
            return Query(label, tuple(labels[:i]), tuple(labels[i + 1 :]))
        if qtype == SRV and label.startswith("_"):
            return Query("service", tuple(labels[: i + 1]), tuple(labels[i + 1 :]))
    return Query("invalid")


def parse_locality(suffixes: Sequence[str]) -> tuple[str, str] | None:
    """`(datacenter, peer)` from the labels after the kind: `[<dc>]`, or pairs of
    `<dc>.dc` / `<peer>.peer` / `<name>.port`; None when malformed."""
    if not suffixes:
        return "", ""
    if len(suffixes) == 1:
        return suffixes[0], ""
    if len(suffixes) not in (2, 4, 6):
        return None
    dc = peer = ""
    for value, key in zip(suffixes[::2], suffixes[1::2], strict=True):
        if key == "dc":
            dc = value
        elif key == "peer":
            peer = value
        elif key != "port":
            return None
    if dc and peer:
        return None
    return dc, peer


def service_and_tag(parts: Sequence[str]) -> tuple[str, str]:
    """`_svc._tag` (RFC 2782, `_tcp` = any tag) or `[tag.]svc` (dots allowed in the tag)."""
    if len(parts) == 2 and parts[0].startswith("_") and parts[1].startswith("_"):
        tag = parts[1][1:]
        return parts[0][1:], "" if tag == "tcp" else tag
    return parts[-1], ".".join(parts[:-1])


# --------------------------------------------------------------------------- answers


@dataclass
class Answer:
    """A response before encoding."""

    rcode: int = dns.rcode.NOERROR
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    authoritative: bool = True
    recursion_available: bool = False
    truncated: bool = False


class _NotFound(Exception):
    """NXDOMAIN."""


class _NoData(Exception):
    """NOERROR with nothing to answer (SOA in authority)."""


@dataclass
class _Context:
    qname: str  # as asked (case kept), absolute
    qtype: int
    settings: DNSSettings
    resp_domain: str  # our domain as spelled in the question
    catalog: Catalog
    rng: random.Random
    now: float


def soa_record(settings: DNSSettings, qname: str, now: float) -> Record:
    lowered = qname.lower()
    domain = settings.domain
    if settings.alt_domain and lowered.endswith("." + settings.alt_domain):
        domain = settings.alt_domain
    rdata = dns.rdtypes.ANY.SOA.SOA(
        IN,
        SOA,
        _name("ns." + domain),
        _name("hostmaster." + domain),
        int(now) & 0xFFFFFFFF,
        settings.soa_refresh,
        settings.soa_retry,
        settings.soa_expire,
        settings.soa_min_ttl,
    )
    return Record(domain, settings.soa_min_ttl, rdata)


def _response_domain(qname: str, domain: str) -> str:
    """Our domain with the question's own spelling (Consul answers in the asker's case)."""
    count = len(_labels(domain))
    asked = _labels(qname)
    return ".".join(asked[len(asked) - count :]) + "." if count else "."


def _dc_of(ctx: _Context, suffixes: Sequence[str]) -> str:
    locality = parse_locality(suffixes)
    if locality is None:
        raise _NotFound
    dc, peer = locality
    if peer:
        raise _NotFound  # cluster peering is not supported by this agent
    dc = dc or ctx.settings.datacenter
    if dc != ctx.settings.datacenter:
        raise _NotFound  # no WAN federation: "no path to datacenter"
    return dc


async def _dispatch(ctx: _Context, answer: Answer, query: Query) -> None:
    kind = query.kind
    if kind == "service":
        if not query.parts:
            raise _NotFound
        dc = _dc_of(ctx, query.suffixes)
        service, tag = service_and_tag(query.parts)
        await _service_query(ctx, answer, service, tag, dc)
    elif kind == "node":
        if not query.parts:
            raise _NotFound
        _dc_of(ctx, query.suffixes)
        await _node_query(ctx, answer, ".".join(query.parts))
    elif kind == "addr":
        _addr_query(ctx, answer, query.parts)
    elif kind == "virtual":
        if not query.parts or parse_locality(query.suffixes) is None:
            raise _NotFound
        # No virtual IPs without the service mesh: an empty success, as Consul gives.
    else:  # query (no prepared queries here), connect and ingress (no mesh), invalid
        raise _NotFound


async def _node_query(ctx: _Context, answer: Answer, name: str) -> None:
    if ctx.qtype not in (ANY, A, AAAA, TXT):
        return
    node = await ctx.catalog.node(name)
    if node is None:
        raise _NotFound
    ttl = ctx.settings.node_ttl
    if ctx.qtype != TXT:
        answer.answer.extend(node_address_records(node, ctx.qtype, ctx.qname, ttl))
    if ctx.settings.node_meta_txt or ctx.qtype in (TXT, ANY):
        target = answer.answer if ctx.qtype in (TXT, ANY) else answer.additional
        target.extend(meta_txt_records(node, ctx.qname, ttl))


def _addr_query(ctx: _Context, answer: Answer, parts: Sequence[str]) -> None:
    if len(parts) != 1 or len(parts[0]) // 2 not in (4, 16):
        raise _NotFound
    try:
        ip = ipaddress.ip_address(bytes.fromhex(parts[0]))
    except ValueError:
        raise _NotFound from None
    rdtype = A if ip.version == 4 else AAAA
    name = ".".join(_relative_labels(ctx.qname, ctx.resp_domain)) + "." + ctx.resp_domain
    record = address_record(name, rdtype, ip, ctx.settings.node_ttl)
    assert record is not None
    if ctx.qtype in (rdtype, ANY):
        answer.answer.append(record)
    else:
        answer.additional.append(record)


async def _service_query(ctx: _Context, answer: Answer, service: str, tag: str, dc: str) -> None:
    instances = await ctx.catalog.service(service)
    if tag:
        wanted = tag.lower()
        instances = [i for i in instances if any(t.lower() == wanted for t in i.tags)]
    instances = healthy(instances, ctx.settings.only_passing)
    if not instances:
        raise _NotFound
    ctx.rng.shuffle(instances)
    ttl = ctx.settings.ttl_for_service(service)
    if ctx.qtype == SRV:
        _srv_records(ctx, answer, instances, dc, ttl)
    else:
        _service_address_records(ctx, answer, instances, dc, ttl)
    if not answer.answer:
        raise _NoData


def _instance_records(
    ctx: _Context, inst: Instance, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """(answer, additional) for one instance: Consul's makeNodeServiceRecords."""
    service_addr = inst.address
    node_addr = _node_address(inst.node, ctx.qtype)
    if not service_addr and not node_addr:
        return [], []
    node_ip = _ip(node_addr)
    if not service_addr:
        if node_ip is None:
            return _hostname_records(ctx, inst, node_addr, ttl)
        if node_addr != inst.node.address:  # a tagged address: name it by the address
            return _ip_records(ctx, inst, node_ip, dc, ttl)
        return _node_records(ctx, inst, node_ip, dc, ttl)
    service_ip = _ip(service_addr)
    if service_ip is not None:
        return _ip_records(ctx, inst, service_ip, dc, ttl)
    if _fqdn_keep(service_addr) == ctx.qname and node_ip is not None:
        return _node_records(ctx, inst, node_ip, dc, ttl)
    return _hostname_records(ctx, inst, service_addr, ttl)


def _node_records(
    ctx: _Context, inst: Instance, ip: Any, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """The instance answers with its node's address; SRV targets the node's name."""
    record = address_record(ctx.qname, ctx.qtype, ip, ttl)
    if record is None:
        return [], []
    if ctx.qtype != SRV:
        return [record], []
    target = f"{inst.node.name}.node.{dc}.{ctx.resp_domain}"
    return [_srv(ctx.qname, ttl, inst, target)], [replace(record, name=target)]


def _ip_records(
    ctx: _Context, inst: Instance, ip: Any, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    record = address_record(ctx.qname, ctx.qtype, ip, ttl)
    if record is None:
        return [], []
    if ctx.qtype != SRV:
        return [record], []
    target = addr_name(ip, dc, ctx.resp_domain)
    return [_srv(ctx.qname, ttl, inst, target)], [replace(record, name=target)]


def _hostname_records(
    ctx: _Context, inst: Instance, host: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """An external service: SRV straight to the hostname, else a CNAME to it. (Consul also
    resolves the hostname for the additional section; this agent leaves that to the client.)"""
    if ctx.qtype == SRV:
        return [_srv(ctx.qname, ttl, inst, _fqdn_keep(host))], []
    return [_cname(ctx.qname, host, ttl)], []


def _service_address_records(
    ctx: _Context, answer: Answer, instances: list[Instance], dc: str, ttl: int
) -> None:
    seen: set[tuple[str, int, str]] = set()
    first_cname: list[Record] = []
    count = 0
    for inst in instances:
        records, _ = _instance_records(ctx, inst, dc, ttl)
        if not records:
            continue
        key = (records[0].name.lower(), records[0].rdtype, records[0].rdata.to_text())
        if key in seen:  # the same address twice (several instances on one node)
            continue
        seen.add(key)
        if records[0].rdtype == CNAME:
            first_cname = first_cname or records
            continue
        answer.answer.extend(records)
        count += 1
        if count == ctx.settings.a_record_limit:
            return
    if not answer.answer and first_cname:
        answer.answer.extend(first_cname)


def _srv_records(
    ctx: _Context, answer: Answer, instances: list[Instance], dc: str, ttl: int
) -> None:
    seen: set[tuple[str, str, int]] = set()
    for inst in instances:
        key = (inst.node.name, inst.address, inst.port)
        if key in seen:
            continue
        seen.add(key)
        records, extra = _instance_records(ctx, inst, dc, ttl)
        answer.answer.extend(records)
        if ctx.settings.node_meta_txt:
            canonical = f"{inst.node.name}.node.{dc}.{ctx.resp_domain}"
            extra += meta_txt_records(inst.node, canonical, ttl)
        # Several instances on one node would repeat its records; once is enough.
        answer.additional.extend(r for r in extra if r not in answer.additional)


async def _nameservers(ctx: _Context) -> tuple[list[Record], list[Record]]:
    """NS records for up to three healthy servers (the `consul` service) and their glue."""
    servers = healthy(await ctx.catalog.service("consul"), ctx.settings.only_passing)
    ctx.rng.shuffle(servers)
    ns: list[Record] = []
    glue: list[Record] = []
    for inst in servers:
        node = inst.node
        if not node.name or not all(c.isalnum() or c == "-" for c in node.name):
            continue
        dc = node.datacenter or ctx.settings.datacenter
        fqdn = f"{node.name}.node.{dc}.{ctx.resp_domain}".lower()
        rdata = dns.rdtypes.ANY.NS.NS(IN, NS, _name(fqdn))
        ns.append(Record(ctx.resp_domain, ctx.settings.node_ttl, rdata))
        glue.extend(node_address_records(node, ANY, fqdn, ctx.settings.node_ttl))
        if len(ns) >= 3:
            break
    return ns, glue


async def _domain_answer(ctx: _Context) -> Answer:
    answer = Answer(recursion_available=bool(ctx.settings.recursors))
    if ctx.qtype == SOA:
        ns, glue = await _nameservers(ctx)
        answer.answer.append(soa_record(ctx.settings, ctx.qname, ctx.now))
        answer.authority.extend(ns)
        answer.additional.extend(glue)
        return answer
    if ctx.qtype == NS:
        answer.answer, answer.additional = await _nameservers(ctx)
        return answer
    if ctx.qtype == AXFR:
        answer.rcode = dns.rcode.NOTIMP
        return answer
    query = parse_query(_relative_labels(ctx.qname, ctx.resp_domain), ctx.qtype)
    try:
        await _dispatch(ctx, answer, query)
    except (CatalogUnavailable, dns.exception.DNSException):
        # Consul answers SERVFAIL when its RPC fails; a name that cannot be encoded (a node
        # name with a 64-byte label, say) lands here too.
        answer.answer.clear()
        answer.additional.clear()
        answer.rcode = dns.rcode.SERVFAIL
    except _NotFound:
        answer.answer.clear()
        answer.additional.clear()
        answer.rcode = dns.rcode.NXDOMAIN
        answer.authority.append(soa_record(ctx.settings, ctx.qname, ctx.now))
    except _NoData:
        answer.authority.append(soa_record(ctx.settings, ctx.qname, ctx.now))
    return answer


async def _ptr_answer(ctx: _Context) -> Answer | None:
    settings = ctx.settings
    answer = Answer(recursion_available=bool(settings.recursors))
    if ctx.qtype == SOA:
        answer.authority.append(soa_record(settings, ctx.qname, ctx.now))
    wanted = ctx.qname.lower()
    try:
        target = await _ptr_target(ctx, wanted)
    except (CatalogUnavailable, dns.exception.DNSException):
        target = ""  # Consul ignores a failed lookup here and answers "not found"
    if target:
        rdata = dns.rdtypes.ANY.PTR.PTR(IN, dns.rdatatype.PTR, _name(target))
        answer.answer.append(Record(ctx.qname, 0, rdata))
        return answer
    if settings.recursors:
        return None
    answer.rcode = dns.rcode.NXDOMAIN
    answer.authority.append(soa_record(settings, ctx.qname, ctx.now))
    return answer


async def _ptr_target(ctx: _Context, wanted: str) -> str:
    """The name of the node (else the service) whose address the reverse name spells."""
    settings = ctx.settings
    for node in await ctx.catalog.nodes():
        if _reverse_of(node.address) == wanted:
            return f"{node.name}.node.{node.datacenter or settings.datacenter}.{settings.domain}"
    try:
        ip = dns.reversename.to_address(dns.name.from_text(wanted))
    except (dns.exception.DNSException, ValueError):
        return ""
    for inst in await ctx.catalog.instances_at(ip):
        return f"{inst.service}.service.{inst.node.datacenter or settings.datacenter}.{settings.domain}"
    return ""


def _reverse_of(address: str) -> str:
    ip = _ip(address)
    if ip is None:
        return ""
    return dns.reversename.from_address(str(ip)).to_text().lower()


# --------------------------------------------------------------------------- trimming


def _sync_additional(answer: Answer, index: dict[str, Record]) -> None:
    """Keep only the additional records that SRV answers still point at (one per target)."""
    extra: list[Record] = []
    resolved: set[str] = set()
    for rec in answer.answer:
        if rec.rdtype != SRV:
            continue
        target = rec.rdata.target.to_text().lower()
        while target not in resolved:
            resolved.add(target)
            found = index.get(target)
            if found is None:
                break
            extra.append(found)
            if found.rdtype != CNAME:
                break
            target = found.rdata.target.to_text().lower()
    answer.additional = extra


def message_len(answer: Answer, question_len: int, edns: bool) -> int:
    """Uncompressed message size: header, question, records, OPT."""
    size = 12 + question_len + (11 if edns else 0)
    for section in (answer.answer, answer.authority, answer.additional):
        size += sum(r.wire_len() for r in section)
    return size


def trim(
    answer: Answer,
    *,
    tcp: bool,
    payload: int | None,
    question_len: int,
    udp_answer_limit: int,
    measure: Callable[[Answer], int],
) -> bool:
    """Cut the answer to what fits the transport; True when records were dropped.

    `measure` gives the encoded (compressed) size of an answer. As in Consul, a plain UDP
    answer cut to `udp_answer_limit` is then sized uncompressed, so it still fits 512 bytes
    should a middlebox expand it; otherwise the compressed size counts.
    """
    original = len(answer.answer)
    index: dict[str, Record] = {}
    for rec in answer.additional:
        index.setdefault(rec.name.lower(), rec)
    size = measure
    if tcp:
        max_size = MAX_TCP_SIZE
        cap = 1024 if any(r.rdtype == SRV for r in answer.answer) else 4096
        if len(answer.answer) > cap:
            answer.answer = answer.answer[:cap]
    else:
        max_size = PLAIN_UDP_SIZE
        if payload is not None and payload > max_size:
            max_size = payload
        max_size = min(max_size, MAX_UDP_DATAGRAM) - 8
        limit = min(MAX_UDP_ANSWERS, udp_answer_limit)
        if max_size == PLAIN_UDP_SIZE - 8 and len(answer.answer) > limit:
            answer.answer = answer.answer[:limit]
            if index:
                _sync_additional(answer, index)
            edns = payload is not None
            size = lambda a: message_len(a, question_len, edns)  # noqa: E731
    while len(answer.answer) > 1 and size(answer) > max_size:
        answer.authority = []
        _cut_to_fit(answer, max_size, size, index)
    return len(answer.answer) < original


def _cut_to_fit(
    answer: Answer, max_size: int, size: Callable[[Answer], int], index: dict[str, Record]
) -> None:
    """Drop answers from the end: the largest prefix that fits (by bisection), at least one."""
    records = answer.answer

    def fits(count: int) -> bool:
        answer.answer = records[:count]
        if index:
            _sync_additional(answer, index)
        return size(answer) <= max_size

    low, high = 1, len(records) - 1  # `records` as a whole does not fit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    fits(low)


# --------------------------------------------------------------------------- messages


def parse_request(wire: bytes) -> dns.message.Message | bytes | None:
    """A request message; or the bytes of an error reply when it cannot be served; or None
    when it must be ignored (a response, or not even a header)."""
    if len(wire) < 12:
        return None
    if wire[2] & 0x80:  # QR set: a response, never answer it
        return None
    opcode = (wire[2] >> 3) & 0x0F
    if opcode != dns.opcode.QUERY:
        return error_reply(wire, dns.rcode.NOTIMP)
    if int.from_bytes(wire[4:6], "big") != 1:
        return error_reply(wire, dns.rcode.FORMERR)
    try:
        return dns.message.from_wire(wire)
    except Exception:  # any malformed message: dnspython raises many kinds
        return error_reply(wire, dns.rcode.FORMERR)


def error_reply(wire: bytes, rcode: int) -> bytes:
    """A bare reply (header only) echoing the id, opcode and RD bit."""
    flags = 0x8000 | (wire[2] & 0x79) << 8 | (rcode & 0x0F)
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


def _reply(request: dns.message.Message, rcode: int) -> dns.message.Message:
    response = dns.message.make_response(request)
    response.use_edns(False)
    response.set_rcode(rcode)
    return response


def refused(request: dns.message.Message) -> dns.message.Message:
    """What Consul answers for a name outside its domain without recursors."""
    return _reply(request, dns.rcode.REFUSED)


def servfail(request: dns.message.Message) -> dns.message.Message:
    """All recursors failed."""
    response = _reply(request, dns.rcode.SERVFAIL)
    response.flags |= dns.flags.RA
    if request.edns >= 0:
        response.use_edns(0, 0, request.payload)
    return response


def to_message(request: dns.message.Message, answer: Answer) -> dns.message.Message:
    response = dns.message.make_response(request)
    response.use_edns(False)
    if request.edns >= 0:  # echo the client's EDNS, as Consul's setEDNS does
        response.use_edns(0, 0, request.payload)
    response.set_rcode(answer.rcode)
    if answer.authoritative:
        response.flags |= dns.flags.AA
    if answer.recursion_available:
        response.flags |= dns.flags.RA
    if answer.truncated:
        response.flags |= dns.flags.TC
    sections = (
        (response.answer, answer.answer),
        (response.authority, answer.authority),
        (response.additional, answer.additional),
    )
    for target, records in sections:
        for rec in records:
            target.append(dns.rrset.from_rdata(_name(rec.name), rec.ttl, rec.rdata))
    return response


async def resolve(
    request: dns.message.Message,
    catalog: Catalog,
    settings: DNSSettings,
    *,
    tcp: bool = False,
    rng: random.Random | None = None,
    now: float | None = None,
) -> dns.message.Message | _Forward:
    """The response to one request, or `FORWARD` when the recursors should answer it."""
    if not request.question:
        return refused(request)
    question = request.question[0]
    qname = question.name.to_text()
    zone = in_zone(qname.lower(), settings)
    if zone is None:
        return FORWARD if settings.recursors else refused(request)
    ctx = _Context(
        qname=qname,
        qtype=question.rdtype,
        settings=settings,
        resp_domain=_response_domain(qname, zone) if zone else settings.domain,
        catalog=catalog,
        rng=rng or random.Random(),
        now=time.time() if now is None else now,
    )
    if not zone:
        answer = await _ptr_answer(ctx)
        if answer is None:
            return FORWARD
        return to_message(request, answer)  # Consul does not trim PTR answers
    answer = await _domain_answer(ctx)
    payload = request.payload if request.edns >= 0 else None
    dropped = trim(
        answer,
        tcp=tcp,
        payload=payload,
        question_len=_name_len(qname) + 4,
        udp_answer_limit=settings.udp_answer_limit,
        measure=lambda a: len(to_message(request, a).to_wire(max_size=65535)),
    )
    answer.truncated = dropped and settings.enable_truncate
    return to_message(request, answer)
