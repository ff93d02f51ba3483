"""The pure summaries behind the operator and UI endpoints: usage counts, resolved exported
services, the UI's service summaries, host figures from /proc text, profile rendering and
the metrics proxy's URL rules."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter

import pytest

from agent import profiling
from agent.acl.authorizer import Authorizer
from agent.acl.rules import parse_rules
from agent.host_info import cpu_info, parse_meminfo
from agent.http.acl_authorize import decode, enforce
from agent.http.app import HTTPError
from agent.http.catalog import build_register
from agent.http.ui_metrics_proxy import target_url
from agent.http.ui_summary import listing, prepare, summarize
from agent.state.commands import ConfigEntrySet
from agent.state.exports import resolved_exported_services
from agent.state.usage import service_usage
from tests.harness.areas import dev_deps


def _deps_with(*services: dict, node: str = "n1"):
    deps = dev_deps()
    for service in services:
        body = {"Node": node, "Address": "10.0.0.1", "Service": service}
        asyncio.run(deps.writer.write(build_register(body, "dc1", [])))
    return deps


# ---------------------------------------------------------------------- usage


def test_usage_counts_kinds_natives_and_billable() -> None:
    deps = _deps_with(
        {"ID": "web1", "Service": "web"},
        {"ID": "web2", "Service": "web"},
        {"ID": "consul", "Service": "consul"},
        {"ID": "gw", "Service": "gw", "Kind": "mesh-gateway", "Port": 443},
        {"ID": "nat", "Service": "nat", "Port": 2, "Connect": {"Native": True}},
        {
            "ID": "p",
            "Service": "web-proxy",
            "Kind": "connect-proxy",
            "Port": 1,
            "Proxy": {"DestinationServiceName": "web"},
        },
    )
    index, usage = service_usage(deps.store)
    assert index == deps.store.table_index("services") > 0
    assert usage["Services"] == 5 and usage["ServiceInstances"] == 6 and usage["Nodes"] == 1
    assert usage["BillableServiceInstances"] == 3  # web x2 and nat; consul and kinds excluded
    kinds = usage["ConnectServiceInstances"]
    assert kinds["connect-proxy"] == kinds["mesh-gateway"] == kinds["connect-native"] == 1
    assert kinds["ingress-gateway"] == kinds["terminating-gateway"] == kinds["api-gateway"] == 0


def test_usage_of_an_empty_catalog_lists_every_kind() -> None:
    _, usage = service_usage(dev_deps().store)
    assert usage["ServiceInstances"] == 0 and len(usage["ConnectServiceInstances"]) == 6


# ---------------------------------------------------------------------- exports


def _export(deps, services: list[dict]) -> None:
    entry = {"Kind": "exported-services", "Name": "default", "Services": services}
    asyncio.run(deps.writer.write(ConfigEntrySet(Entry=entry)))


def test_exports_merge_expand_and_sort() -> None:
    deps = _deps_with(
        {"ID": "b", "Service": "b"},
        {"ID": "a", "Service": "a"},
        {"ID": "consul", "Service": "consul"},
        {"ID": "gw", "Service": "gw", "Kind": "terminating-gateway", "Port": 1},
    )
    assert resolved_exported_services(deps.store)[1] == []
    _export(
        deps,
        [
            {"Name": "b", "Consumers": [{"Peer": "z"}, {"Peer": "y"}]},
            {"Name": "b", "Consumers": [{"Peer": "y"}]},
            {"Name": "*", "Consumers": [{"Peer": "w"}]},
            {"Name": "solo", "Consumers": [{"Partition": "default"}]},
        ],
    )
    _, out = resolved_exported_services(deps.store)
    assert out == [
        {"Service": "a", "Consumers": {"Peers": ["w"]}},
        {"Service": "b", "Consumers": {"Peers": ["w", "y", "z"]}},
        {"Service": "solo", "Consumers": {}},  # CE reports peer consumers only
    ]


# ---------------------------------------------------------------------- UI summaries


def _instance(node: str, svc: dict, checks: list[tuple[str, str]] = ()) -> dict:
    service = {"Tags": [], "Meta": {}, "Proxy": {}, "Connect": {}} | svc
    return {
        "Node": {"Node": node, "Datacenter": "dc1"},
        "Service": service,
        "Checks": [{"CheckID": cid, "Status": status} for cid, status in checks],
    }


def test_summaries_follow_consul_rules() -> None:
    proxy = {"DestinationServiceName": "web", "Mode": "transparent"}
    dump = [
        _instance("n2", {"Service": "web", "Tags": ["b"]}, [("serfHealth", "passing")]),
        _instance("n1", {"Service": "web", "Tags": ["a", "b"]}, [("serfHealth", "passing")]),
        _instance("n1", {"Service": "web", "Tags": ["a"]}, [("serfHealth", "passing")]),
        _instance(
            "n1", {"Service": "p", "Kind": "connect-proxy", "Proxy": proxy}, [("c", "warning")]
        ),
        _instance(
            "n3",
            {"Service": "p2", "Kind": "connect-proxy", "Proxy": {"DestinationServiceName": "web"}},
        ),
    ]
    summaries, has_proxy = summarize(dump)
    assert has_proxy == {"web"}
    [p, p2, web] = prepare(summaries)
    assert (web["Nodes"], web["Tags"], web["InstanceCount"]) == (["n1", "n2"], ["a", "b"], 3)
    # serfHealth once per node; the proxy's warning is the service's too
    assert (web["ChecksPassing"], web["ChecksWarning"]) == (2, 1)
    assert web["TransparentProxy"] is False  # one of its proxies is not transparent
    assert p["Kind"] == "connect-proxy" and "Kind" not in web
    assert [s["Name"] for s in prepare(summaries, exclude_sidecars=True)] == ["web"]


def test_listing_marks_gateways_and_lonely_destinations() -> None:
    dump = [
        _instance("n1", {"Service": "api"}),
        _instance("n1", {"Service": "tgw", "Kind": "terminating-gateway"}),
        _instance(
            "n1",
            {
                "Service": "ghost-proxy",
                "Kind": "connect-proxy",
                "Proxy": {"DestinationServiceName": "ghost"},
            },
        ),
    ]
    out = {s["Name"]: s for s in listing(dump, [("api", "tgw"), ("db", "tgw"), ("ghost", "nogw")])}
    assert out["api"]["ConnectedWithGateway"] is True
    assert out["tgw"]["GatewayConfig"] == {"AssociatedServiceCount": 2}
    ghost = out["ghost"]
    assert (ghost["InstanceCount"], ghost["ConnectedWithProxy"], ghost["ConnectedWithGateway"]) == (
        0,
        True,
        False,
    )
    assert ghost["Nodes"] is None and ghost["Tags"] is None


def test_gateway_dump_addresses() -> None:
    link = {"Service": {"Name": "web"}, "Port": 8080}
    hosts = {"Service": {"Name": "api"}, "Port": 9090, "Hosts": ["api.example.com"]}
    dump = [{"GatewayService": link}, {"GatewayService": hosts}, {"GatewayService": link}]
    summaries, _ = summarize(dump, "dc1", ["consul.", "alt."])
    [api, web] = prepare(summaries)
    assert web["GatewayConfig"] == {
        "Addresses": ["web.ingress.dc1.consul.:8080", "web.ingress.dc1.alt.:8080"]
    }
    assert api["GatewayConfig"] == {"Addresses": ["api.example.com:9090"]}
    assert web["InstanceCount"] == 0


# ---------------------------------------------------------------------- host figures

MEMINFO = """MemTotal:        1000 kB
MemFree:          200 kB
MemAvailable:     600 kB
Buffers:           50 kB
Cached:           100 kB
SReclaimable:      50 kB
HugePages_Total:    3
Hugepagesize:    2048 kB
"""


def test_meminfo_uses_gopsutil_arithmetic() -> None:
    stat = parse_meminfo(MEMINFO)
    assert stat["total"] == 1000 * 1024 and stat["available"] == 600 * 1024
    assert stat["cached"] == 150 * 1024  # reclaimable slab counted as cached
    assert stat["used"] == (1000 - 200 - 50 - 150) * 1024
    assert stat["usedPercent"] == pytest.approx(60.0)
    assert stat["hugePagesTotal"] == 3 and stat["hugePageSize"] == 2048 * 1024


def test_cpuinfo_gives_one_entry_per_processor() -> None:
    text = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: X\ncpu MHz\t\t: 2600.000\n"
        "cache size\t: 512 KB\nflags\t\t: fpu sse\n\nprocessor\t: 1\nmodel name\t: X\n"
    )
    cpus = cpu_info(text)
    assert [c["cpu"] for c in cpus] == [0, 1]
    assert cpus[0]["mhz"] == 2600.0 and cpus[0]["cacheSize"] == 512
    assert cpus[0]["flags"] == ["fpu", "sse"] and cpus[1]["cores"] == 1


# ---------------------------------------------------------------------- profiles


def test_sampled_stacks_render_as_collapsed_lines() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="sleeper")
    worker.start()
    try:
        counts = profiling.sample_stacks(0.05, 0.01)
    finally:
        stop.set()
        worker.join()
    assert any(stack.startswith("thread sleeper;") for stack in counts)
    text = profiling.render_samples(Counter({"a;b": 3, "a": 1}), 1, 0.01)
    assert text.splitlines()[1:] == ["a;b 3", "a 1"]


def test_collapse_names_frames_outermost_first() -> None:
    def inner():
        return profiling.collapse(sys._getframe())

    stack = inner()
    assert stack.split(";")[-1].startswith("inner (")
    assert "test_collapse_names_frames_outermost_first" in stack.split(";")[-2]


# ---------------------------------------------------------------------- metrics proxy


def test_metrics_proxy_urls() -> None:
    base = "http://prom:9090/prefix"
    assert target_url(base, "/api/v1/query", []) == "http://prom:9090/prefix/api/v1/query"
    assert target_url(base, "/api//v1/./query", []) == "http://prom:9090/prefix/api/v1/query"
    assert target_url(base, "/api/v1/query", ["/prefix/api/v1/series"]) is None
    with pytest.raises(HTTPError) as escaped:
        target_url(base, "/../../etc", [])
    assert (escaped.value.status, escaped.value.message) == (400, "Invalid path.")


# ---------------------------------------------------------------------- acl authorize


def test_authorize_enforces_as_acl_enforce() -> None:
    authz = Authorizer(
        parse_rules(
            'key_prefix "app/" { policy = "list" }\nmesh = "read"\nservice "web" { policy = "write" }'
        ),
        default_allow=False,
    )
    assert enforce(authz, "key", "app/x", "LIST") and enforce(authz, "key", "app/x", "read")
    assert not enforce(authz, "key", "app/x", "write")
    assert not enforce(authz, "key", "app/", "write-prefix")
    assert enforce(authz, "mesh", "ignored", "read") and not enforce(authz, "mesh", "", "write")
    assert enforce(authz, "service", "web", "write") and not enforce(authz, "service", "db", "read")
    with pytest.raises(HTTPError) as bad_access:
        enforce(authz, "service", "web", "list")
    assert bad_access.value.message == "Invalid access level for service resource: list"
    assert decode(b"null") == []
    assert decode(b'[{"resource": "key", "access": "read"}]') == [
        {"Resource": "key", "Access": "read"}
    ]
    with pytest.raises(HTTPError) as empty:
        decode(b" ")
    assert (empty.value.status, empty.value.message) == (400, "Failed to decode request body: EOF")
