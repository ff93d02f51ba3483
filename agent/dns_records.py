"""Resource records before encoding: `Record`, the `Answer` they make up, and the builders of
each record kind the resolver gives (A/AAAA or CNAME for an address, SRV, node meta as TXT, SOA).

Names stay text until `agent.dns.to_message` encodes the answer, so trimming can measure and
cut records without building messages.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from agent.dns_catalog import Instance, NodeRecord, srv_weight

if TYPE_CHECKING:
    from agent.dns_settings import DNSSettings

__all__ = [
    "Answer",
    "Record",
    "absolute",
    "addr_name",
    "address_record",
    "cname_record",
    "meta_txt_records",
    "name_wire_len",
    "node_address",
    "node_address_records",
    "parse_ip",
    "rfc1464",
    "soa_record",
    "srv_record",
    "to_name",
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
        return name_wire_len(self.name) + 10 + _rdata_len(self.rdata)


# Names, addresses and address records repeat from one answer to the next (the question, the
# catalog's nodes); parsing them is most of an answer's cost, and their values are immutable.
_CACHED = 4096


_RDATA_LENS: dict[int, tuple[dns.rdata.Rdata, int]] = {}


def _rdata_len(rdata: dns.rdata.Rdata) -> int:
    """Encoded size of an rdata, kept per object (the cached address records recur); the
    entry holds the rdata, so its id cannot be reused while it is there."""
    found = _RDATA_LENS.get(id(rdata))
    if found is not None and found[0] is rdata:
        return found[1]
    size = len(rdata.to_wire())
    if len(_RDATA_LENS) >= _CACHED:
        _RDATA_LENS.clear()
    _RDATA_LENS[id(rdata)] = (rdata, size)
    return size


@lru_cache(maxsize=_CACHED)
def name_wire_len(name: str) -> int:
    return len(dns.name.from_text(name).to_wire())


@lru_cache(maxsize=_CACHED)
def to_name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@lru_cache(maxsize=_CACHED)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
            return Record(name, ttl, _address_rdata(A, str(ip)))
        return None
    if qtype in (SRV, AAAA, ANY, NS, TXT):
        return Record(name, ttl, _address_rdata(AAAA, str(ip)))
    return None


@lru_cache(maxsize=_CACHED)
def _address_rdata(rdtype: int, text: str) -> dns.rdata.Rdata:
    if rdtype == A:
        return dns.rdtypes.IN.A.A(IN, A, text)
    return dns.rdtypes.IN.AAAA.AAAA(IN, AAAA, text)


def cname_record(name: str, target: str, ttl: int) -> Record:
    return Record(name, ttl, dns.rdtypes.ANY.CNAME.CNAME(IN, CNAME, to_name(absolute(target))))


def absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def node_address(node: NodeRecord, qtype: int) -> str:
    """The node address, or its tagged lan_ipv4/lan_ipv6 when only that family is asked."""
    addr = node.address
    ip = parse_ip(addr)
    if qtype == A and (ip is None or ip.version != 4):
        return node.tagged_addresses.get("lan_ipv4") or addr
    if qtype == AAAA and (ip is None or ip.version != 6):
        return node.tagged_addresses.get("lan_ipv6") or addr
    return addr


def node_address_records(node: NodeRecord, qtype: int, name: str, ttl: int) -> list[Record]:
    """The node's A/AAAA, or a CNAME when its address is a hostname."""
    addr = node_address(node, qtype)
    ip = parse_ip(addr)
    if ip is None:
        return [cname_record(name, addr, ttl)] if addr else []
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


def srv_record(name: str, ttl: int, inst: Instance, target: str) -> Record:
    rdata = dns.rdtypes.IN.SRV.SRV(
        IN, SRV, 1, srv_weight(inst) & 0xFFFF, inst.port & 0xFFFF, to_name(target)
    )
    return Record(name, ttl, rdata)


def addr_name(ip: Any, datacenter: str, domain: str) -> str:
    """`<hex-ip>.addr.<dc>.<domain>`: a name that resolves back to the address."""
    return f"{ip.packed.hex()}.addr.{datacenter}.{domain}"


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


def soa_record(settings: DNSSettings, qname: str, now: float) -> Record:
    lowered = qname.lower()
    domain = settings.domain
    if settings.alt_domain and lowered.endswith("." + settings.alt_domain):
        domain = settings.alt_domain
    rdata = dns.rdtypes.ANY.SOA.SOA(
        IN,
        SOA,
        to_name("ns." + domain),
        to_name("hostmaster." + domain),
        int(now) & 0xFFFFFFFF,
        settings.soa_refresh,
        settings.soa_retry,
        settings.soa_expire,
        settings.soa_min_ttl,
    )
    return Record(domain, settings.soa_min_ttl, rdata)
