"""The DNS resolver (agent/dns.py and the dns_* modules beside it) against an in-memory catalog:
names in, records out."""

from __future__ import annotations

import asyncio
import random

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from agent.config import load_config
from agent.dns import FORWARD, error_reply, parse_request, resolve
from agent.dns_catalog import (
    CatalogUnavailable,
    Instance,
    MemoryCatalog,
    NodeRecord,
    healthy,
    instance_from_json,
    srv_weight,
)
from agent.dns_names import in_zone, parse_locality, service_and_tag
from agent.dns_records import rfc1464
from agent.dns_settings import DNSSettings, recursor_address

NOW = 1_700_000_000.0

N1 = NodeRecord("node1", "10.0.0.1", "dc1", meta={"rack": "r1"})
N2 = NodeRecord("node2", "10.0.0.2", "dc1")
N3 = NodeRecord("node3", "10.0.0.3", "dc1")
N6 = NodeRecord("v6node", "fd00::6", "dc1")
NH = NodeRecord("ext", "db.example.com", "dc1")

WEB1 = Instance(N1, "web", "web1", port=80, tags=("v1", "Primary"), statuses=("passing",))
WEB2 = Instance(N2, "web", "web2", port=81, tags=("v2",), statuses=("passing", "warning"))
WEB3 = Instance(N3, "web", "web3", port=82, statuses=("passing", "critical"))
API = Instance(N1, "api", "api1", address="10.1.1.1", port=9000, statuses=())
CONSUL = Instance(N1, "consul", "consul", port=8300, statuses=("passing",))
V6 = Instance(N6, "v6svc", "v6", port=1)
EXT = Instance(NH, "extsvc", "e1", port=5432)

CATALOG = MemoryCatalog([N1, N2, N3, N6, NH], [WEB1, WEB2, WEB3, API, CONSUL, V6, EXT])


def ask(
    name: str,
    rdtype: str = "A",
    settings: DNSSettings | None = None,
    *,
    catalog=CATALOG,
    tcp: bool = False,
    edns: int | None = None,
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 512)
    result = asyncio.run(
        resolve(
            query,
            catalog,
            settings or DNSSettings(),
            tcp=tcp,
            rng=random.Random(7),
            now=NOW,
        )
    )
    assert result is not FORWARD
    return result


def records(msg: dns.message.Message, section: str = "answer") -> list[tuple[str, str, str]]:
    out = []
    for rrset in getattr(msg, section):
        for rdata in rrset:
            out.append((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text()))
    return sorted(out)


def answers(msg: dns.message.Message, rdtype: str = "A") -> list[str]:
    return sorted(data for _, kind, data in records(msg) if kind == rdtype)


# --------------------------------------------------------------------------- nodes


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("node1.node.consul.", "A", ["10.0.0.1"]),
        ("node1.node.dc1.consul.", "A", ["10.0.0.1"]),
        ("NODE1.Node.DC1.Consul.", "A", ["10.0.0.1"]),
        ("node1.node.consul.", "ANY", ["10.0.0.1"]),
        ("v6node.node.consul.", "AAAA", ["fd00::6"]),
    ],
)
def test_node_address(name: str, rdtype: str, expected: list[str]) -> None:
    msg = ask(name, rdtype)
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert answers(msg, "AAAA" if rdtype == "AAAA" else "A") == expected
    assert all(rrset.name.to_text() == name for rrset in msg.answer)


def test_node_meta_txt_in_additional_for_a_and_in_answer_for_txt() -> None:
    msg = ask("node1.node.consul.", "A")
    assert records(msg, "additional") == [("node1.node.consul.", "TXT", '"rack=r1"')]
    txt = ask("node1.node.consul.", "TXT")
    assert records(txt) == [("node1.node.consul.", "TXT", '"rack=r1"')]
    off = ask("node1.node.consul.", "A", DNSSettings(node_meta_txt=False))
    assert records(off, "additional") == []


def test_node_wrong_family_is_empty_success_without_soa() -> None:
    msg = ask("node2.node.consul.", "AAAA")
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.answer == [] and msg.authority == []


def test_node_hostname_address_is_cname() -> None:
    assert records(ask("ext.node.consul.")) == [("ext.node.consul.", "CNAME", "db.example.com.")]


def test_node_unsupported_type_is_empty_success() -> None:
    msg = ask("node1.node.consul.", "MX")
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == []


# --------------------------------------------------------------------------- not found / SOA


