"""The DNS interface's answers: a query message in, a response message out.

This module takes the request apart and puts the response together; the parts between are
beside it: `dns_settings` (the config as the resolver reads it), `dns_catalog` (the catalog
values and the `Catalog` protocol), `dns_names` (query names taken apart), `dns_records`
(records and their builders), `dns_answers` (the answer per query kind), `dns_trim` (cutting
to the transport) and `dns_wire` (the answer's bytes without a dnspython message, which is
what the server sends: `resolve_wire`; `resolve` gives the message, for tests and tools).
All of it is pure apart from reading the catalog through the small async `Catalog` protocol,
so the whole behaviour is testable with `MemoryCatalog` and no sockets; the asyncio listeners,
the store/remote catalog adapters and recursor forwarding live in `agent.dns_server`.

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
- `<hex-ip>.addr.<domain>`: the decoded address.
- `<svc>.virtual[.<peer>].<domain>`: the service's virtual IP (`agent/state/vips.py`) as an A
  record with the node TTL; none assigned (or a peer named: there are no peerings) is an
  empty NOERROR.
- `<name>.query[.<dc>].<domain>`: the prepared query executed (in `<dc>` when named, failover
  included; sorted near the asker for `Near: "_ip"`): its instances as for `.service.`, with
  the query's `DNS.TTL`; no such query, or no instance anywhere, is NXDOMAIN.
- PTR under `arpa.`: node addresses first, then service addresses.
- No matching name: NXDOMAIN; a name that exists without records of the type asked for
  (NODATA): NOERROR. Both carry the zone's SOA in the authority section.
- Names outside the domain: forwarded to `recursors` when configured, else REFUSED (what the
  Go DNS mux answers when no handler matches).
- UDP answers are cut to `min(8, udp_answer_limit)` records for a plain 512-byte client and
  to the datagram size in any case; TC is set only with `enable_truncate`. TCP answers are cut
  only at the 64 KiB message limit.
- Another datacenter's nodes and services are not looked up there (only prepared queries
  are); such a name answers as Consul's "no path to datacenter": NXDOMAIN.
"""

from __future__ import annotations

import random
import time

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset

from agent.dns_answers import Context, domain_answer, ptr_answer
from agent.dns_catalog import Catalog
from agent.dns_names import in_zone, response_domain
from agent.dns_records import Answer, name_wire_len, to_name
from agent.dns_settings import DNSSettings
from agent.dns_trim import trim
from agent.dns_wire import encode

__all__ = [
    "FORWARD",
    "error_reply",
    "parse_request",
    "refused",
    "resolve",
    "resolve_wire",
    "servfail",
    "to_message",
]


class _Forward:
    """Returned by `resolve` when the question belongs to the configured recursors."""

    def __repr__(self) -> str:
        return "FORWARD"


FORWARD = _Forward()


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
            target.append(dns.rrset.from_rdata(to_name(rec.name), rec.ttl, rec.rdata))
    return response


def _client_subnet(request: dns.message.Message) -> str:
    """The address of an EDNS client-subnet option (RFC 7871), as Consul prefers it."""
    for option in request.options:
        if isinstance(option, dns.edns.ECSOption):
            return str(option.address)
    return ""


async def resolve(
    request: dns.message.Message,
    catalog: Catalog,
    settings: DNSSettings,
    *,
    tcp: bool = False,
    rng: random.Random | None = None,
    now: float | None = None,
    source_ip: str = "",
) -> dns.message.Message | _Forward:
    """The response to one request, or `FORWARD` when the recursors should answer it.
    `source_ip`: the asker's address; an EDNS client-subnet option in the request wins."""
    result = await _answer(request, catalog, settings, tcp, rng, now, source_ip)
    return to_message(request, result) if isinstance(result, Answer) else result


async def resolve_wire(
    request: dns.message.Message,
    catalog: Catalog,
    settings: DNSSettings,
    *,
    tcp: bool = False,
    rng: random.Random | None = None,
    source_ip: str = "",
) -> bytes | _Forward:
    """`resolve`, encoded: the bytes `resolve(...).to_wire()` gives, made without building
    the message (`agent.dns_wire`) whenever that can be done."""
    result = await _answer(request, catalog, settings, tcp, rng, None, source_ip)
    if isinstance(result, Answer):
        return _encoded(request, result)
    if isinstance(result, dns.message.Message):
        return result.to_wire(max_size=65535)
    return result


def _encoded(request: dns.message.Message, answer: Answer) -> bytes:
    wire = encode(request, answer)
    return wire if wire is not None else to_message(request, answer).to_wire(max_size=65535)


async def _answer(
    request: dns.message.Message,
    catalog: Catalog,
    settings: DNSSettings,
    tcp: bool,
    rng: random.Random | None,
    now: float | None,
    source_ip: str,
) -> Answer | dns.message.Message | _Forward:
    """The answer to encode, a message already made (a refusal), or FORWARD."""
    if not request.question:
        return refused(request)
    question = request.question[0]
    qname = question.name.to_text()
    zone = in_zone(qname.lower(), settings)
    if zone is None:
        return FORWARD if settings.recursors else refused(request)
    ctx = Context(
        qname=qname,
        qtype=question.rdtype,
        settings=settings,
        resp_domain=response_domain(qname, zone) if zone else settings.domain,
        catalog=catalog,
        rng=rng or random.Random(),
        now=time.time() if now is None else now,
        source_ip=_client_subnet(request) or source_ip,
    )
    if not zone:
        answer = await ptr_answer(ctx)
        if answer is None:
            return FORWARD
        return answer  # Consul does not trim PTR answers
    answer = await domain_answer(ctx)
    payload = request.payload if request.edns >= 0 else None
    dropped = trim(
        answer,
        tcp=tcp,
        payload=payload,
        question_len=name_wire_len(qname) + 4,
        udp_answer_limit=settings.udp_answer_limit,
        measure=lambda a: len(_encoded(request, a)),
    )
    answer.truncated = dropped and settings.enable_truncate
    return answer
