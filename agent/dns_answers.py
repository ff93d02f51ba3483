"""The answer to one question inside our zones, before trimming and encoding.

`domain_answer` serves names under our domain (SOA, NS, then by query kind: nodes, services,
the Connect-capable instances of a service (`<svc>.connect`: its sidecar proxies, by their own
address and port), the ingress gateways exposing a service (`<svc>.ingress`), `addr` names,
and prepared queries (`<query>.query[.<dc>]`: the query's answer, failover included, with
its `DNS.TTL`)); `ptr_answer` serves reverse names under `arpa.`. Both read the catalog and nothing else; errors of the
catalog become SERVFAIL, as Consul answers a failed RPC.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.reversename

from agent.dns_catalog import CatalogUnavailable, Instance, healthy
from agent.dns_names import Query, parse_locality, parse_query, relative_labels, service_and_tag
from agent.dns_records import (
    AAAA,
    ANY,
    AXFR,
    CNAME,
    IN,
    NS,
    SOA,
    SRV,
    TXT,
    A,
    Answer,
    Record,
    absolute,
    addr_name,
    address_record,
    cname_record,
    meta_txt_records,
    node_address,
    node_address_records,
    parse_ip,
    soa_record,
    srv_record,
    to_name,
)
from agent.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from agent.dns_catalog import Catalog
    from agent.dns_settings import DNSSettings

__all__ = ["Context", "domain_answer", "ptr_answer"]


class _NotFound(Exception):
    """NXDOMAIN."""


class _NoData(Exception):
    """NOERROR with nothing to answer (SOA in authority)."""


@dataclass
class Context:
    """One question being answered, with what answering it reads."""

    qname: str  # as asked (case kept), absolute
    qtype: int
    settings: DNSSettings
    resp_domain: str  # our domain as spelled in the question
    catalog: Catalog
    rng: random.Random
    now: float
    source_ip: str = ""  # the asker's address (ECS subnet first): a query's `Near: "_ip"`


def _dc_of(ctx: Context, suffixes: Sequence[str]) -> str:
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


async def _dispatch(ctx: Context, answer: Answer, query: Query) -> None:
    kind = query.kind
    if kind == "service":
        if not query.parts:
            raise _NotFound
        dc = _dc_of(ctx, query.suffixes)
        service, tag = service_and_tag(query.parts)
        await _service_query(ctx, answer, service, tag, dc)
    elif kind == "connect":
        if not query.parts:
            raise _NotFound
        dc = _dc_of(ctx, query.suffixes)
        # Only the last label names the service: a Connect lookup takes no tag (Consul).
        await _service_query(ctx, answer, query.parts[-1], "", dc, connect=True)
    elif kind == "ingress":
        if not query.parts:
            raise _NotFound
        dc = _dc_of(ctx, query.suffixes)
        # The ingress gateways exposing the service, by their own address and port.
        await _service_query(ctx, answer, query.parts[-1], "", dc, ingress=True)
    elif kind == "node":
        if not query.parts:
            raise _NotFound
        _dc_of(ctx, query.suffixes)
        await _node_query(ctx, answer, ".".join(query.parts))
    elif kind == "addr":
        _addr_query(ctx, answer, query.parts)
    elif kind == "query":
        # The name may have dots of its own; only a bare datacenter may follow (Consul's
        # parseDatacenter), and any datacenter is asked: the query runs there.
        if not query.parts or len(query.suffixes) > 1:
            raise _NotFound
        dc = query.suffixes[0] if query.suffixes else ""
        await _prepared_query(ctx, answer, ".".join(query.parts), dc)
    elif kind == "virtual":
        locality = parse_locality(query.suffixes)
        if not query.parts or locality is None:
            raise _NotFound
        await _virtual_query(ctx, answer, query.parts[-1], locality)
    else:  # invalid
        raise _NotFound


@lru_cache(maxsize=256)
def _query_ttl(text: str) -> int:
    """A query's `DNS.TTL` in whole seconds (vetted when the query was written; Consul
    ignores one it cannot parse)."""
    try:
        return max(0, int(parse_duration(text)))
    except DurationError:
        return 0


async def _prepared_query(ctx: Context, answer: Answer, name: str, dc: str) -> None:
    """Consul's preparedQueryLookup: the query chose, filtered and ordered the instances;
    the TTL is its `DNS.TTL`, else the agent's `service_ttl` for the service."""
    result = await ctx.catalog.prepared_query(name, dc, ctx.source_ip)
    if result is None or not result.instances:
        raise _NotFound
    ttl = _query_ttl(result.ttl) if result.ttl else ctx.settings.ttl_for_service(result.service)
    instances = list(result.instances)
    datacenter = result.datacenter or ctx.settings.datacenter
    if ctx.qtype == SRV:
        _srv_records(ctx, answer, instances, datacenter, ttl)
    else:
        _service_address_records(ctx, answer, instances, datacenter, ttl)
    if not answer.answer:
        raise _NoData


async def _node_query(ctx: Context, answer: Answer, name: str) -> None:
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