@pytest.mark.parametrize(
    "name",
    [
        "nope.node.consul.",
        "nope.service.consul.",
        "node1.node.dc2.consul.",  # no path to another datacenter
        "web.service.dc2.consul.",
        "web.service.a.b.c.consul.",  # malformed locality
        "consul.",
        "foo.consul.",
        "q1.query.consul.",  # no such prepared query
        "web.connect.consul.",
        "zz.addr.consul.",
    ],
)
def test_nxdomain_with_soa(name: str) -> None:
    msg = ask(name)
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.answer == []
    [soa] = msg.authority
    assert soa.name.to_text() == "consul."
    data = soa[0]
    assert (data.mname.to_text(), data.rname.to_text()) == ("ns.consul.", "hostmaster.consul.")
    assert (data.refresh, data.retry, data.expire, data.minimum) == (3600, 600, 86400, 0)
    assert data.serial == int(NOW)
    assert soa.ttl == 0


def test_service_nodata_has_soa() -> None:
    msg = ask("web.service.consul.", "AAAA")
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.answer == []
    assert [r.rdtype for r in msg.authority] == [dns.rdatatype.SOA]


# --------------------------------------------------------------------------- services


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web.service.consul.", ["10.0.0.1", "10.0.0.2"]),  # critical web3 dropped
        ("WEB.Service.Consul.", ["10.0.0.1", "10.0.0.2"]),
        ("web.service.dc1.consul.", ["10.0.0.1", "10.0.0.2"]),
        ("v1.web.service.consul.", ["10.0.0.1"]),
        ("primary.web.service.consul.", ["10.0.0.1"]),  # tags match case-insensitively
        ("_web._v2.service.consul.", ["10.0.0.2"]),
        ("_web._tcp.service.consul.", ["10.0.0.1", "10.0.0.2"]),
        ("api.service.consul.", ["10.1.1.1"]),  # the service's own address wins
        ("consul.service.consul.", ["10.0.0.1"]),
    ],
)
def test_service_a(name: str, expected: list[str]) -> None:
    msg = ask(name)
    assert msg.rcode() == dns.rcode.NOERROR
    assert answers(msg) == expected


def test_service_unknown_tag_is_nxdomain() -> None:
    assert ask("v9.web.service.consul.").rcode() == dns.rcode.NXDOMAIN


def test_only_passing_drops_warning() -> None:
    msg = ask("web.service.consul.", settings=DNSSettings(only_passing=True))
    assert answers(msg) == ["10.0.0.1"]


def test_all_critical_is_nxdomain() -> None:
    assert ask("v2.web.service.consul.", settings=DNSSettings(only_passing=True)).rcode() == 3


def test_service_srv_targets_and_additional() -> None:
    msg = ask("web.service.consul.", "SRV")
    assert answers(msg, "SRV") == [
        "1 1 80 node1.node.dc1.consul.",
        "1 1 81 node2.node.dc1.consul.",
    ]
    extra = records(msg, "additional")
    assert ("node1.node.dc1.consul.", "A", "10.0.0.1") in extra
    assert ("node2.node.dc1.consul.", "A", "10.0.0.2") in extra
    assert ("node1.node.dc1.consul.", "TXT", '"rack=r1"') in extra


def test_srv_target_is_addr_name_for_a_service_address() -> None:
    msg = ask("api.service.consul.", "SRV")
    assert answers(msg, "SRV") == ["1 1 9000 0a010101.addr.dc1.consul."]
    assert ("0a010101.addr.dc1.consul.", "A", "10.1.1.1") in records(msg, "additional")


def test_rfc2782_srv() -> None:
    msg = ask("_web._tcp.service.consul.", "SRV")
    assert len(answers(msg, "SRV")) == 2
    # for SRV the "service" label may be left out
    msg = ask("_web._v1.consul.", "SRV")
    assert answers(msg, "SRV") == ["1 1 80 node1.node.dc1.consul."]


def test_srv_weights_follow_health() -> None:
    inst = Instance(N1, "w", port=1, weight_passing=10, weight_warning=2, statuses=("passing",))
    warn = Instance(N2, "w", port=1, weight_passing=10, weight_warning=2, statuses=("warning",))
    assert (srv_weight(inst), srv_weight(warn)) == (10, 2)
    msg = ask("w.service.consul.", "SRV", catalog=MemoryCatalog([N1, N2], [inst, warn]))
    assert answers(msg, "SRV") == [
        "1 10 1 node1.node.dc1.consul.",
        "1 2 1 node2.node.dc1.consul.",
    ]


