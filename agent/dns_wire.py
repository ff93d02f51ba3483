"""A response's wire bytes straight from its `Answer`, without building a dnspython message.

Building and encoding a `dns.message.Message` was most of the cost of an answer (the names,
the rrsets and the renderer's bookkeeping), so the DNS server encodes the record kinds the
resolver gives (A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT) here, byte for byte as
`agent.dns.to_message(...).to_wire()` would: the same header flags and counts, the question
echoed, every name compressed against every earlier suffix as dnspython does (except SRV
targets, which RFC 2782 leaves uncompressed), and an OPT record echoing the client's EDNS
payload. Anything else (another record kind, a message beyond 64 KiB) is None, and the
caller encodes through dnspython as before.
"""

from __future__ import annotations

import socket
import struct
from functools import lru_cache
from typing import TYPE_CHECKING

import dns.flags
import dns.rdatatype

from agent.dns_records import Answer, Record, to_name

if TYPE_CHECKING:
    import dns.message
    import dns.name

__all__ = ["encode"]

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_NS = dns.rdatatype.NS
_PTR = dns.rdatatype.PTR
_SOA = dns.rdatatype.SOA
_SRV = dns.rdatatype.SRV
_TXT = dns.rdatatype.TXT
_OPT = dns.rdatatype.OPT
_IN = 1
_MAX = 65535
_POINTER_LIMIT = 0x3FFF


class _Unsupported(Exception):
    """A record this encoder does not know: dnspython encodes the message instead."""


@lru_cache(maxsize=4096)
def _suffixes(labels: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], ...]:
    """Every suffix of a name, lower-cased: the keys names are compressed against."""
    lowered = tuple(label.lower() for label in labels)
    return tuple(lowered[i:] for i in range(len(lowered)))


class _Writer:
    __slots__ = ("out", "compress")

    def __init__(self) -> None:
        self.out = bytearray(12)  # the header, filled in last
        self.compress: dict[tuple[bytes, ...], int] = {}

    def name(self, name: dns.name.Name, compress: bool = True) -> None:
        labels = name.labels
        keys = _suffixes(labels) if compress else ()
        out = self.out
        for i, label in enumerate(labels):
            if not label:
                out.append(0)
                return
            if compress:
                key = keys[i]
                pos = self.compress.get(key)
                if pos is not None:
                    out += struct.pack("!H", 0xC000 + pos)
                    return
                if len(out) <= _POINTER_LIMIT:
                    self.compress[key] = len(out)
            out.append(len(label))
            out += label

    def record(self, rec: Record) -> None:
        rdata = rec.rdata
        rdtype = rdata.rdtype
        self.name(to_name(rec.name))
        self.out += struct.pack("!HHI", rdtype, _IN, rec.ttl)
        start = len(self.out)
        self.out += b"\0\0"  # rdlength, filled in below
        if rdtype == _A:
            self.out += socket.inet_aton(rdata.address)
        elif rdtype == _AAAA:
            self.out += socket.inet_pton(socket.AF_INET6, rdata.address)
        elif rdtype in (_CNAME, _NS, _PTR):
            self.name(rdata.target)
        elif rdtype == _SRV:
            self.out += struct.pack("!HHH", rdata.priority, rdata.weight, rdata.port)
            self.name(rdata.target, compress=False)
        elif rdtype == _TXT:
            for text in rdata.strings:
                self.out.append(len(text))
                self.out += text
        elif rdtype == _SOA:
            self.name(rdata.mname)
            self.name(rdata.rname)
            self.out += struct.pack(
                "!IIIII", rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum
            )
        else:
            raise _Unsupported
        struct.pack_into("!H", self.out, start, len(self.out) - start - 2)


def encode(request: dns.message.Message, answer: Answer) -> bytes | None:
    """The response's bytes, or None when dnspython must encode it."""
    flags = dns.flags.QR | (request.flags & dns.flags.RD)
    flags |= (request.opcode() & 0xF) << 11
    if answer.authoritative:
        flags |= dns.flags.AA
    if answer.recursion_available:
        flags |= dns.flags.RA
    if answer.truncated:
        flags |= dns.flags.TC
    if answer.rcode > 0xF:
        return None  # an extended rcode lives in the OPT record
    flags |= answer.rcode
    writer = _Writer()
    try:
        for question in request.question:
            writer.name(question.name)
            writer.out += struct.pack("!HH", question.rdtype, question.rdclass)
        for section in (answer.answer, answer.authority, answer.additional):
            for rec in section:
                writer.record(rec)
    except (_Unsupported, OSError, AttributeError, struct.error):
        return None
    additional = len(answer.additional)
    if request.edns >= 0:
        writer.out += b"\0" + struct.pack("!HHIH", _OPT, request.payload & 0xFFFF, 0, 0)
        additional += 1
    struct.pack_into(
        "!HHHHHH",
        writer.out,
        0,
        request.id,
        flags,
        len(request.question),
        len(answer.answer),
        len(answer.authority),
        additional,
    )
    if len(writer.out) > _MAX:
        return None
    return bytes(writer.out)
