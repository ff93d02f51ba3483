"""`<service>.connect.<domain>`: the Connect-capable instances of a service (its sidecar proxies
and Connect-native instances), healthy ones only, by their own address and port; from the
in-memory catalog and from a server's store."""

from __future__ import annotations

import asyncio
import json
import random

import dns.message
import dns.rcode
import dns.rdatatype

from agent.dns import resolve
from agent.dns_catalog import Catalog, Instance, MemoryCatalog, NodeRecord
from agent.dns_server import StoreCatalog
from agent.dns_settings import DNSSettings
from agent.http import catalog
from tests.harness import areas

N1 = NodeRecord("node1", "10.0.0.1", "dc1")
N2 = NodeRecord("node2", "10.0.0.2", "dc1")
WEB = Instance(N1, "web", "web1", port=8080, statuses=("passing",))
PROXY = Instance(N1, "web-sidecar-proxy", "web1-sidecar-proxy", port=21000, connect_for="web")
NATIVE = Instance(N2, "web", "web2", address="10.0.0.20", port=8443, connect_for="web")
DOWN = Instance(
    N2, "web-sidecar-proxy", "w3", port=21001, connect_for="web", statuses=("critical",)
)
CATALOG = MemoryCatalog([N1, N2], [WEB, PROXY, NATIVE, DOWN])


def ask(name: str, rdtype: str = "A", catalog: Catalog = CATALOG) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    answer = asyncio.run(
        resolve(query, catalog, DNSSettings(), tcp=False, rng=random.Random(3), now=0.0)
    )
    assert isinstance(answer, dns.message.Message)
    return answer


def records(msg: dns.message.Message, section: str = "answer") -> set[str]:
    return {r.to_text() for rrset in getattr(msg, section) for r in rrset}


def test_connect_a_records_are_the_proxies_and_native_instances() -> None:
    assert records(ask("web.connect.consul.")) == {"10.0.0.1", "10.0.0.20"}


def test_connect_srv_records_carry_the_proxy_ports() -> None:
    msg = ask("web.connect.consul.", "SRV")
    assert records(msg) == {
        "1 1 21000 node1.node.dc1.consul.",
        "1 1 8443 0a000014.addr.dc1.consul.",
    }


def test_connect_takes_no_tag_and_knows_its_datacenter() -> None:
    assert records(ask("v1.web.connect.consul.")) == {"10.0.0.1", "10.0.0.20"}
    assert records(ask("web.connect.dc1.consul.")) == {"10.0.0.1", "10.0.0.20"}
    assert ask("web.connect.dc2.consul.").rcode() == dns.rcode.NXDOMAIN
    assert ask("api.connect.consul.").rcode() == dns.rcode.NXDOMAIN
    assert ask("connect.consul.").rcode() == dns.rcode.NXDOMAIN


def test_connect_from_a_servers_store() -> None:
    deps = areas.dev_deps()
    for service in (
        {"Service": "web", "Port": 8080},
        {
            "Service": "web-sidecar-proxy",
            "Kind": "connect-proxy",
            "Port": 21000,
            "Proxy": {"DestinationServiceName": "web"},
        },
    ):
        body = {"Node": "node1", "Address": "10.0.0.1", "Service": service}
        areas.call(
            catalog.register, deps, "PUT", "/v1/catalog/register", b"", json.dumps(body).encode()
        )
    msg = ask("web.connect.consul.", "SRV", catalog=StoreCatalog(deps.store))
    assert [rrset.rdtype for rrset in msg.answer] == [dns.rdatatype.SRV]
    assert records(msg) == {"1 1 21000 node1.node.dc1.consul."}