def test_service_ttl_and_node_ttl() -> None:
    settings = DNSSettings(node_ttl=30, service_ttl={"*": 5, "we*": 7, "web": 11})
    assert ask("web.service.consul.", settings=settings).answer[0].ttl == 11
    assert ask("api.service.consul.", settings=settings).answer[0].ttl == 5
    assert ask("node1.node.consul.", settings=settings).answer[0].ttl == 30
    assert settings.ttl_for_service("webby") == 7


def test_hostname_service_is_cname_and_srv_target() -> None:
    assert records(ask("extsvc.service.consul.")) == [
        ("extsvc.service.consul.", "CNAME", "db.example.com.")
    ]
    assert answers(ask("extsvc.service.consul.", "SRV"), "SRV") == ["1 1 5432 db.example.com."]


def test_ipv6_service() -> None:
    assert answers(ask("v6svc.service.consul.", "AAAA"), "AAAA") == ["fd00::6"]
    assert ask("v6svc.service.consul.", "A").rcode() == dns.rcode.NOERROR  # NODATA


def test_duplicate_addresses_collapse() -> None:
    a = Instance(N1, "dup", "a", port=1)
    b = Instance(N1, "dup", "b", port=2)
    catalog = MemoryCatalog([N1], [a, b])
    assert answers(ask("dup.service.consul.", catalog=catalog)) == ["10.0.0.1"]
    assert len(answers(ask("dup.service.consul.", "SRV", catalog=catalog), "SRV")) == 2


# --------------------------------------------------------------------------- limits


def many(count: int) -> MemoryCatalog:
    nodes = [NodeRecord(f"n{i}", f"10.2.0.{i}", "dc1") for i in range(1, count + 1)]
    return MemoryCatalog(nodes, [Instance(n, "big", n.name, port=80) for n in nodes])


def test_udp_answer_limit_and_truncation_flag() -> None:
    catalog = many(10)
    assert len(answers(ask("big.service.consul.", catalog=catalog))) == 3
    msg = ask("big.service.consul.", catalog=catalog, settings=DNSSettings(udp_answer_limit=5))
    assert len(answers(msg)) == 5 and not msg.flags & dns.flags.TC
    msg = ask("big.service.consul.", catalog=catalog, settings=DNSSettings(enable_truncate=True))
    assert msg.flags & dns.flags.TC
    srv = ask("big.service.consul.", "SRV", catalog=catalog)
    assert len(srv.answer) == 3 and len(records(srv, "additional")) == 3
    assert len(answers(ask("big.service.consul.", catalog=catalog, tcp=True))) == 10


def test_edns_lifts_the_count_limit_but_not_the_size() -> None:
    catalog = many(200)
    msg = ask("big.service.consul.", catalog=catalog, edns=1232)
    count = len(answers(msg))
    assert 10 < count < 200
    assert len(msg.to_wire()) <= 1232
    assert msg.edns == 0 and msg.payload == 1232


def test_a_record_limit() -> None:
    msg = ask(
        "big.service.consul.", catalog=many(5), tcp=True, settings=DNSSettings(a_record_limit=2)
    )
    assert len(answers(msg)) == 2


def test_shuffles() -> None:
    catalog = many(8)
    seen = set()
    for seed in range(6):
        query = dns.message.make_query("big.service.consul.", "A")
        msg = asyncio.run(resolve(query, catalog, DNSSettings(), tcp=True, rng=random.Random(seed)))
        seen.add(tuple(r.to_text() for rrset in msg.answer for r in rrset))
    assert len(seen) > 1


# --------------------------------------------------------------------------- addr, PTR, SOA, NS


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("7f000001.addr.dc1.consul.", "A", ("A", "127.0.0.1")),
        ("7f000001.addr.consul.", "A", ("A", "127.0.0.1")),
        ("fd000000000000000000000000000006.addr.dc1.consul.", "AAAA", ("AAAA", "fd00::6")),
    ],
)
def test_addr(name: str, rdtype: str, expected: tuple[str, str]) -> None:
    assert [(kind, data) for _, kind, data in records(ask(name, rdtype))] == [expected]


def test_addr_other_type_goes_to_additional() -> None:
    msg = ask("7f000001.addr.dc1.consul.", "SRV")
    assert msg.answer == [] and msg.rcode() == dns.rcode.NOERROR
    assert records(msg, "additional") == [("7f000001.addr.dc1.consul.", "A", "127.0.0.1")]


def test_ptr_for_node_and_service_addresses() -> None:
    msg = ask("1.0.0.10.in-addr.arpa.", "PTR")
    assert records(msg) == [("1.0.0.10.in-addr.arpa.", "PTR", "node1.node.dc1.consul.")]
    msg = ask("1.1.1.10.in-addr.arpa.", "PTR")
    assert records(msg) == [("1.1.1.10.in-addr.arpa.", "PTR", "api.service.dc1.consul.")]
    missing = ask("9.9.9.10.in-addr.arpa.", "PTR")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in missing.authority] == [dns.rdatatype.SOA]