async def _virtual_query(
    ctx: Context, answer: Answer, service: str, locality: tuple[str, str]
) -> None:
    """Consul's `.virtual.` lookup: the service's virtual IP as an A record (whatever type was
    asked), with the node TTL; none assigned is an empty success. A lone label after
    `virtual` names a peer (Consul's peerOrDatacenter fallback): there are no peerings here,
    so only the local datacenter's services have one."""
    dc, peer = locality
    vip = await ctx.catalog.virtual_ip(service, peer or dc)
    if vip:
        record = address_record(ctx.qname, A, ipaddress.ip_address(vip), ctx.settings.node_ttl)
        assert record is not None
        answer.answer.append(record)


def _addr_query(ctx: Context, answer: Answer, parts: Sequence[str]) -> None:
    if len(parts) != 1 or len(parts[0]) // 2 not in (4, 16):
        raise _NotFound
    try:
        ip = ipaddress.ip_address(bytes.fromhex(parts[0]))
    except ValueError:
        raise _NotFound from None
    rdtype = A if ip.version == 4 else AAAA
    name = ".".join(relative_labels(ctx.qname, ctx.resp_domain)) + "." + ctx.resp_domain
    record = address_record(name, rdtype, ip, ctx.settings.node_ttl)
    assert record is not None
    if ctx.qtype in (rdtype, ANY):
        answer.answer.append(record)
    else:
        answer.additional.append(record)


async def _service_query(
    ctx: Context,
    answer: Answer,
    service: str,
    tag: str,
    dc: str,
    *,
    connect: bool = False,
    ingress: bool = False,
) -> None:
    catalog = ctx.catalog
    if ingress:
        instances = await catalog.ingress(service)
    else:
        instances = await (catalog.connect(service) if connect else catalog.service(service))
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
    ctx: Context, inst: Instance, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """(answer, additional) for one instance: Consul's makeNodeServiceRecords."""
    service_addr = inst.address
    node_addr = node_address(inst.node, ctx.qtype)
    if not service_addr and not node_addr:
        return [], []
    node_ip = parse_ip(node_addr)
    if not service_addr:
        if node_ip is None:
            return _hostname_records(ctx, inst, node_addr, ttl)
        if node_addr != inst.node.address:  # a tagged address: name it by the address
            return _ip_records(ctx, inst, node_ip, dc, ttl)
        return _node_records(ctx, inst, node_ip, dc, ttl)
    service_ip = parse_ip(service_addr)
    if service_ip is not None:
        return _ip_records(ctx, inst, service_ip, dc, ttl)
    if absolute(service_addr) == ctx.qname and node_ip is not None:
        return _node_records(ctx, inst, node_ip, dc, ttl)
    return _hostname_records(ctx, inst, service_addr, ttl)


def _node_records(
    ctx: Context, inst: Instance, ip: Any, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """The instance answers with its node's address; SRV targets the node's name."""
    record = address_record(ctx.qname, ctx.qtype, ip, ttl)
    if record is None:
        return [], []
    if ctx.qtype != SRV:
        return [record], []
    target = f"{inst.node.name}.node.{dc}.{ctx.resp_domain}"
    return [srv_record(ctx.qname, ttl, inst, target)], [replace(record, name=target)]


def _ip_records(
    ctx: Context, inst: Instance, ip: Any, dc: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    record = address_record(ctx.qname, ctx.qtype, ip, ttl)
    if record is None:
        return [], []
    if ctx.qtype != SRV:
        return [record], []
    target = addr_name(ip, dc, ctx.resp_domain)
    return [srv_record(ctx.qname, ttl, inst, target)], [replace(record, name=target)]


def _hostname_records(
    ctx: Context, inst: Instance, host: str, ttl: int
) -> tuple[list[Record], list[Record]]:
    """An external service: SRV straight to the hostname, else a CNAME to it. (Consul also
    resolves the hostname for the additional section; this agent leaves that to the client.)"""
    if ctx.qtype == SRV:
        return [srv_record(ctx.qname, ttl, inst, absolute(host))], []
    return [cname_record(ctx.qname, host, ttl)], []


def _service_address_records(
    ctx: Context, answer: Answer, instances: list[Instance], dc: str, ttl: int
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
    ctx: Context, answer: Answer, instances: list[Instance], dc: str, ttl: int
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


async def _nameservers(ctx: Context) -> tuple[list[Record], list[Record]]:
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
        rdata = dns.rdtypes.ANY.NS.NS(IN, NS, to_name(fqdn))
        ns.append(Record(ctx.resp_domain, ctx.settings.node_ttl, rdata))
        glue.extend(node_address_records(node, ANY, fqdn, ctx.settings.node_ttl))
        if len(ns) >= 3:
            break
    return ns, glue


async def domain_answer(ctx: Context) -> Answer:
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
    query = parse_query(relative_labels(ctx.qname, ctx.resp_domain), ctx.qtype)
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


async def ptr_answer(ctx: Context) -> Answer | None:
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
        rdata = dns.rdtypes.ANY.PTR.PTR(IN, dns.rdatatype.PTR, to_name(target))
        answer.answer.append(Record(ctx.qname, 0, rdata))
        return answer
    if settings.recursors:
        return None
    answer.rcode = dns.rcode.NXDOMAIN
    answer.authority.append(soa_record(settings, ctx.qname, ctx.now))
    return answer


async def _ptr_target(ctx: Context, wanted: str) -> str:
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
    ip = parse_ip(address)
    if ip is None:
        return ""
    return dns.reversename.from_address(str(ip)).to_text().lower()
