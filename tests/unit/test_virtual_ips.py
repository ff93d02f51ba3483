"""Service virtual IPs (agent/state/vips.py, the store's writes, the FSM, the HTTP area and
DNS) on in-memory twins: Consul's 240.0.0.0/4 allocation order, freeing and reuse, entries
that hold an IP, manual IPs taken from other services, snapshots, `.virtual.` answers."""

from __future__ import annotations

import asyncio
import json
import random

import dns.message
import dns.rcode
import pytest

from agent.dns import resolve
from agent.dns_server import StoreCatalog
from agent.dns_settings import DNSSettings
from agent.http import catalog, virtual_ips
from agent.http.app import HTTPError
from agent.http.deps import HTTPDeps
from agent.state import vips
from agent.state.commands import ConfigEntryDelete, ConfigEntrySet, Deregister
from agent.state.store import Store
from tests.harness import areas


def test_allocation_starts_at_240_0_0_1_and_reuses_the_lowest_freed() -> None:
    table = vips.VirtualIPs()
    assert table.assign("a", 5) == ("240.0.0.1", True)
    assert table.assign("b", 6) == ("240.0.0.2", True)
    assert table.assign("c", 7) == ("240.0.0.3", True)
    assert table.assign("a", 8) == ("240.0.0.1", False)  # kept
    assert table.free("c") and table.free("a")
    assert table.assign("d", 9) == ("240.0.0.1", True)  # lowest freed first
    assert table.assign("e", 9) == ("240.0.0.3", True)
    assert table.assign("f", 9) == ("240.0.0.4", True)  # then the counter again
    assert vips.address(256) == "240.0.1.0"


def test_the_range_ends_below_consuls_max_offset() -> None:
    table = vips.VirtualIPs()
    table.counter = int(vips.ipaddress.IPv4Address("15.255.255.252"))
    assert table.assign("last", 1) == ("255.255.255.253", True)
    assert table.exhausted_for("more")
    assert not table.exhausted_for("last")
    assert table.assign("more", 2) == ("", False)


def test_manual_ips_move_between_services() -> None:
    table = vips.VirtualIPs()
    assert table.set_manual("web", ["10.0.0.1"], 3) == (False, [])  # no record yet
    table.assign("web", 4)
    table.assign("db", 4)
    assert table.set_manual("web", ["10.0.0.1", "10.0.0.2"], 5) == (True, [])
    assert table.set_manual("db", ["10.0.0.2", "10.0.0.3"], 6) == (True, ["web"])
    assert table.assigned["web"]["ManualIPs"] == ["10.0.0.1"]
    assert table.assigned["db"]["ManualIPs"] == ["10.0.0.2", "10.0.0.3"]
    assert table.set_manual("db", ["10.0.0.3", "10.0.0.2"], 7) == (True, [])  # same set
    assert table.assigned["db"]["ModifyIndex"] == 6


def _register(deps: HTTPDeps, service: dict, node: str = "node1") -> None:
    body = {"Node": node, "Address": "10.0.0.1", "Service": service}
    areas.call(
        catalog.register, deps, "PUT", "/v1/catalog/register", b"", json.dumps(body).encode()
    )


PROXY = {
    "Service": "web-sidecar-proxy",
    "Kind": "connect-proxy",
    "Port": 21000,
    "Proxy": {"DestinationServiceName": "web"},
}


def _catalog(deps: HTTPDeps, name: str) -> list[dict]:
    return json.loads(areas.call(catalog.register, deps, "GET", f"/v1/catalog/service/{name}").body)


def test_a_proxy_gives_its_destination_a_virtual_ip_shown_on_the_proxy() -> None:
    deps = areas.dev_deps()
    _register(deps, {"Service": "web", "Port": 8080})
    _register(deps, PROXY)
    _register(deps, {"Service": "api", "Port": 9090, "Connect": {"Native": True}})
    (proxy,) = _catalog(deps, "web-sidecar-proxy")
    assert proxy["ServiceTaggedAddresses"]["consul-virtual"] == {
        "Address": "240.0.0.1",
        "Port": 21000,
    }
    (native,) = _catalog(deps, "api")
    assert native["ServiceTaggedAddresses"]["consul-virtual"]["Address"] == "240.0.0.2"
    (web,) = _catalog(deps, "web")
    assert "consul-virtual" not in (web.get("ServiceTaggedAddresses") or {})
    # Registering the proxy again keeps its IP and changes nothing.
    index = deps.store.table_index("services")
    _register(deps, PROXY)
    assert deps.store.table_index("services") == index


def test_the_last_instance_of_the_service_frees_its_ip_unless_an_entry_names_it() -> None:
    deps = areas.dev_deps()
    _register(deps, {"Service": "web", "Port": 8080})
    _register(deps, PROXY)
    write = deps.writer.write
    asyncio.run(write(ConfigEntrySet(Entry={"Kind": "service-resolver", "Name": "web"})))
    asyncio.run(write(Deregister(Node="node1", ServiceID="web")))
    assert deps.store.vips.ip_of("web") == "240.0.0.1"  # the resolver holds it
    # A resolver for a service with no proxy at all gives it one too.
    asyncio.run(write(ConfigEntrySet(Entry={"Kind": "service-resolver", "Name": "db"})))
    assert deps.store.vips.ip_of("db") == "240.0.0.2"
    asyncio.run(write(ConfigEntryDelete(EntryKind="service-resolver", Name="web")))
    assert deps.store.vips.ip_of("web") == ""  # no instance of "web", no entry: freed
    _register(
        deps, {"Service": "other-proxy", **{k: v for k, v in PROXY.items() if k != "Service"}}
    )
    assert deps.store.vips.ip_of("web") == "240.0.0.1"  # the freed IP comes back first