def test_soa_and_ns_list_servers() -> None:
    msg = ask("consul.", "SOA")
    assert [r.rdtype for r in msg.answer] == [dns.rdatatype.SOA]
    assert records(msg, "authority") == [("consul.", "NS", "node1.node.dc1.consul.")]
    assert records(msg, "additional") == [("node1.node.dc1.consul.", "A", "10.0.0.1")]
    ns = ask("consul.", "NS")
    assert records(ns) == [("consul.", "NS", "node1.node.dc1.consul.")]


# --------------------------------------------------------------------------- domains, errors


def test_outside_domain_is_refused_or_forwarded() -> None:
    msg = ask("example.com.")
    assert msg.rcode() == dns.rcode.REFUSED and not msg.flags & dns.flags.AA
    query = dns.message.make_query("example.com.", "A")
    settings = DNSSettings(recursors=(("127.0.0.1", 53),))
    assert asyncio.run(resolve(query, CATALOG, settings)) is FORWARD
    ptr = dns.message.make_query("9.9.9.10.in-addr.arpa.", "PTR")
    assert asyncio.run(resolve(ptr, CATALOG, settings)) is FORWARD
    inside = asyncio.run(
        resolve(dns.message.make_query("web.service.consul.", "A"), CATALOG, settings)
    )
    assert inside.flags & dns.flags.RA


def test_custom_and_alt_domain() -> None:
    settings = DNSSettings(domain="gitkv.", alt_domain="test.example.")
    assert answers(ask("node1.node.gitkv.", settings=settings)) == ["10.0.0.1"]
    msg = ask("web.service.test.example.", "SRV", settings=settings)
    assert answers(msg, "SRV")[0].endswith(".node.dc1.test.example.")
    nx = ask("nope.service.test.example.", settings=settings)
    assert nx.authority[0].name.to_text() == "test.example."
    assert ask("node1.node.consul.", settings=settings).rcode() == dns.rcode.REFUSED


def test_catalog_failure_is_servfail() -> None:
    class Broken(MemoryCatalog):
        async def service(self, name: str) -> list[Instance]:
            raise CatalogUnavailable("No known Consul servers")

    assert ask("web.service.consul.", catalog=Broken()).rcode() == dns.rcode.SERVFAIL


def test_axfr_not_implemented() -> None:
    assert ask("consul.", "AXFR", tcp=True).rcode() == dns.rcode.NOTIMP


def test_parse_request_rejects() -> None:
    query = dns.message.make_query("web.service.consul.", "A")
    assert isinstance(parse_request(query.to_wire()), dns.message.Message)
    assert parse_request(b"\x00\x01") is None
    response = dns.message.make_response(query).to_wire()
    assert parse_request(response) is None
    garbage = query.to_wire()[:12] + b"\xff\xff"
    reply = parse_request(garbage)
    assert isinstance(reply, bytes) and reply[3] & 0x0F == dns.rcode.FORMERR
    notify = bytearray(query.to_wire())
    notify[2] |= 4 << 3
    reply = parse_request(bytes(notify))
    assert isinstance(reply, bytes) and reply[3] & 0x0F == dns.rcode.NOTIMP
    assert error_reply(bytes(12), 2)[:2] == b"\x00\x00"


# --------------------------------------------------------------------------- small parts


def test_helpers() -> None:
    assert service_and_tag(["_web", "_tcp"]) == ("web", "")
    assert service_and_tag(["_web", "_v1"]) == ("web", "v1")
    assert service_and_tag(["a", "b", "web"]) == ("web", "a.b")
    assert parse_locality([]) == ("", "")
    assert parse_locality(["dc2"]) == ("dc2", "")
    assert parse_locality(["dc2", "dc"]) == ("dc2", "")
    assert parse_locality(["p", "peer"]) == ("", "p")
    assert parse_locality(["a", "b"]) is None
    assert parse_locality(["a", "b", "c"]) is None
    assert in_zone("web.service.consul.", DNSSettings()) == "consul."
    assert in_zone("1.in-addr.arpa.", DNSSettings()) == ""
    assert in_zone("example.com.", DNSSettings()) is None
    assert recursor_address("8.8.8.8") == ("8.8.8.8", 53)
    assert recursor_address("8.8.8.8:5353") == ("8.8.8.8", 5353)
    assert recursor_address("[::1]:5353") == ("::1", 5353)
    assert recursor_address("::1") == ("::1", 53)
    assert rfc1464("a=b", "c`d") == "a`=b=c``d"
    assert rfc1464(" k ", "v") == "` k` =v"
    assert healthy([WEB1, WEB2, WEB3], only_passing=False) == [WEB1, WEB2]


