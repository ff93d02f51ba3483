"""agent/dns_wire.py encodes an answer byte for byte as dnspython's message would: every
question of the resolver's test catalog, over UDP and TCP, with and without EDNS, trimmed
answers included, gives the same bytes from `resolve_wire` as from `resolve(...).to_wire()`."""

from __future__ import annotations

import asyncio
import random

import dns.flags
import dns.message
import pytest

import agent.dns
from agent.dns import resolve, resolve_wire
from agent.dns_catalog import Instance, MemoryCatalog, NodeRecord, QueryAnswer
from agent.dns_settings import DNSSettings
from tests.unit.test_dns import CATALOG, N1

BIG = MemoryCatalog(
    [NodeRecord(f"n{i:02}", f"10.3.{i // 250}.{i % 250 + 1}", "dc1") for i in range(40)],
    [
        Instance(
            NodeRecord(f"n{i:02}", f"10.3.{i // 250}.{i % 250 + 1}", "dc1"), "big", f"b{i}", port=80
        )
        for i in range(40)
    ],
    {("q", ""): QueryAnswer("web", "dc2", [Instance(N1, "web", "w", address="10.9.9.9", port=1)])},
)

QUESTIONS = [
    ("node1.node.consul.", "A"),
    ("NODE1.node.dc1.Consul.", "ANY"),
    ("node1.node.consul.", "TXT"),
    ("v6node.node.consul.", "AAAA"),
    ("ext.node.consul.", "A"),
    ("web.service.consul.", "A"),
    ("web.service.consul.", "SRV"),
    ("v1.web.service.consul.", "A"),
    ("_web._tcp.service.consul.", "SRV"),
    ("api.service.consul.", "SRV"),
    ("extsvc.service.consul.", "A"),
    ("extsvc.service.consul.", "SRV"),
    ("v6svc.service.consul.", "AAAA"),
    ("consul.", "SOA"),
    ("consul.", "NS"),
    ("nope.service.consul.", "A"),
    ("web.service.consul.", "MX"),
    ("0a000001.addr.consul.", "A"),
    ("1.0.0.10.in-addr.arpa.", "PTR"),
    ("9.9.9.9.in-addr.arpa.", "PTR"),
    ("example.com.", "A"),
    ("consul.", "AXFR"),
]


def _both(request: dns.message.Message, catalog, settings, tcp: bool) -> tuple[bytes, bytes]:
    def run(fn):
        kwargs = {"tcp": tcp, "rng": random.Random(3)}
        return asyncio.run(fn(request, catalog, settings, **kwargs))

    old = run(resolve)

    def no_fallback(*_: object) -> None:
        raise AssertionError("dnspython encoded an answer agent.dns_wire should have")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agent.dns, "to_message", no_fallback)
        new = run(resolve_wire)
    if not isinstance(old, dns.message.Message):
        assert old is new  # FORWARD
        return b"", b""
    return old.to_wire(max_size=65535), new


@pytest.mark.parametrize(("name", "rdtype"), QUESTIONS)
@pytest.mark.parametrize("edns", [None, 1232, 4096])
@pytest.mark.parametrize("tcp", [False, True])
def test_same_bytes_as_dnspython(name: str, rdtype: str, edns: int | None, tcp: bool) -> None:
    request = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 512)
    request.id = 4242
    old, new = _both(request, CATALOG, DNSSettings(), tcp)
    assert new == old


@pytest.mark.parametrize(
    "settings", [DNSSettings(), DNSSettings(udp_answer_limit=20), DNSSettings(enable_truncate=True)]
)
@pytest.mark.parametrize("rdtype", ["A", "SRV"])
@pytest.mark.parametrize("edns", [None, 1232])
@pytest.mark.parametrize("tcp", [False, True])
def test_trimmed_answers_alike(
    settings: DNSSettings, rdtype: str, edns: int | None, tcp: bool
) -> None:
    for name in ("big.service.consul.", "q.query.consul."):
        request = dns.message.make_query(
            name, rdtype, use_edns=edns is not None, payload=edns or 512
        )
        request.flags &= ~dns.flags.RD
        old, new = _both(request, BIG, settings, tcp)
        assert new == old