def test_snapshots_carry_the_virtual_ips() -> None:
    deps = areas.dev_deps()
    _register(deps, PROXY)
    asyncio.run(deps.writer.write(ConfigEntrySet(Entry={"Kind": "service-resolver", "Name": "db"})))
    deps.store.vips.set_manual("db", ["10.1.1.1"], 99)
    copy = Store()
    copy.restore(deps.store.snapshot())
    assert copy.vips.dump() == deps.store.vips.dump()
    assert copy.vips.ip_of("db") == "240.0.0.2"


def _assign(deps: HTTPDeps, body: object) -> dict:
    raw = json.dumps(body).encode()
    answer = areas.call(
        virtual_ips.register, deps, "PUT", "/v1/internal/service-virtual-ip", b"", raw
    )
    return json.loads(answer.body)


def test_manual_vips_endpoint() -> None:
    deps = areas.dev_deps()
    assert _assign(deps, {"Service": "web", "ManualVIPs": ["1.2.3.4"]}) == {
        "Found": False,
        "UnassignedFrom": None,
    }
    _register(deps, PROXY)
    _register(deps, {**PROXY, "Service": "db-proxy", "Proxy": {"DestinationServiceName": "db"}})
    assert _assign(deps, {"service": "web", "manualvips": ["1.2.3.4", "1.2.3.5"]}) == {
        "Found": True,
        "UnassignedFrom": None,
    }
    assert _assign(deps, {"Service": "db", "ManualVIPs": ["1.2.3.5"]}) == {
        "Found": True,
        "UnassignedFrom": [{"ServiceName": {"Name": "web"}, "Peer": ""}],
    }
    assert deps.store.vips.assigned["web"]["ManualIPs"] == ["1.2.3.4"]


@pytest.mark.parametrize(
    ("ips", "message"),
    [
        (["nope"], '"<nil>" is not a valid IPv4 address'),
        (["1.2.3.4", "2001:db8::1"], '"2001:db8::1" is not a valid IPv4 address'),
    ],
)
def test_manual_vips_must_be_ipv4_and_change_nothing(ips: list[str], message: str) -> None:
    deps = areas.dev_deps()
    _register(deps, PROXY)
    with pytest.raises(HTTPError) as err:
        _assign(deps, {"Service": "web", "ManualVIPs": ips})
    assert (err.value.status, err.value.message) == (500, message)
    assert deps.store.vips.assigned["web"]["ManualIPs"] == []


def test_manual_vips_body_types_are_go_decoded() -> None:
    deps = areas.dev_deps()
    with pytest.raises(HTTPError) as err:
        _assign(deps, {"Service": 5})
    assert err.value.status == 400
    assert err.value.message.startswith("Request decode failed: json: cannot unmarshal number")


def _ask(name: str, store: Store, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    answer = asyncio.run(
        resolve(query, StoreCatalog(store), DNSSettings(), tcp=False, rng=random.Random(1))
    )
    assert isinstance(answer, dns.message.Message)
    return answer


def test_dns_virtual_lookup_answers_the_ip() -> None:
    deps = areas.dev_deps()
    _register(deps, PROXY)
    msg = _ask("web.virtual.consul.", deps.store)
    assert msg.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for rrset in msg.answer for r in rrset] == ["240.0.0.1"]
    assert msg.answer[0].ttl == DNSSettings().node_ttl
    assert [r.to_text() for s in _ask("WEB.virtual.consul.", deps.store).answer for r in s] == [
        "240.0.0.1"
    ]
    # no virtual IP, or a peer named (no peerings here): an empty success
    for name in ("db.virtual.consul.", "web.virtual.some-peer.consul."):
        empty = _ask(name, deps.store)
        assert empty.rcode() == dns.rcode.NOERROR and not empty.answer


def test_manual_vips_need_mesh_write() -> None:
    import dataclasses

    from agent.config import load_config
    from agent.http.app import Request
    from agent.http.reads import Reads
    from agent.http.routes import build_router
    from tests.harness.twins import http_deps

    config = load_config(["-dev"])
    acl = dataclasses.replace(config.acl, enabled=True, default_policy="deny")
    deps = http_deps(dataclasses.replace(config, acl=acl))
    path = "/v1/internal/service-virtual-ip"
    methods, rest, _ = build_router(deps).match(path)
    assert methods is not None
    scope = {"method": "PUT", "path": path, "query_string": b"", "headers": []}

    async def receive() -> dict:
        body = b'{"Service": "web", "ManualVIPs": ["1.2.3.4"]}'
        return {"type": "http.request", "body": body, "more_body": False}

    req = Request(scope, receive, deps.acl, Reads(deps.store.watches, deps.leadership))
    with pytest.raises(HTTPError) as err:
        asyncio.run(methods["PUT"](req, rest))
    assert err.value.status == 403 and "'mesh:write'" in err.value.message


def test_the_discovery_chain_carries_the_services_virtual_ips() -> None:
    from agent.http import discovery_chain
    from agent.state.commands import CASet

    deps = areas.dev_deps()
    asyncio.run(
        deps.writer.write(
            CASet(ClusterID="11111111-2222-3333-4444-555555555555", Config={}, Roots=[])
        )
    )

    def read(name: str) -> dict:
        answer = areas.call(discovery_chain.register, deps, "GET", f"/v1/discovery-chain/{name}")
        return json.loads(answer.body)["Chain"]

    chain = read("web")
    assert chain["AutoVirtualIPs"] is None and chain["ManualVirtualIPs"] is None
    _register(deps, PROXY)
    deps.store.vips.set_manual("web", ["10.9.9.9"], deps.store.last_index)
    chain = read("web")
    assert chain["AutoVirtualIPs"] == ["240.0.0.1"]
    assert chain["ManualVirtualIPs"] == ["10.9.9.9"]
