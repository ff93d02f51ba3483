"""Proxies and gateways through the HTTP areas, on in-memory twins: a service registered with
a SidecarService on a real LocalState (its sidecar, checks, alias health, deregistration and
persistence), what the catalog keeps of a proxy written straight into it, the Connect views of
the catalog and health areas (sidecars, Connect-native instances, terminating gateways), and
txn service ops carrying a proxy."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.http import agent_ep, catalog, health, txn
from agent.http.app import HTTPError
from agent.http.deps import HTTPDeps
from agent.local import LocalState
from agent.state.mesh_views import connect_instances
from tests.harness import areas
from tests.harness.twins import LocalHostTwin, MemoryWriter, http_deps

NODE = "node1"


def local_deps(data_dir: Path | None = None, *hcl: str) -> HTTPDeps:
    args = ["-dev"] + [x for h in hcl for x in ("-hcl", h)]
    deps = http_deps(load_config(args, environ={}))
    assert isinstance(deps.writer, MemoryWriter)
    host = LocalHostTwin(
        config=deps.identity.config, writer=deps.writer, store=deps.store, data_dir=data_dir
    )
    return dataclasses.replace(deps, local=LocalState(host))


def call(deps: HTTPDeps, method: str, path: str, body: Any = None, query: bytes = b"") -> Any:
    area = {"agent": agent_ep, "catalog": catalog, "health": health, "txn": txn}[path.split("/")[2]]
    raw = json.dumps(body).encode() if body is not None else b""
    answer = areas.call(area.register, deps, method, path, query, raw)
    return json.loads(answer.body) if answer.body else None


def register(deps: HTTPDeps, body: dict) -> None:
    call(deps, "PUT", "/v1/agent/service/register", body)
    flush(deps)


def flush(deps: HTTPDeps) -> None:
    asyncio.run(deps.local.flush())


WEB = {"Name": "web", "Port": 8080, "Tags": ["v1"], "Connect": {"SidecarService": {}}}


def test_a_sidecar_is_registered_checked_and_removed_with_its_service() -> None:
    deps = local_deps()
    register(deps, WEB)
    services = call(deps, "GET", "/v1/agent/services")
    assert sorted(services) == ["web", "web-sidecar-proxy"]
    assert "Connect" not in services["web"]  # the sugar is never kept
    sidecar = call(deps, "GET", "/v1/agent/service/web-sidecar-proxy")
    assert sidecar["Kind"] == "connect-proxy"
    assert (sidecar["Port"], sidecar["Tags"]) == (21000, ["v1"])
    assert sidecar["Proxy"] == {
        "DestinationServiceName": "web",
        "DestinationServiceID": "web",
        "LocalServiceAddress": "127.0.0.1",
        "LocalServicePort": 8080,
        "MeshGateway": {},
        "Expose": {},
    }
    checks = call(deps, "GET", "/v1/agent/checks")
    listening, aliasing = (
        checks["service:web-sidecar-proxy:1"],
        checks["service:web-sidecar-proxy:2"],
    )
    assert (listening["Name"], listening["Type"]) == ("Connect Sidecar Listening", "tcp")
    assert listening["Definition"] == {"TCP": "127.0.0.1:21000", "Interval": "10s"}
    assert (aliasing["Name"], aliasing["Type"]) == ("Connect Sidecar Aliasing web", "alias")
    assert (aliasing["Status"], aliasing["Output"]) == ("passing", "No checks found.")

    call(deps, "PUT", "/v1/agent/service/deregister/web")
    assert call(deps, "GET", "/v1/agent/services") == {}
    assert call(deps, "GET", "/v1/agent/checks") == {}


def test_a_second_sidecar_takes_the_next_port_and_a_re_registration_keeps_its_own() -> None:
    deps = local_deps()
    register(deps, WEB)
    register(deps, {"Name": "api", "Port": 9000, "Connect": {"SidecarService": {}}})
    register(deps, WEB)
    ports = {k: v["Port"] for k, v in call(deps, "GET", "/v1/agent/services").items()}
    assert ports == {
        "web": 8080,
        "web-sidecar-proxy": 21000,
        "api": 9000,
        "api-sidecar-proxy": 21001,
    }


def test_an_exhausted_range_is_a_500() -> None:
    deps = local_deps(None, "ports { sidecar_min_port = 21000\nsidecar_max_port = 21000 }")
    register(deps, WEB)
    with pytest.raises(HTTPError) as full:
        call(deps, "PUT", "/v1/agent/service/register", {**WEB, "Name": "api"})
    assert full.value.status == 500
    assert "none left in the configured range [21000, 21000]" in full.value.message
    assert "api" not in deps.local.services


def test_the_alias_follows_the_services_checks() -> None:
    deps = local_deps()
    register(deps, {**WEB, "Check": {"TTL": "30s"}})
    alias = deps.local.checks["service:web-sidecar-proxy:2"]
    assert (alias.status, alias.output) == (
        "critical",
        "Aliased check \"Service 'web' check\" failing: ",
    )
    deps.local.update_check("service:web", "passing", "ok")
    assert (alias.status, alias.output) == ("passing", "All checks passing.")
    call(deps, "PUT", "/v1/agent/service/maintenance/web", query=b"enable=true&reason=x")
    assert alias.status == "critical"


def test_the_sidecar_survives_a_restart_with_its_port(tmp_path: Path) -> None:
    deps = local_deps(tmp_path)
    register(deps, {"Name": "api", "Port": 9000, "Connect": {"SidecarService": {}}})
    register(deps, WEB)
    call(deps, "PUT", "/v1/agent/service/deregister/api")
    again = local_deps(tmp_path)
    again.local.load()
    assert sorted(again.local.services) == ["web", "web-sidecar-proxy"]
    proxy = again.local.services["web-sidecar-proxy"]
    assert proxy.is_sidecar and proxy.service["Port"] == 21001
    assert "SidecarService" not in again.local.services["web"].raw.get("Connect", {})
    call(again, "PUT", "/v1/agent/service/deregister/web")
    assert again.local.services == {}


def test_connect_views_list_sidecars_and_native_instances() -> None:
    deps = local_deps()
    register(deps, WEB)
    register(deps, {"Name": "web", "ID": "web-native", "Port": 8443, "Connect": {"Native": True}})
    listed = call(deps, "GET", "/v1/catalog/connect/web")
    assert [(s["ServiceID"], s["ServiceKind"]) for s in listed] == [
        ("web-native", ""),
        ("web-sidecar-proxy", "connect-proxy"),
    ]
    assert listed[0]["ServiceConnect"] == {"Native": True}
    assert listed[1]["ServiceProxy"]["DestinationServiceName"] == "web"
    healthy = call(deps, "GET", "/v1/health/connect/web")
    assert [e["Service"]["ID"] for e in healthy] == ["web-native", "web-sidecar-proxy"]
    assert [c["CheckID"] for c in healthy[1]["Checks"]] == [
        "service:web-sidecar-proxy:1",
        "service:web-sidecar-proxy:2",
    ]
    passing = call(deps, "GET", "/v1/health/connect/web", query=b"passing")
    assert [e["Service"]["ID"] for e in passing] == ["web-native"]  # the listener is critical
    # Tags do not narrow a Connect lookup; node-meta does.
    assert len(call(deps, "GET", "/v1/catalog/connect/web", query=b"tag=nope")) == 2
    assert call(deps, "GET", "/v1/catalog/connect/web", query=b"node-meta=x:y") == []
    assert call(deps, "GET", "/v1/catalog/connect/api") == []
    with pytest.raises(HTTPError) as bad:
        call(deps, "GET", "/v1/health/connect/web", query=b"passing=maybe")
    assert (bad.value.status, bad.value.message) == (400, "Invalid value for ?passing")


def test_connect_index_never_goes_back() -> None:
    deps = local_deps()
    register(deps, WEB)
    before = connect_instances(deps.store, "web").index
    call(deps, "PUT", "/v1/agent/service/deregister/web")
    flush(deps)
    after = connect_instances(deps.store, "web")
    assert after.pairs == [] and after.index > before
    assert ("service", "web") in after.topics and ("table", "services") in after.topics


PROXY_REGISTRATION = {
    "Node": "ext",
    "Address": "10.0.0.9",
    "Service": {
        "Kind": "connect-proxy",
        "Service": "db-proxy",
        "Port": 20000,
        "SocketPath": "",
        "Locality": {"Zone": "z1"},
        "Proxy": {
            "destination_service_name": "db",
            "Upstreams": [{"DestinationName": "cache", "LocalBindPort": 7000}],
            "TransparentProxy": {"DialedDirectly": True},
        },
    },
}


def test_the_catalog_keeps_a_proxy_as_sent() -> None:
    deps = local_deps()
    assert call(deps, "PUT", "/v1/catalog/register", PROXY_REGISTRATION) is True
    [node] = call(deps, "GET", "/v1/catalog/service/db-proxy")
    assert node["ServiceProxy"] == {
        "TransparentProxy": {"DialedDirectly": True},
        "DestinationServiceName": "db",
        "Mode": "",
        "Upstreams": [
            {
                "DestinationType": "",
                "DestinationName": "cache",
                "Datacenter": "",
                "LocalBindPort": 7000,
                "MeshGateway": {},
            }
        ],
        "MeshGateway": {},
        "Expose": {},
    }
    assert node["ServiceLocality"] == {"Zone": "z1"}
    [entry] = call(deps, "GET", "/v1/health/service/db-proxy")
    assert entry["Service"]["Locality"] == {"Zone": "z1"}
    assert entry["Service"]["Proxy"] == node["ServiceProxy"]
    assert [s["ServiceID"] for s in call(deps, "GET", "/v1/catalog/connect/db")] == ["db-proxy"]


@pytest.mark.parametrize(
    ("service", "status", "message"),
    [
        (
            {"Kind": "connect-proxy", "Service": "p", "Proxy": {"DestinationServiceName": "db"}},
            500,
            "1 error occurred:\n\t* Port or SocketPath must be set for a connect-proxy\n\n",
        ),
        (
            {"Kind": "mesh-gateway", "Service": "gw", "Port": 443, "Proxy": {"Upstreams": [{}]}},
            500,
            "1 error occurred:\n\t* The Proxy.Upstreams configuration is invalid for a "
            "mesh-gateway\n\n",
        ),
        (
            {"Service": "p", "Proxy": {"Expose": {"Checks": "yes"}}},
            400,
            "Request decode failed: json: cannot unmarshal string into Go struct field "
            "ExposeConfig.Service.Proxy.Expose.Checks of type bool",
        ),
    ],
)
def test_the_catalog_refuses_what_consul_refuses(service: dict, status: int, message: str) -> None:
    deps = local_deps()
    body = {"Node": "ext", "Address": "10.0.0.9", "Service": service}
    with pytest.raises(HTTPError) as refused:
        call(deps, "PUT", "/v1/catalog/register", body)
    assert (refused.value.status, refused.value.message) == (status, message)
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []


def test_terminating_gateways_linked_by_their_config_entry() -> None:
    deps = local_deps()
    for name, kind in (("db", ""), ("gw", "terminating-gateway"), ("gw2", "terminating-gateway")):
        body = {
            "Node": "ext",
            "Address": "10.0.0.9",
            "Service": {"Service": name, "Kind": kind, "Port": 1},
        }
        call(deps, "PUT", "/v1/catalog/register", body)
    mesh = deps.store.mesh.entries
    mesh[("terminating-gateway", "gw")] = {
        "Kind": "terminating-gateway",
        "Name": "gw",
        "Services": [{"Name": "db"}],
    }
    mesh[("terminating-gateway", "gw2")] = {
        "Kind": "terminating-gateway",
        "Name": "gw2",
        "Services": [{"Name": "*"}],
    }
    assert [s["ServiceID"] for s in call(deps, "GET", "/v1/catalog/connect/db")] == ["gw", "gw2"]
    # The wildcard links typical services only: a gateway is not one.
    assert call(deps, "GET", "/v1/catalog/connect/gw") == []


def test_txn_service_ops_carry_the_proxy() -> None:
    deps = local_deps()
    call(deps, "PUT", "/v1/catalog/register", {"Node": "ext", "Address": "10.0.0.9"})
    op = {
        "Service": {
            "Verb": "set",
            "Node": "ext",
            "Service": {
                "ID": "p1",
                "Service": "p",
                "Kind": "connect-proxy",
                "Port": 1,
                "Proxy": {"DestinationServiceName": "web", "LocalServicePort": 80},
                "Connect": {"Native": False},
            },
        }
    }
    assert call(deps, "PUT", "/v1/txn", [op])["Errors"] is None
    [node] = call(deps, "GET", "/v1/catalog/service/p")
    assert node["ServiceProxy"]["LocalServicePort"] == 80
    assert [s["ServiceID"] for s in call(deps, "GET", "/v1/catalog/connect/web")] == ["p1"]
