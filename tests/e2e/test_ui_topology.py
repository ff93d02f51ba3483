"""/v1/internal/ui/service-topology on a real -dev agent, with the catalog and config entries
of Consul's own TestUIServiceTopology (ingress -> api -> web -> redis, and a Connect-native
cproxy between cfrontend and cbackend), checked against the answers that test expects."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

NODES = {
    "edge": "127.0.0.20",
    "foo": "127.0.0.2",
    "bar": "127.0.0.3",
    "baz": "127.0.0.4",
    "zip": "127.0.0.5",
    "cnative": "127.0.0.6",
}
# (node, service, its check status)
SERVICES = [
    ("edge", {"Kind": "ingress-gateway", "ID": "ingress", "Service": "ingress", "Port": 443}, None),
    ("foo", {"ID": "api", "Service": "api", "Port": 9090}, "passing"),
    (
        "foo",
        {"Kind": "connect-proxy", "ID": "api-proxy", "Service": "api-proxy", "Port": 8443}
        | {"Proxy": {"DestinationServiceName": "api", "Mode": "transparent"}},
        "passing",
    ),
    ("bar", {"ID": "web", "Service": "web", "Port": 80}, "warning"),
    (
        "bar",
        {"Kind": "connect-proxy", "ID": "web-proxy", "Service": "web-proxy", "Port": 8443}
        | {
            "Proxy": {
                "DestinationServiceName": "web",
                "Upstreams": [{"DestinationName": "redis", "LocalBindPort": 123}],
            }
        },
        "critical",
    ),
    ("baz", {"ID": "web", "Service": "web", "Port": 80}, "passing"),
    (
        "baz",
        {"Kind": "connect-proxy", "ID": "web-proxy", "Service": "web-proxy", "Port": 8443}
        | {"Proxy": {"DestinationServiceName": "web", "Mode": "transparent"}},
        "critical",
    ),
    ("zip", {"ID": "redis", "Service": "redis", "Port": 6379}, "passing"),
    (
        "zip",
        {"Kind": "connect-proxy", "ID": "redis-proxy", "Service": "redis-proxy", "Port": 8443}
        | {"Proxy": {"DestinationServiceName": "redis"}},
        "critical",
    ),
    ("cnative", {"ID": "cbackend", "Service": "cbackend", "Port": 8080}, "passing"),
    (
        "cnative",
        {"Kind": "connect-proxy", "ID": "cbackend-proxy", "Service": "cbackend-proxy"}
        | {"Port": 8443, "Proxy": {"DestinationServiceName": "cbackend"}},
        "critical",
    ),
    ("cnative", {"ID": "cfrontend", "Service": "cfrontend", "Port": 9080}, "passing"),
    (
        "cnative",
        {"Kind": "connect-proxy", "ID": "cfrontend-proxy", "Service": "cfrontend-proxy"}
        | {
            "Port": 9443,
            "Proxy": {
                "DestinationServiceName": "cfrontend",
                "Upstreams": [{"DestinationName": "cproxy", "LocalBindPort": 123}],
            },
        },
        "critical",
    ),
    (
        "cnative",
        {"ID": "cproxy-https", "Service": "cproxy", "Port": 1111, "Tags": ["https"]}
        | {"Connect": {"Native": True}},
        "passing",
    ),
    (
        "cnative",
        {"ID": "cproxy-http", "Service": "cproxy", "Port": 1112, "Tags": ["http"]},
        "passing",
    ),
]
ENTRIES = [
    {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}},
    {"Kind": "service-defaults", "Name": "api", "Protocol": "tcp"},
    {
        "Kind": "service-intentions",
        "Name": "*",
        "Meta": {"external-source": "nomad"},
        "Sources": [{"Name": "*", "Action": "deny"}],
    },
    {
        "Kind": "service-intentions",
        "Name": "redis",
        "Sources": [
            {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"Methods": ["GET"]}}]}
        ],
    },
    {"Kind": "service-intentions", "Name": "web", "Sources": [{"Name": "api", "Action": "allow"}]},
    {
        "Kind": "service-intentions",
        "Name": "api",
        "Sources": [{"Name": "ingress", "Action": "allow"}],
    },
    {
        "Kind": "ingress-gateway",
        "Name": "ingress",
        "Listeners": [{"Port": 1111, "Protocol": "tcp", "Services": [{"Name": "api"}]}],
    },
    {
        "Kind": "service-intentions",
        "Name": "cproxy",
        "Sources": [{"Name": "cfrontend", "Action": "allow"}],
    },
    {
        "Kind": "service-intentions",
        "Name": "cbackend",
        "Sources": [{"Name": "cproxy", "Action": "allow"}],
    },
]


@pytest.fixture(scope="module")
def dev() -> Iterator[httpx.Client]:
    agent = AgentProc(*dev_agent_args(), http_port=free_port()).start()
    try:
        with agent.client() as http:
            for node, address in NODES.items():
                check = {
                    "CheckID": f"{node}:alive",
                    "Name": f"{node}-liveness",
                    "Status": "passing",
                }
                body = {"Node": node, "Address": address, "Check": check}
                assert http.put("/v1/catalog/register", json=body).status_code == 200
            for node, service, status in SERVICES:
                body = {"Node": node, "Address": NODES[node], "Service": service}
                if status:
                    sid = service["ID"]
                    body["Check"] = {"CheckID": f"{node}:{sid}", "Name": sid, "Status": status}
                    body["Check"]["ServiceID"] = sid
                r = http.put("/v1/catalog/register", json=body)
                assert r.status_code == 200, r.text
            for entry in ENTRIES:
                r = http.put("/v1/config", json=entry)
                assert r.status_code == 200 and r.json() is True, r.text
            yield http
    finally:
        agent.cleanup()


def _decision(allowed: bool = True, permissions: bool = False) -> dict:
    return {
        "DefaultAllow": True,
        "Allowed": allowed,
        "HasPermissions": permissions,
        "ExternalSource": "",
        "HasExact": True,
    }


def _summary(
    name: str, nodes: list[str], count: int, checks: tuple[int, int, int], **extra
) -> dict:
    passing, warning, critical = checks
    out = {"Kind": extra.pop("Kind")} if "Kind" in extra else {}
    out |= {
        "Name": name,
        "Datacenter": "dc1",
        "Tags": extra.pop("Tags", None),
        "Nodes": nodes,
        "ExternalSources": None,
        "InstanceCount": count,
        "ChecksPassing": passing,
        "ChecksWarning": warning,
        "ChecksCritical": critical,
        "GatewayConfig": {},
        "TransparentProxy": extra.pop("TransparentProxy", False),
        "ConnectNative": extra.pop("ConnectNative", False),
    }
    return out | extra


API = _summary("api", ["foo"], 1, (3, 0, 0), TransparentProxy=True)
WEB = _summary("web", ["bar", "baz"], 2, (3, 1, 2))

EXPECTED = {
    ("ingress", "ingress-gateway"): {
        "Protocol": "tcp",
        "TransparentProxy": False,
        "Upstreams": [API | {"Source": "proxy-registration", "Intention": _decision()}],
        "Downstreams": [],
    },
    ("api", ""): {
        "Protocol": "tcp",
        "TransparentProxy": True,
        "Upstreams": [WEB | {"Source": "specific-intention", "Intention": _decision()}],
        "Downstreams": [
            _summary("ingress", ["edge"], 1, (1, 0, 0), Kind="ingress-gateway")
            | {"Source": "proxy-registration", "Intention": _decision()}
        ],
    },
    ("web", ""): {
        "Protocol": "http",
        "TransparentProxy": False,
        "Upstreams": [
            _summary("redis", ["zip"], 1, (2, 0, 1))
            | {"Source": "proxy-registration", "Intention": _decision(False, True)}
        ],
        "Downstreams": [API | {"Source": "specific-intention", "Intention": _decision()}],
    },
    ("redis", ""): {
        "Protocol": "http",
        "TransparentProxy": False,
        "Upstreams": [],
        "Downstreams": [
            WEB | {"Source": "proxy-registration", "Intention": _decision(False, True)}
        ],
    },
    ("cproxy", ""): {
        "Protocol": "http",
        "TransparentProxy": False,
        "Upstreams": [
            _summary("cbackend", ["cnative"], 1, (2, 0, 1))
            | {"Source": "specific-intention", "Intention": _decision()}
        ],
        "Downstreams": [
            _summary("cfrontend", ["cnative"], 1, (2, 0, 1))
            | {"Source": "proxy-registration", "Intention": _decision()}
        ],
    },
    ("cbackend", ""): {
        "Protocol": "http",
        "TransparentProxy": False,
        "Upstreams": [],
        "Downstreams": [
            _summary(
                "cproxy", ["cnative"], 2, (3, 0, 0), Tags=["http", "https"], ConnectNative=True
            )
            | {"Source": "specific-intention", "Intention": _decision()}
        ],
    },
}


@pytest.mark.parametrize(("service", "kind"), list(EXPECTED))
def test_topology_matches_consuls_own_expectations(
    dev: httpx.Client, service: str, kind: str
) -> None:
    r = dev.get(f"/v1/internal/ui/service-topology/{service}", params={"kind": kind})
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Consul-Index"]) > 1
    assert r.json() == EXPECTED[(service, kind)] | {"FilteredByACLs": False}


def test_topology_refusals(dev: httpx.Client) -> None:
    r = dev.get("/v1/internal/ui/service-topology/ingress")
    assert (r.status_code, r.text) == (400, "Missing service kind")
    r = dev.get("/v1/internal/ui/service-topology/ingress", params={"kind": "not-a-kind"})
    assert (r.status_code, r.text) == (400, 'Unsupported service kind "not-a-kind"')
    r = dev.get("/v1/internal/ui/service-topology/", params={"kind": ""})
    assert (r.status_code, r.text) == (400, "Missing service name")


def test_routing_config_upstream(dev: httpx.Client) -> None:
    """An upstream with no instances but a router is listed as routing config (Consul's
    TestUIServiceTopology_RoutingConfigs shape)."""
    proxy = {
        "DestinationServiceName": "dashboard",
        "Upstreams": [{"DestinationName": "routing-config", "LocalBindPort": 5000}],
    }
    for service in (
        {"ID": "dashboard", "Service": "dashboard", "Port": 9002},
        {"Kind": "connect-proxy", "ID": "dash-proxy", "Service": "dash-proxy", "Port": 5000}
        | {"Proxy": proxy},
        {"ID": "counting", "Service": "counting", "Port": 9003},
    ):
        body = {"Node": "foo", "Address": NODES["foo"], "Service": service}
        assert dev.put("/v1/catalog/register", json=body).status_code == 200
    router = {
        "Kind": "service-router",
        "Name": "routing-config",
        "Routes": [
            {
                "Match": {"HTTP": {"PathPrefix": "/v2"}},
                "Destination": {"Service": "counting"},
            }
        ],
    }
    r = dev.put("/v1/config", json=router)
    assert r.status_code == 200, r.text
    dash = dev.get("/v1/internal/ui/service-topology/dashboard", params={"kind": ""}).json()
    routing = [u for u in dash["Upstreams"] if u["Source"] == "routing-config"]
    assert [u["Name"] for u in routing] == ["routing-config"]
    assert routing[0]["InstanceCount"] == 0 and routing[0]["Datacenter"] == "dc1"
    # counting is reached through the router: dashboard is its downstream by registration
    counting = dev.get("/v1/internal/ui/service-topology/counting", params={"kind": ""}).json()
    assert [(d["Name"], d["Source"]) for d in counting["Downstreams"]] == [
        ("dashboard", "proxy-registration")
    ]
