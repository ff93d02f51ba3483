"""Operator usage and utilization, peering (disabled), exported services, the agent's host
and /debug/pprof on real agents: a -dev agent, a -dev agent with enable_debug off, and an
agent with ACLs (default deny) where each endpoint's permission is checked."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

DISABLED = (
    "rpc error: code = FailedPrecondition desc = peering must be enabled to use this endpoint"
)
MGMT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def dev() -> Iterator[httpx.Client]:
    agent = AgentProc(*dev_agent_args(), http_port=free_port()).start()
    try:
        with agent.client() as http:
            yield http
    finally:
        agent.cleanup()


def _register(http: httpx.Client, node: str, service: dict) -> None:
    body = {"Node": node, "Address": "127.0.0.2", "Service": service}
    r = http.put("/v1/catalog/register", json=body)
    assert r.status_code == 200, r.text


def test_operator_usage_counts_the_catalog(dev: httpx.Client) -> None:
    # The shape of Consul's own TestOperator_Usage: two web instances, a db, a proxy and a
    # Connect-native app on one node, beside the agent's consul service and node.
    _register(dev, "test-node", {"ID": "web1", "Service": "web", "Port": 8080})
    _register(dev, "test-node", {"ID": "web2", "Service": "web", "Port": 8080})
    _register(dev, "test-node", {"ID": "db", "Service": "db", "Port": 8080})
    proxy = {"DestinationServiceName": "web", "DestinationServiceID": "web1"}
    _register(
        dev,
        "test-node",
        {"ID": "web-proxy", "Service": "web-proxy", "Kind": "connect-proxy", "Port": 8080}
        | {"Proxy": proxy},
    )
    _register(
        dev,
        "test-node",
        {
            "ID": "native",
            "Service": "connect-native-app",
            "Port": 8080,
            "Connect": {"Native": True},
        },
    )
    r = dev.get("/v1/operator/usage")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["Usage"] == {
        "dc1": {
            "Services": 5,
            "ServiceInstances": 6,
            "ConnectServiceInstances": {
                "api-gateway": 0,
                "connect-native": 1,
                "connect-proxy": 1,
                "ingress-gateway": 0,
                "mesh-gateway": 0,
                "terminating-gateway": 0,
            },
            "BillableServiceInstances": 4,
            "Nodes": 2,
        }
    }
    index = int(r.headers["X-Consul-Index"])
    assert body["Index"] == index and body["KnownLeader"] is True
    assert body["ConsistencyLevel"] == "leader" and body["Backend"] == 0
    assert r.headers["X-Consul-Query-Backend"] == "blocking-query"
    # ?global on a lone datacenter is the same answer; ?stale says so.
    assert dev.get("/v1/operator/usage", params={"global": ""}).json()["Usage"] == body["Usage"]
    assert dev.get("/v1/operator/usage", params={"stale": ""}).json()["ConsistencyLevel"] == (
        "stale"
    )
    # A blocking read returns once an instance is added, with the new count.
    with httpx.Client(base_url=str(dev.base_url), timeout=30) as other:
        _register(other, "test-node", {"ID": "db2", "Service": "db", "Port": 1})
    later = dev.get("/v1/operator/usage", params={"index": index, "wait": "10s"})
    assert later.json()["Usage"]["dc1"]["ServiceInstances"] == 7
    assert int(later.headers["X-Consul-Index"]) > index
    assert dev.get("/v1/operator/usage", params={"index": "x"}).status_code == 400


def test_operator_utilization_is_enterprise(dev: httpx.Client) -> None:
    r = dev.get("/v1/operator/utilization")
    assert (r.status_code, r.text) == (404, "operator utilization requires Consul Enterprise")
    assert dev.post("/v1/operator/utilization").status_code == 405


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("POST", "/v1/peering/token", b"", 400, "Body decoding failed: EOF"),
        ("POST", "/v1/peering/token", b"abc", 400, None),
        ("POST", "/v1/peering/token", b'{"Nope": 1}', 400, 'unknown field "Nope"'),
        ("POST", "/v1/peering/token", b"{}", 400, "PeerName is required in the payload"),
        ("POST", "/v1/peering/token", b'{"PeerName": 3}', 400, "cannot unmarshal number"),
        ("POST", "/v1/peering/token", b'{"PeerName": "p1"}', 500, DISABLED),
        ("POST", "/v1/peering/establish", b'{"peername": "p1"}', 400, "PeeringToken is required"),
        (
            "POST",
            "/v1/peering/establish",
            b'{"PeerName": "p1", "PeeringToken": "t"}',
            500,
            DISABLED,
        ),
        ("GET", "/v1/peering/", b"", 400, "Must specify a name to fetch."),
        ("GET", "/v1/peering/p1", b"", 500, DISABLED),
        ("DELETE", "/v1/peering/p1", b"", 500, DISABLED),
        ("PUT", "/v1/peering/p1", b"", 405, None),
        ("GET", "/v1/peering/token", b"", 405, None),
        ("GET", "/v1/peerings", b"", 500, DISABLED),
    ],
)
def test_peering_answers_as_disabled(
    dev: httpx.Client, method: str, path: str, body: bytes, status: int, text: str | None
) -> None:
    r = dev.request(method, path, content=body)
    assert r.status_code == status, r.text
    if text is not None:
        assert text in r.text


def test_exported_services_resolves_the_entry(dev: httpx.Client) -> None:
    r = dev.get("/v1/exported-services")
    assert (r.status_code, r.json()) == (200, [])
    _register(dev, "exp-node", {"ID": "api", "Service": "api", "Port": 1})
    entry = {
        "Kind": "exported-services",
        "Name": "default",
        "Services": [
            {"Name": "web", "Consumers": [{"Peer": "west"}, {"Peer": "east"}]},
            {"Name": "web", "Consumers": [{"Peer": "east"}, {"Peer": "north"}]},
            {"Name": "*", "Consumers": [{"Peer": "south"}]},
        ],
    }
    assert dev.put("/v1/config", json=entry).json() is True
    got = dev.get("/v1/exported-services")
    names = [s["Service"] for s in got.json()]
    assert names == sorted(names) and "consul" not in names
    by_name = {s["Service"]: s["Consumers"] for s in got.json()}
    assert by_name["web"] == {"Peers": ["east", "north", "south", "west"]}
    assert by_name["api"] == {"Peers": ["south"]}
    assert "web-proxy" not in by_name  # a wildcard names typical services only
    assert int(got.headers["X-Consul-Index"]) >= 1


def test_agent_host_describes_this_machine(dev: httpx.Client) -> None:
    before = time.time_ns()
    r = dev.get("/v1/agent/host")
    assert r.status_code == 200, r.text
    info = r.json()
    assert set(info) == {"Memory", "CPU", "Host", "Disk", "CollectionTime", "Errors"}
    assert info["Errors"] is None
    assert info["Host"]["hostname"] == socket.gethostname()
    assert info["Host"]["os"] == "linux" and info["Host"]["uptime"] > 0
    assert info["Memory"]["total"] > info["Memory"]["free"] > 0
    assert 0 < info["Memory"]["usedPercent"] < 100
    assert info["Disk"]["path"] == "/" and info["Disk"]["total"] > 0
    assert len(info["CPU"]) == os.cpu_count()
    assert {"cpu", "modelName", "mhz", "cores", "flags"} <= set(info["CPU"][0])
    assert abs(info["CollectionTime"] - before) < 60 * 10**9


def test_pprof_serves_python_profiles_with_enable_debug(dev: httpx.Client) -> None:
    index = dev.get("/debug/pprof/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert "goroutine" in index.text and "heap" in index.text
    heap = dev.get("/debug/pprof/heap", params={"gc": "1"})
    assert heap.status_code == 200 and "objects tracked by the collector" in heap.text
    tasks = dev.get("/debug/pprof/goroutine", params={"debug": "2"})
    assert tasks.status_code == 200 and "asyncio tasks" in tasks.text and "threads" in tasks.text
    cpu = dev.get("/debug/pprof/profile", params={"seconds": "1"}, timeout=30)
    assert cpu.status_code == 200, cpu.text
    lines = cpu.text.splitlines()
    assert lines[0].startswith("# Python sampling CPU profile: 1s")
    assert any(line.rsplit(" ", 1)[-1].isdigit() for line in lines[1:])
    assert "-dev" in dev.get("/debug/pprof/cmdline").text.split("\x00")
    assert dev.get("/debug/pprof/symbol").text == "num_symbols: 0\n"
    assert dev.get("/debug/pprof/nope").status_code == 404
    # Debug().Trace(1) in the Go client: a 200 with a body, a Python timeline here.
    trace = dev.get("/debug/pprof/trace", params={"seconds": "0.2"}, timeout=30)
    assert trace.status_code == 200, trace.text
    lines = trace.text.splitlines()
    assert lines[0].startswith("# Python execution timeline: 0.2s")
    assert len(lines) > 1 and all(line.startswith("+") for line in lines[1:])
    assert dev.get("/debug/pprof/trace", params={"seconds": "3600"}).status_code == 400
    too_long = dev.get("/debug/pprof/profile", params={"seconds": "3600"})
    assert too_long.status_code == 400


def test_pprof_is_absent_without_enable_debug_or_acls() -> None:
    args = [*dev_agent_args(), "-hcl=enable_debug = false"]
    with AgentProc(*args, http_port=free_port()).start() as agent, agent.client() as http:
        for path in ("/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"):
            r = http.get(path)
            assert r.status_code == 404, (path, r.text)
            assert "Invalid URL path" in r.text
        assert http.get("/v1/agent/host").status_code == 200


# ---------------------------------------------------------------------- with ACLs


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    tmp: Path = tmp_path_factory.mktemp("ops-acl")
    config = tmp / "acl.json"
    tokens = {"initial_management": MGMT, "agent": MGMT}
    settings = {
        "acl": {"enabled": True, "default_policy": "deny", "tokens": tokens},
        "enable_debug": False,
    }
    config.write_text(json.dumps(settings))
    ip = "127.0.0.1"
    agent = AgentProc(
        "-server",
        "-bootstrap-expect=1",
        f"-data-dir={tmp / 'data'}",
        "-node=ops-acl",
        f"-bind={ip}",
        f"-client={ip}",
        f"-server-port={free_port(ip)}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(ip)}",
        "-serf-wan-port=-1",
        f"-config-file={config}",
    ).start()
    try:
        with agent.client() as http:
            r = http.put(
                "/v1/acl/policy",
                json={"Name": "op", "Rules": 'operator = "read"'},
                headers={"X-Consul-Token": MGMT},
            )
            assert r.status_code == 200, r.text
            r = http.put(
                "/v1/acl/token",
                json={"Policies": [{"Name": "op"}]},
                headers={"X-Consul-Token": MGMT},
            )
            assert r.status_code == 200, r.text
            yield http, r.json()["SecretID"]
    finally:
        agent.cleanup()


def _as(token: str | None) -> dict[str, str]:
    return {"X-Consul-Token": token} if token else {}


@pytest.mark.parametrize("who", ["none", "bogus", "operator", "mgmt"])
def test_acl_rules_of_these_endpoints(acl: tuple[httpx.Client, str], who: str) -> None:
    http, operator = acl
    token = {"none": None, "bogus": str(uuid.uuid4()), "operator": operator, "mgmt": MGMT}[who]
    may_operate = who in ("operator", "mgmt")

    def status(method: str, path: str, **kw: object) -> int:
        return http.request(method, path, headers=_as(token), **kw).status_code

    assert status("GET", "/v1/operator/usage") == (200 if may_operate else 403)
    assert status("GET", "/v1/agent/host") == (200 if may_operate else 403)
    # mesh:read, which an operator rule grants when no mesh rule is set (Consul's fallback).
    assert status("GET", "/v1/exported-services") == (200 if may_operate else 403)
    # Consul's peering service refuses before it looks at the token; utilization is 404 first.
    assert status("GET", "/v1/peerings") == 500
    assert status("POST", "/v1/peering/token", content=b'{"PeerName": "x"}') == 500
    assert status("GET", "/v1/operator/utilization") == 404
    # pprof is served with ACLs on even without enable_debug: operator:read, else a bare 403.
    r = http.get("/debug/pprof/heap", headers=_as(token))
    if may_operate:
        assert r.status_code == 200 and "gc" in r.text
    else:
        assert (r.status_code, r.text) == (403, "")


def test_acl_authorize_with_acls(acl: tuple[httpx.Client, str]) -> None:
    http, operator = acl
    asks = [
        {"Resource": "operator", "Access": "read"},
        {"Resource": "operator", "Access": "WRITE"},
        {"Resource": "key", "Segment": "app/x", "Access": "list"},
        {"Resource": "service", "Segment": "web", "Access": "read"},
    ]
    url = "/v1/internal/acl/authorize"
    r = http.post(url, json=asks, headers=_as(operator))
    assert r.status_code == 200, r.text
    assert [a["Allow"] for a in r.json()] == [True, False, False, False]
    assert r.json()[2] == {"Resource": "key", "Segment": "app/x", "Access": "list", "Allow": False}
    assert "Segment" not in r.json()[0]
    assert all(a["Allow"] for a in http.post(url, json=asks, headers=_as(MGMT)).json())
    assert http.post(url, json=[], headers=_as(operator)).json() == []
    refusals = [
        ([{"Resource": "nope", "Access": "read"}], 'Invalid ACL resource requested: "nope"'),
        ([{"Resource": "key", "Access": "burn"}], "Invalid access level for key resource: burn"),
        ([{"Resource": "key", "Access": "read", "Extra": 1}], 'unknown field "Extra"'),
        ({"Resource": "key"}, "cannot unmarshal object"),
        ([{"Resource": "key", "Access": "read"}] * 65, "more than 64 authorizations"),
    ]
    for body, text in refusals:
        r = http.post(url, json=body, headers=_as(operator))
        assert r.status_code == 400 and text in r.text, (body, r.text)
    r = http.post(url, json=asks, headers=_as(str(uuid.uuid4())))
    assert (r.status_code, r.text) == (403, "ACL not found")


def test_acl_authorize_without_acls(dev: httpx.Client) -> None:
    r = dev.post("/v1/internal/acl/authorize", json=[{"Resource": "key", "Access": "read"}])
    assert (r.status_code, r.text) == (401, "ACL support disabled")


def test_metrics_stream_sends_interval_summaries(dev: httpx.Client) -> None:
    with dev.stream("GET", "/v1/agent/metrics/stream", timeout=30) as r:
        assert r.status_code == 200
        text, summary = "", None
        for chunk in r.iter_text():
            text += chunk
            try:
                summary = json.loads(text)  # one summary is one indented JSON document
                break
            except ValueError:
                continue
    assert summary is not None, text
    assert set(summary) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    assert any(g["Name"] == "consul.runtime.num_goroutines" for g in summary["Gauges"])