def test_settings_from_config() -> None:
    dns_config = (
        'dns_config { node_ttl = "10s" service_ttl = { "*" = "1m" } only_passing = true '
        'udp_answer_limit = 2 soa { min_ttl = 5 } recursor_timeout = "500ms" }'
    )
    config = load_config(
        ["-dev", "-datacenter=DC1", "-node=n", "-recursor=1.1.1.1", f"-hcl={dns_config}"],
        environ={},
    )
    settings = DNSSettings.from_config(config)
    assert settings.datacenter == "dc1" and settings.domain == "consul."
    assert (settings.node_ttl, settings.ttl_for_service("x"), settings.soa_min_ttl) == (10, 60, 5)
    assert settings.only_passing and settings.udp_answer_limit == 2
    assert settings.recursors == (("1.1.1.1", 53),) and settings.recursor_timeout == 0.5


def test_instance_from_json() -> None:
    inst = instance_from_json(
        {
            "Node": {"Node": "n", "Address": "10.0.0.9", "Datacenter": "dc1", "Meta": {}},
            "Service": {
                "ID": "s1",
                "Service": "s",
                "Tags": ["t"],
                "Port": 5,
                "Weights": {"Passing": 3, "Warning": 1},
            },
            "Checks": [{"Status": "passing"}, {"Status": "warning"}],
        }
    )
    assert (inst.node.address, inst.port, inst.tags, inst.statuses) == (
        "10.0.0.9",
        5,
        ("t",),
        ("passing", "warning"),
    )
    assert srv_weight(inst) == 1


# --------------------------------------------------------------------------- adapters, server


def test_store_catalog_reads_the_state_store() -> None:
    from agent.dns_server import StoreCatalog
    from agent.state.store import Store
    from agent.state.structs import HealthCheck, Node, Service, Weights

    store = Store()
    store.ensure_node(1, Node("Alpha", "10.9.0.1", Datacenter="dc1", Meta={"k": "v"}))
    store.ensure_service(2, "Alpha", Service("db1", "db", Port=5432, Weights=Weights(5, 1)))
    store.ensure_service(3, "Alpha", Service("db2", "db", Address="10.9.0.2", Port=5433))
    store.ensure_check(4, HealthCheck("Alpha", "serfHealth", Status="passing"))
    store.ensure_check(5, HealthCheck("Alpha", "c2", Status="critical", ServiceID="db2"))
    catalog = StoreCatalog(store)

    assert answers(ask("alpha.node.consul.", catalog=catalog)) == ["10.9.0.1"]
    msg = ask("DB.service.consul.", "SRV", catalog=catalog)
    assert answers(msg, "SRV") == ["1 5 5432 Alpha.node.dc1.consul."]  # db2 is critical
    assert records(ask("2.0.9.10.in-addr.arpa.", "PTR", catalog=catalog)) == [
        ("2.0.9.10.in-addr.arpa.", "PTR", "db.service.dc1.consul.")
    ]


def test_server_handle_without_sockets() -> None:
    from agent.dns_server import DNSServer

    server = DNSServer(CATALOG, DNSSettings(), rng=random.Random(1))
    query = dns.message.make_query("web.service.consul.", "A")
    reply = dns.message.from_wire(asyncio.run(server.handle(query.to_wire(), tcp=False)))
    assert reply.id == query.id and answers(reply) == ["10.0.0.1", "10.0.0.2"]
    assert asyncio.run(server.handle(b"\x01", tcp=False)) is None
    bad = asyncio.run(server.handle(query.to_wire()[:12] + b"\x00", tcp=True))
    assert bad[3] & 0x0F == dns.rcode.FORMERR


def test_server_forwarding_fails_over_to_servfail() -> None:
    from agent.dns_server import DNSServer

    # Nothing listens on port 9 of 127.0.0.1 (discard): the recursor fails fast or times out.
    settings = DNSSettings(recursors=(("127.0.0.1", 9),), recursor_timeout=0.2)
    server = DNSServer(CATALOG, settings)
    query = dns.message.make_query("example.com.", "A")
    reply = dns.message.from_wire(asyncio.run(server.handle(query.to_wire(), tcp=False)))
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.flags & dns.flags.RA
