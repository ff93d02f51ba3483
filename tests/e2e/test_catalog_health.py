"""Catalog, health and internal/ui endpoints against a real `gitkv agent -dev` process,
driven with httpx and with the py-consul client.

Tests share one agent per module; each test registers nodes under its own name prefix so
catalog-wide listings are checked only for the entries a test owns.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc

NODE_KEYS = {
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "Meta",
    "CreateIndex",
    "ModifyIndex",
}
SERVICE_NODE_KEYS = {
    "ID", "Node", "Address", "Datacenter", "TaggedAddresses", "NodeMeta", "ServiceKind",
    "ServiceID", "ServiceName", "ServiceTags", "ServiceAddress", "ServiceWeights", "ServiceMeta",
    "ServicePort", "ServiceSocketPath", "ServiceEnableTagOverride", "ServiceProxy",
    "ServiceConnect", "ServiceLocality", "CreateIndex", "ModifyIndex",
}  # fmt: skip
NODE_SERVICE_KEYS = {
    "ID", "Service", "Tags", "Address", "Meta", "Port", "Weights", "EnableTagOverride", "Proxy",
    "Connect", "PeerName", "CreateIndex", "ModifyIndex",
}  # fmt: skip
CHECK_KEYS = {
    "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
    "ServiceTags", "Type", "Interval", "Timeout", "ExposedPort", "Definition", "CreateIndex",
    "ModifyIndex",
}  # fmt: skip

_counter = itertools.count()


@pytest.fixture
def http(dev_agent_module: AgentProc) -> Iterator[httpx.Client]:
    with dev_agent_module.client() as client:
        yield client


@pytest.fixture
def cc(dev_agent_module: AgentProc) -> consul.Consul:
    return consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)


@pytest.fixture
def name() -> str:
    """A prefix no other test uses."""
    return f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"


def register(http: httpx.Client, body: dict) -> None:
    answer = http.put("/v1/catalog/register", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() is True


def index_of(answer: httpx.Response) -> int:
    return int(answer.headers["X-Consul-Index"])


def web_instance(node: str, service: str, *, tags=(), status="passing", meta=None, port=80) -> dict:
    return {
        "Node": node,
        "Address": "10.1.2.3",
        "NodeMeta": meta or {},
        "Service": {"Service": service, "ID": f"{service}-1", "Tags": list(tags), "Port": port},
        "Checks": [
            {
                "CheckID": f"{service}-alive",
                "Name": "alive",
                "Status": status,
                "ServiceID": f"{service}-1",
            }
        ],
    }


# ------------------------------------------------------------------------------ shapes


def test_register_and_read_back_shapes(http: httpx.Client, name: str) -> None:
    node, svc = f"{name}-n", f"{name}-web"
    register(
        http,
        {
            "Node": node,
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Address": "10.1.2.3",
            "TaggedAddresses": {"wan": "198.18.0.1"},
            "NodeMeta": {"rack": "r1"},
            "Service": {
                "Service": svc,
                "Tags": ["v1", "primary"],
                "Address": "10.1.2.4",
                "TaggedAddresses": {"lan": {"Address": "10.1.2.4", "Port": 8080}},
                "Meta": {"version": "1"},
                "Port": 8080,
                "Weights": {"Passing": 3, "Warning": 1},
            },
            "Check": {
                "CheckID": f"{svc}-http",
                "Name": "HTTP",
                "Status": "passing",
                "ServiceID": svc,
            },
        },
    )
    nodes = http.get("/v1/catalog/nodes")
    assert nodes.status_code == 200 and index_of(nodes) >= 1
    mine = [n for n in nodes.json() if n["Node"] == node]
    assert len(mine) == 1 and set(mine[0]) == NODE_KEYS
    assert mine[0]["Datacenter"] == "dc1" and mine[0]["Meta"] == {"rack": "r1"}
    assert mine[0]["TaggedAddresses"] == {"wan": "198.18.0.1"}

    services = http.get("/v1/catalog/services").json()
    assert services[svc] == ["v1", "primary"]

    instances = http.get(f"/v1/catalog/service/{svc}").json()
    assert len(instances) == 1
    sn = instances[0]
    assert set(sn) == SERVICE_NODE_KEYS | {"ServiceTaggedAddresses"}
    assert sn["ID"] == "40e4a748-2192-161a-0510-9bf59fe950b5"
    assert (sn["Node"], sn["Address"], sn["NodeMeta"]) == (node, "10.1.2.3", {"rack": "r1"})
    assert (sn["ServiceID"], sn["ServiceName"], sn["ServicePort"]) == (svc, svc, 8080)
    assert sn["ServiceAddress"] == "10.1.2.4"
    assert sn["ServiceTaggedAddresses"] == {"lan": {"Address": "10.1.2.4", "Port": 8080}}
    assert sn["ServiceWeights"] == {"Passing": 3, "Warning": 1}
    assert sn["ServiceMeta"] == {"version": "1"}
    assert sn["ServiceProxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}}
    assert sn["ServiceConnect"] == {}

    one = http.get(f"/v1/catalog/node/{node}").json()
    assert set(one) == {"Node", "Services"} and set(one["Node"]) == NODE_KEYS
    assert set(one["Services"]) == {svc}
    assert set(one["Services"][svc]) == NODE_SERVICE_KEYS | {"TaggedAddresses"}

    listed = http.get(f"/v1/catalog/node-services/{node}").json()
    assert [s["ID"] for s in listed["Services"]] == [svc]

    health = http.get(f"/v1/health/service/{svc}").json()
    assert len(health) == 1 and set(health[0]) == {"Node", "Service", "Checks"}
    assert [c["CheckID"] for c in health[0]["Checks"]] == [f"{svc}-http"]
    check = health[0]["Checks"][0]
    assert set(check) == CHECK_KEYS
    assert check["ServiceName"] == svc and check["ServiceTags"] == ["v1", "primary"]


def test_plain_service_defaults(http: httpx.Client, name: str) -> None:
    node, svc = f"{name}-n", f"{name}-db"
    register(http, {"Node": node, "Address": "10.0.0.9", "Service": {"Service": svc}})
    sn = http.get(f"/v1/catalog/service/{svc}").json()[0]
    assert set(sn) == SERVICE_NODE_KEYS  # no ServiceTaggedAddresses when there are none
    assert sn["ServiceID"] == svc and sn["ServiceTags"] == [] and sn["ServicePort"] == 0
    assert sn["ServiceWeights"] == {"Passing": 1, "Warning": 1}
    ns = http.get(f"/v1/catalog/node/{node}").json()["Services"][svc]
    assert "Port" not in ns and "TaggedAddresses" not in ns  # omitempty, as Go renders it
    checks = http.get(f"/v1/health/node/{node}").json()
    assert checks == []


def test_agent_node_has_serf_health(http: httpx.Client, dev_agent_module: AgentProc) -> None:
    nodes = http.get("/v1/catalog/nodes").json()
    own = [n for n in nodes if n["Address"] == dev_agent_module.ip and n["ID"]]
    assert own, nodes
    checks = http.get(f"/v1/health/node/{own[0]['Node']}").json()
    serf = [c for c in checks if c["CheckID"] == "serfHealth"]
    assert serf and serf[0]["Status"] == "passing" and serf[0]["Name"] == "Serf Health Status"


def test_unknown_entities(http: httpx.Client, name: str) -> None:
    answer = http.get(f"/v1/catalog/service/{name}-missing")
    assert answer.status_code == 200 and answer.json() == [] and index_of(answer) >= 1
    answer = http.get(f"/v1/catalog/node/{name}-missing")
    assert answer.status_code == 200 and answer.json() is None
    answer = http.get(f"/v1/catalog/node-services/{name}-missing")
    assert answer.json() == {"Node": None, "Services": None}
    assert http.get(f"/v1/health/node/{name}-missing").json() == []
    assert http.get(f"/v1/health/checks/{name}-missing").json() == []
    assert http.get(f"/v1/health/service/{name}-missing").json() == []


def test_datacenters_without_index(http: httpx.Client) -> None:
    answer = http.get("/v1/catalog/datacenters")
    assert answer.json() == ["dc1"]
    assert "X-Consul-Index" not in answer.headers


def test_missing_path_arguments(http: httpx.Client) -> None:
    assert http.get("/v1/catalog/service/").text == "Missing service name"
    assert http.get("/v1/catalog/node/").status_code == 400
    assert http.get("/v1/health/node/").text == "Missing node name"
    assert http.get("/v1/health/state/").text == "Missing check state"


# ------------------------------------------------------------------------------ writes


def test_deregister_check_service_node(http: httpx.Client, name: str) -> None:
    node, svc = f"{name}-n", f"{name}-api"
    body = web_instance(node, svc)
    body["Checks"].append({"CheckID": "disk", "Name": "disk", "Status": "passing"})
    register(http, body)
    assert {c["CheckID"] for c in http.get(f"/v1/health/node/{node}").json()} == {
        f"{svc}-alive",
        "disk",
    }

    assert http.put("/v1/catalog/deregister", json={"Node": node, "CheckID": "disk"}).json() is True
    assert [c["CheckID"] for c in http.get(f"/v1/health/node/{node}").json()] == [f"{svc}-alive"]

    # A service leaves with its checks.
    assert http.put("/v1/catalog/deregister", json={"Node": node, "ServiceID": f"{svc}-1"}).json()
    assert http.get(f"/v1/catalog/service/{svc}").json() == []
    assert http.get(f"/v1/health/node/{node}").json() == []
    assert http.get(f"/v1/catalog/node/{node}").json()["Services"] == {}

    # Case-insensitive body keys, like Go's decoder; unknown IDs are not an error.
    assert http.put("/v1/catalog/deregister", json={"node": node, "serviceid": "nope"}).json()
    assert http.put("/v1/catalog/deregister", json={"node": node}).json() is True
    assert http.get(f"/v1/catalog/node/{node}").json() is None


def test_update_keeps_create_index(http: httpx.Client, name: str) -> None:
    node, svc = f"{name}-n", f"{name}-app"
    register(http, web_instance(node, svc, port=1))
    first = http.get(f"/v1/catalog/service/{svc}").json()[0]
    register(http, web_instance(node, svc, port=2))
    second = http.get(f"/v1/catalog/service/{svc}").json()[0]
    assert second["ServicePort"] == 2
    assert second["CreateIndex"] == first["CreateIndex"]
    assert second["ModifyIndex"] > first["ModifyIndex"]


def test_skip_node_update(http: httpx.Client, name: str) -> None:
    node = f"{name}-n"
    register(http, {"Node": node, "Address": "10.0.0.1", "NodeMeta": {"a": "1"}})
    register(
        http,
        {"Node": node, "SkipNodeUpdate": True, "Service": {"Service": f"{name}-s"}},
    )
    got = http.get(f"/v1/catalog/node/{node}").json()
    assert got["Node"]["Address"] == "10.0.0.1" and got["Node"]["Meta"] == {"a": "1"}
    assert f"{name}-s" in got["Services"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"Address": "10.0.0.1"}, 500, "Must provide node"),
        ({"Node": "x"}, 500, "Must provide address if SkipNodeUpdate is not set"),
        (
            {"Node": "x", "Address": "a", "ID": "nope"},
            500,
            "Bad node ID: uuid string is wrong length",
        ),
        (
            {"Node": "x", "Address": "a", "Service": {"ID": "only-id"}},
            500,
            "Must provide service name (Service.Service) when service ID is provided",
        ),
        (
            {"Node": "x", "Address": "a", "Service": {"Service": "s", "Address": "0.0.0.0"}},
            500,
            "Invalid service address",
        ),
        (
            {"Node": "x", "Address": "a", "Check": {"CheckID": "c", "ServiceID": "ghost"}},
            500,
            "Unknown service ID 'ghost' for check ID 'c'",
        ),
        (
            {"Node": "x", "Address": "a", "Check": {"CheckID": "c", "Node": "other"}},
            500,
            "Node 'other' for check 'c' doesn't match register request node 'x'",
        ),
        (
            {"Node": "x", "Address": "a", "Service": {"Service": "s", "Port": "80"}},
            400,
            "Request decode failed: json: cannot unmarshal string into Go struct field "
            "NodeService.Service.Port of type int",
        ),
        (
            {"Node": 7, "Address": "a"},
            400,
            "Request decode failed: json: cannot unmarshal number into Go struct field "
            "RegisterRequest.Node of type string",
        ),
        (
            {"Node": "x", "Address": "a", "Datacenter": "elsewhere"},
            500,
            "No path to datacenter",
        ),
        (
            [1],
            400,
            "Request decode failed: json: cannot unmarshal array into Go value of type "
            "structs.RegisterRequest",
        ),
    ],
)
def test_register_refusals(http: httpx.Client, body, status: int, text: str) -> None:
    before = index_of(http.get("/v1/catalog/nodes"))
    answer = http.put("/v1/catalog/register", json=body)
    assert (answer.status_code, answer.text) == (status, text)
    assert index_of(http.get("/v1/catalog/nodes")) == before
    assert http.get("/v1/catalog/node/x").json() is None


def test_bad_json_and_empty_bodies(http: httpx.Client) -> None:
    for path in ("/v1/catalog/register", "/v1/catalog/deregister"):
        answer = http.put(path, content=b"{not json")
        assert answer.status_code == 400
        assert answer.text.startswith("Request decode failed:")
        answer = http.put(path, content=b"")
        assert (answer.status_code, answer.text) == (400, "Request decode failed: EOF")
    answer = http.put("/v1/catalog/deregister", json={})
    assert (answer.status_code, answer.text) == (500, "Must provide node")


def test_wrong_verbs(http: httpx.Client) -> None:
    cases = {
        "/v1/catalog/register": ("GET", "OPTIONS,PUT"),
        "/v1/catalog/deregister": ("POST", "OPTIONS,PUT"),
        "/v1/catalog/datacenters": ("PUT", "OPTIONS,GET"),
        "/v1/catalog/nodes": ("DELETE", "OPTIONS,GET"),
        "/v1/catalog/services": ("PUT", "OPTIONS,GET"),
        "/v1/catalog/service/web": ("PUT", "OPTIONS,GET"),
        "/v1/catalog/node/n": ("POST", "OPTIONS,GET"),
        "/v1/catalog/node-services/n": ("PUT", "OPTIONS,GET"),
        "/v1/health/node/n": ("PUT", "OPTIONS,GET"),
        "/v1/health/checks/web": ("DELETE", "OPTIONS,GET"),
        "/v1/health/service/web": ("PUT", "OPTIONS,GET"),
        "/v1/health/state/any": ("POST", "OPTIONS,GET"),
        "/v1/internal/ui/nodes": ("PUT", "OPTIONS,GET"),
        "/v1/internal/ui/node/n": ("PUT", "OPTIONS,GET"),
        "/v1/internal/ui/services": ("POST", "OPTIONS,GET"),
        "/v1/internal/ui/catalog-overview": ("PUT", "OPTIONS,GET"),
    }
    for path, (method, allow) in cases.items():
        answer = http.request(method, path)
        assert answer.status_code == 405, path
        assert answer.text == f"method {method} not allowed"
        assert answer.headers["Allow"] == allow


# ------------------------------------------------------------------------------ filters


def test_tag_filter(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-a", svc, tags=["v1", "Blue"]))
    register(http, web_instance(f"{name}-b", svc, tags=["v2", "blue"]))

    def nodes(path: str, params: list[tuple[str, str]]) -> list[str]:
        items = http.get(path, params=params).json()
        return sorted(i["Node"] if isinstance(i["Node"], str) else i["Node"]["Node"] for i in items)

    for path in (f"/v1/catalog/service/{svc}", f"/v1/health/service/{svc}"):
        assert nodes(path, [("tag", "v1")]) == [f"{name}-a"]
        assert nodes(path, [("tag", "BLUE")]) == [f"{name}-a", f"{name}-b"]
        assert nodes(path, [("tag", "blue"), ("tag", "v2")]) == [f"{name}-b"]
        assert nodes(path, [("tag", "v1"), ("tag", "v2")]) == []


def test_passing_filter(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-ok", svc, status="passing"))
    register(http, web_instance(f"{name}-warn", svc, status="warning"))
    register(http, web_instance(f"{name}-crit", svc, status="critical"))
    # A failing node-level check makes every instance on the node non-passing.
    register(
        http,
        {
            **web_instance(f"{name}-sick", svc),
            "Checks": [
                {"CheckID": f"{svc}-alive", "Status": "passing", "ServiceID": f"{svc}-1"},
                {"CheckID": "node-disk", "Status": "critical"},
            ],
        },
    )

    def names(params: dict) -> list[str]:
        answer = http.get(f"/v1/health/service/{svc}", params=params)
        assert answer.status_code == 200, answer.text
        return sorted(e["Node"]["Node"] for e in answer.json())

    everyone = sorted(f"{name}-{s}" for s in ("ok", "warn", "crit", "sick"))
    assert names({}) == everyone
    assert names({"passing": ""}) == [f"{name}-ok"]
    assert names({"passing": "true"}) == [f"{name}-ok"]
    assert names({"passing": "false"}) == everyone
    answer = http.get(f"/v1/health/service/{svc}", params={"passing": "maybe"})
    assert (answer.status_code, answer.text) == (400, "Invalid value for ?passing")


def test_node_meta_filter(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-p", svc, meta={"env": "prod", "zone": "a"}))
    register(http, web_instance(f"{name}-s", svc, meta={"env": "staging", "zone": "a"}))
    prod = [("node-meta", "env:prod")]
    both = [("node-meta", "env:prod"), ("node-meta", "zone:a")]
    nodes = [n["Node"] for n in http.get("/v1/catalog/nodes", params=prod).json()]
    assert f"{name}-p" in nodes and f"{name}-s" not in nodes
    assert [n["Node"] for n in http.get(f"/v1/catalog/service/{svc}", params=both).json()] == [
        f"{name}-p"
    ]
    health = http.get(f"/v1/health/service/{svc}", params=prod).json()
    assert [e["Node"]["Node"] for e in health] == [f"{name}-p"]
    checks = http.get(f"/v1/health/checks/{svc}", params=prod).json()
    assert [c["Node"] for c in checks] == [f"{name}-p"]
    state = http.get("/v1/health/state/any", params=[("node-meta", "env:staging")]).json()
    assert {c["Node"] for c in state} >= {f"{name}-s"} and f"{name}-p" not in {
        c["Node"] for c in state
    }
    assert svc in http.get("/v1/catalog/services", params=prod).json()
    assert svc not in http.get("/v1/catalog/services", params=[("node-meta", "env:none")]).json()


def test_filter_expressions(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-a", svc, tags=["v1"], meta={"env": "prod"}))
    register(http, web_instance(f"{name}-b", svc, tags=["v2"], status="critical"))

    def get(path: str, expr: str):
        answer = http.get(path, params={"filter": expr})
        assert answer.status_code == 200, answer.text
        return answer.json()

    got = get("/v1/catalog/nodes", f'Meta.env == prod and Node matches "^{name}"')
    assert [n["Node"] for n in got] == [f"{name}-a"]
    got = get(f"/v1/catalog/service/{svc}", '"v2" in ServiceTags')
    assert [n["Node"] for n in got] == [f"{name}-b"]
    got = get(f"/v1/health/service/{svc}", "Checks.Status == critical")
    assert [e["Node"]["Node"] for e in got] == [f"{name}-b"]
    got = get(f"/v1/health/checks/{svc}", "Status == passing")
    assert [c["Node"] for c in got] == [f"{name}-a"]
    got = get("/v1/catalog/services", f'ServiceName == "{svc}" and ServiceTags contains v1')
    assert got == {svc: ["v1"]}
    got = get(f"/v1/catalog/node/{name}-a", "Port == 81")
    assert got["Services"] == {}
    got = get(f"/v1/catalog/node-services/{name}-a", "Port == 80")
    assert [s["ID"] for s in got["Services"]] == [f"{svc}-1"]
    got = get(f"/v1/health/node/{name}-b", "Status != passing")
    assert [c["Status"] for c in got] == ["critical"]

    for path in ("/v1/catalog/nodes", f"/v1/health/service/{svc}", "/v1/health/state/any"):
        answer = http.get(path, params={"filter": "Node =="})
        assert answer.status_code == 400
        assert answer.text.startswith("Failed to create boolean expression evaluator: 1:")


def test_health_state(http: httpx.Client, name: str) -> None:
    register(http, web_instance(f"{name}-w", f"{name}-s", status="warning"))
    for state in ("any", "passing", "warning", "critical"):
        answer = http.get(f"/v1/health/state/{state}")
        assert answer.status_code == 200 and index_of(answer) >= 1
        checks = answer.json()
        assert all(set(c) == CHECK_KEYS for c in checks)
        if state != "any":
            assert {c["Status"] for c in checks} <= {state}
    warning = http.get("/v1/health/state/warning").json()
    assert f"{name}-s-alive" in {c["CheckID"] for c in warning}
    assert http.get("/v1/health/state/bogus").json() == []  # Consul: no error, no match


# ------------------------------------------------------------------------------ py-consul


def test_py_consul_round_trip(cc: consul.Consul, name: str) -> None:
    node, svc = f"{name}-n", f"{name}-web"
    assert cc.catalog.register(
        node,
        "10.9.8.7",
        service={"service": svc, "port": 8080, "tags": ["v1"]},
        check={"CheckID": f"{svc}-c", "name": "c", "status": "passing", "ServiceID": svc},
        node_meta={"k": "v"},
    )
    assert cc.catalog.datacenters() == ["dc1"]
    index, nodes = cc.catalog.nodes()
    assert int(index) >= 1 and node in {n["Node"] for n in nodes}
    _, services = cc.catalog.services()
    assert services[svc] == ["v1"]
    _, instances = cc.catalog.service(svc, tag="v1")
    assert [(i["Node"], i["ServicePort"]) for i in instances] == [(node, 8080)]
    _, one = cc.catalog.node(node)
    assert one["Node"]["Address"] == "10.9.8.7" and svc in one["Services"]
    _, entries = cc.health.service(svc, passing=True)
    assert [e["Service"]["ID"] for e in entries] == [svc]
    _, checks = cc.health.checks(svc)
    assert [c["CheckID"] for c in checks] == [f"{svc}-c"]
    _, passing = cc.health.state("passing")
    assert f"{svc}-c" in {c["CheckID"] for c in passing}
    _, node_checks = cc.health.node(node)
    assert [c["CheckID"] for c in node_checks] == [f"{svc}-c"]
    _, filtered = cc.catalog.nodes(filter_expr=f'Node == "{node}"')
    assert [n["Node"] for n in filtered] == [node]

    assert cc.catalog.deregister(node, service_id=svc)
    assert cc.catalog.service(svc)[1] == []
    assert cc.catalog.deregister(node)
    assert cc.catalog.node(node)[1] is None


def test_py_consul_refusal_raises(cc: consul.Consul) -> None:
    with pytest.raises(consul.ConsulException):
        cc.catalog.register("x", "a", service={"service": "s", "address": "0.0.0.0"})


# ------------------------------------------------------------------------------ blocking


def _block_in_thread(http_url: str, path: str, index: int, results: list) -> threading.Thread:
    def run() -> None:
        with httpx.Client(base_url=http_url, timeout=60) as client:
            results.append(client.get(path, params={"index": index, "wait": "30s"}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", ["catalog", "health"])
def test_blocking_query_woken_by_register(
    http: httpx.Client, dev_agent_module: AgentProc, name: str, kind: str
) -> None:
    svc = f"{name}-web"
    path = f"/v1/{kind}/service/{svc}"
    register(http, web_instance(f"{name}-a", svc))
    first = http.get(path)
    index = index_of(first)
    assert len(first.json()) == 1

    # Unrelated writes must not end the long poll early with unchanged data.
    results: list[httpx.Response] = []
    thread = _block_in_thread(dev_agent_module.url, path, index, results)
    register(http, web_instance(f"{name}-other", f"{name}-unrelated"))
    register(http, web_instance(f"{name}-b", svc))
    thread.join(timeout=40)
    assert not thread.is_alive() and results
    woken = results[0]
    assert woken.status_code == 200
    assert index_of(woken) > index
    assert sorted(i["Node"] if kind == "catalog" else i["Node"]["Node"] for i in woken.json()) == [
        f"{name}-a",
        f"{name}-b",
    ]


def test_blocking_query_woken_by_check_change(
    http: httpx.Client, dev_agent_module: AgentProc, name: str
) -> None:
    svc = f"{name}-web"
    path = f"/v1/health/service/{svc}?passing"
    register(http, web_instance(f"{name}-a", svc, status="critical"))
    first = http.get(path)
    assert first.json() == []
    results: list[httpx.Response] = []
    thread = _block_in_thread(dev_agent_module.url, path, index_of(first), results)
    register(http, web_instance(f"{name}-a", svc, status="passing"))
    thread.join(timeout=40)
    assert not thread.is_alive() and results
    assert [e["Node"]["Node"] for e in results[0].json()] == [f"{name}-a"]


def test_blocking_query_times_out_unchanged(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-a", svc))
    first = http.get(f"/v1/catalog/service/{svc}")
    again = http.get(
        f"/v1/catalog/service/{svc}", params={"index": index_of(first), "wait": "50ms"}
    )
    assert again.status_code == 200
    assert index_of(again) == index_of(first) and again.json() == first.json()


def test_blocking_catalog_nodes_with_py_consul(
    cc: consul.Consul, dev_agent_module: AgentProc, name: str
) -> None:
    index, _ = cc.catalog.nodes()
    results: list = []

    def run() -> None:
        client = consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)
        results.append(client.catalog.nodes(index=index, wait="30s"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    cc.catalog.register(f"{name}-new", "10.0.0.5")
    thread.join(timeout=40)
    assert not thread.is_alive() and results
    new_index, nodes = results[0]
    assert int(new_index) > int(index)
    assert f"{name}-new" in {n["Node"] for n in nodes}


# ------------------------------------------------------------------------------ UI


def test_ui_endpoints(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-a", svc, tags=["b", "a"]))
    register(http, web_instance(f"{name}-b", svc, tags=["a"], status="critical"))

    nodes = http.get("/v1/internal/ui/nodes")
    assert nodes.status_code == 200 and index_of(nodes) >= 1
    mine = {n["Node"]: n for n in nodes.json() if n["Node"].startswith(name)}
    assert set(mine) == {f"{name}-a", f"{name}-b"}
    info = mine[f"{name}-a"]
    assert set(info) == {"ID", "Node", "Address", "TaggedAddresses", "Meta", "Services", "Checks"}
    assert [s["ID"] for s in info["Services"]] == [f"{svc}-1"]

    one = http.get(f"/v1/internal/ui/node/{name}-b").json()
    assert [c["Status"] for c in one["Checks"]] == ["critical"]
    missing = http.get(f"/v1/internal/ui/node/{name}-zzz")
    assert (missing.status_code, missing.text) == (404, "")

    summaries = {s["Name"]: s for s in http.get("/v1/internal/ui/services").json()}
    web = summaries[svc]
    assert web["Nodes"] == [f"{name}-a", f"{name}-b"] and web["Tags"] == ["a", "b"]
    assert (web["InstanceCount"], web["ChecksPassing"], web["ChecksCritical"]) == (2, 1, 1)
    assert web["Datacenter"] == "dc1"

    overview = http.get("/v1/internal/ui/catalog-overview").json()
    assert set(overview) == {"Nodes", "Services", "Checks"}
    services = {s["Name"]: s for s in overview["Services"]}
    assert services[svc] == {"Name": svc, "Total": 2, "Passing": 1, "Warning": 0, "Critical": 1}
    assert overview["Nodes"][0]["Total"] >= 2


def test_check_definition_and_type(http: httpx.Client, name: str) -> None:
    node = f"{name}-n"
    register(
        http,
        {
            "Node": node,
            "Address": "10.0.0.1",
            "Checks": [
                {
                    "CheckID": "web",
                    "Name": "web",
                    "Status": "passing",
                    "Definition": {
                        "http": "http://10.0.0.1/health",
                        "interval": "1m",
                        "Timeout": "5s",
                    },
                },
                {"CheckID": "manual", "Name": "manual", "Output": "set by hand"},
            ],
        },
    )
    checks = {c["CheckID"]: c for c in http.get(f"/v1/health/node/{node}").json()}
    assert checks["web"]["Type"] == "http"
    assert checks["web"]["Definition"] == {
        "HTTP": "http://10.0.0.1/health",
        "Interval": "1m0s",
        "Timeout": "5s",
    }
    # No status given: the catalog stores the check as critical, like Consul.
    assert (checks["manual"]["Status"], checks["manual"]["Type"]) == ("critical", "")
    assert checks["manual"]["Output"] == "set by hand"
    answer = http.put(
        "/v1/catalog/register",
        json={
            "Node": node,
            "Address": "a",
            "Check": {"CheckID": "x", "Definition": {"Interval": "soon"}},
        },
    )
    assert (answer.status_code, answer.text) == (
        400,
        'Request decode failed: time: invalid duration "soon"',
    )


def test_near_and_consistency_parameters(http: httpx.Client, name: str) -> None:
    svc = f"{name}-web"
    register(http, web_instance(f"{name}-a", svc))
    for params in ({"near": "_agent"}, {"stale": ""}, {"consistent": ""}, {"dc": "dc1"}):
        answer = http.get(f"/v1/catalog/service/{svc}", params=params)
        assert answer.status_code == 200 and len(answer.json()) == 1, params
    answer = http.get(f"/v1/health/service/{svc}", params={"dc": "nowhere"})
    assert (answer.status_code, answer.text) == (500, "No path to datacenter")
    answer = http.get("/v1/catalog/nodes", params={"index": "abc"})
    assert (answer.status_code, answer.text) == (400, "Invalid index")
