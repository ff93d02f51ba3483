"""`<query>.query[.<dc>].<domain>` in the DNS resolver: the catalog's execution of the query
answered as `.service.` answers (A and SRV), its TTL, the datacenter and the asker's address
handed over, and what is NXDOMAIN."""

from __future__ import annotations

import asyncio
import random

import dns.edns
import dns.message
import dns.rcode

from agent.dns import resolve
from agent.dns_catalog import Instance, MemoryCatalog, NodeRecord, QueryAnswer
from agent.dns_settings import DNSSettings

N1 = NodeRecord("node1", "10.0.0.1", "dc1")
N2 = NodeRecord("far1", "10.9.0.1", "dc2")
LOCAL = Instance(N1, "web", "web1", port=80, statuses=("passing",))
FAR = Instance(N2, "web", "web9", address="10.9.9.9", port=90, statuses=("passing",))


def _catalog() -> MemoryCatalog:
    return MemoryCatalog(
        [N1],
        [LOCAL],
        {
            ("web", ""): QueryAnswer("web", "dc1", [LOCAL], ttl="15s"),
            ("fo", ""): QueryAnswer("web", "dc2", [FAR]),
            ("a.b", "dc2"): QueryAnswer("web", "dc2", [FAR], ttl="1m"),
            ("empty", ""): QueryAnswer("web", "dc2", []),
        },
    )


def ask(catalog, name, rdtype="A", settings=None, ecs=None, source_ip="192.0.2.7"):
    options = [dns.edns.ECSOption(ecs, 32)] if ecs else []
    query = dns.message.make_query(name, rdtype, use_edns=bool(options), options=options)
    return asyncio.run(
        resolve(
            query,
            catalog,
            settings or DNSSettings(),
            rng=random.Random(1),
            now=0.0,
            source_ip=source_ip,
        )
    )


def _rrs(msg, section="answer"):
    return [
        (rrset.name.to_text(), rrset.ttl, r.to_text())
        for rrset in getattr(msg, section)
        for r in rrset
    ]


def test_a_and_srv_with_the_query_ttl() -> None:
    catalog = _catalog()
    assert _rrs(ask(catalog, "web.query.consul.")) == [("web.query.consul.", 15, "10.0.0.1")]
    srv = ask(catalog, "web.query.consul.", "SRV")
    assert _rrs(srv) == [("web.query.consul.", 15, "1 1 80 node1.node.dc1.consul.")]
    assert catalog.asked[-1] == ("web", "", "192.0.2.7")


def test_failed_over_answer_names_the_other_datacenter() -> None:
    settings = DNSSettings(service_ttl={"w*": 4})  # no DNS.TTL: the agent's service_ttl
    msg = ask(_catalog(), "fo.query.consul.", "SRV", settings)
    assert _rrs(msg) == [("fo.query.consul.", 4, "1 1 90 0a090909.addr.dc2.consul.")]
    assert _rrs(msg, "additional") == [("0a090909.addr.dc2.consul.", 4, "10.9.9.9")]


def test_dotted_name_in_a_named_datacenter_and_ecs() -> None:
    catalog = _catalog()
    msg = ask(catalog, "A.B.query.DC2.consul.", ecs="198.51.100.4")
    assert [(ttl, data) for _, ttl, data in _rrs(msg)] == [(60, "10.9.9.9")]
    assert catalog.asked[-1] == ("a.b", "dc2", "198.51.100.4")


def test_not_found_and_no_instances_are_nxdomain() -> None:
    for name in (
        "nope.query.consul.",
        "empty.query.consul.",
        "query.consul.",
        "web.query.x.y.consul.",
    ):
        msg = ask(_catalog(), name)
        assert msg.rcode() == dns.rcode.NXDOMAIN, name
        assert msg.answer == [] and len(msg.authority) == 1
