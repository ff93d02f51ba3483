"""/v1/txn over real HTTP: verbs, atomicity, 409 shape, limits, read-only transactions."""

from __future__ import annotations

import base64

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def http(dev_agent_module: AgentProc):
    with dev_agent_module.client() as client:
        client.delete("/v1/kv/", params={"recurse": ""})
        yield client


def test_set_get_and_results_shape(http: httpx.Client) -> None:
    answer = http.put(
        "/v1/txn",
        json=[
            {"KV": {"Verb": "set", "Key": "t/a", "Value": b64("1")}},
            {"KV": {"Verb": "set", "Key": "t/b", "Value": b64("2"), "Flags": 5}},
            {"KV": {"Verb": "get", "Key": "t/a"}},
            {"KV": {"Verb": "delete", "Key": "t/zz"}},
        ],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["Errors"] is None
    results = body["Results"]
    assert len(results) == 3  # deletes give no result entry
    assert results[0]["KV"]["Key"] == "t/a" and results[0]["KV"]["Value"] is None
    assert results[1]["KV"]["Flags"] == 5
    assert base64.b64decode(results[2]["KV"]["Value"]) == b"1"


def test_rollback_is_409_and_changes_nothing(http: httpx.Client) -> None:
    http.put("/v1/kv/t/x", content=b"old")
    answer = http.put(
        "/v1/txn",
        json=[
            {"KV": {"Verb": "set", "Key": "t/y", "Value": b64("new")}},
            {"KV": {"Verb": "cas", "Key": "t/x", "Value": b64("new"), "Index": 999999}},
            {"KV": {"Verb": "check-not-exists", "Key": "t/x"}},
        ],
    )
    assert answer.status_code == 409
    body = answer.json()
    assert body["Results"] is None
    assert body["Errors"] == [
        {"OpIndex": 1, "What": "t/x".join(['failed to set key "', '", index is stale'])},
        {"OpIndex": 2, "What": 'key "t/x" exists'},
    ]
    assert http.get("/v1/kv/t/y").status_code == 404
    assert base64.b64decode(http.get("/v1/kv/t/x").json()[0]["Value"]) == b"old"


def test_case_insensitive_body_and_delete_verbs(http: httpx.Client) -> None:
    http.put("/v1/kv/d/1", content=b"x")
    http.put("/v1/kv/d/2", content=b"x")
    idx = http.get("/v1/kv/d/1").json()[0]["ModifyIndex"]
    answer = http.put(
        "/v1/txn",
        json=[
            {"kv": {"verb": "delete-cas", "key": "d/1", "index": idx}},
            {"KV": {"Verb": "delete-tree", "Key": "d/"}},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert http.get("/v1/kv/d/", params={"recurse": ""}).status_code == 404


def test_read_only_txn_sets_leader_headers_but_no_index(http: httpx.Client) -> None:
    http.put("/v1/kv/r", content=b"v")
    answer = http.put("/v1/txn", json=[{"KV": {"Verb": "get", "Key": "r"}}])
    assert answer.status_code == 200
    assert answer.headers["x-consul-knownleader"] == "true"
    assert "x-consul-index" not in answer.headers


def test_catalog_verbs_in_txn(http: httpx.Client) -> None:
    answer = http.put(
        "/v1/txn",
        json=[
            {"Node": {"Verb": "set", "Node": {"Node": "txn-node", "Address": "127.0.0.77"}}},
            {
                "Service": {
                    "Verb": "set",
                    "Node": "txn-node",
                    "Service": {"ID": "s1", "Service": "svc", "Port": 99},
                }
            },
            {
                "Check": {
                    "Verb": "set",
                    "Check": {
                        "Node": "txn-node",
                        "CheckID": "c1",
                        "Name": "c",
                        "Status": "passing",
                        "ServiceID": "s1",
                    },
                }
            },
        ],
    )
    assert answer.status_code == 200, answer.text
    kinds = [next(iter(r)) for r in answer.json()["Results"]]
    assert kinds == ["Node", "Service", "Check"]
    bad = http.put(
        "/v1/txn",
        json=[
            {
                "Check": {
                    "Verb": "set",
                    "Check": {"Node": "no-such-node", "CheckID": "c2", "Name": "c"},
                }
            },
        ],
    )
    assert bad.status_code == 409
    http.put("/v1/catalog/deregister", json={"Node": "txn-node"})


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "Failed to parse body"),
        (
            b'[{"KV": {"Verb": "set", "Key": "k", "Value": "not base64!"}}]',
            400,
            "illegal base64 data",
        ),
        (b'[{"KV": {"Verb": "explode", "Key": "k"}}]', 400, "explode"),
        (b'[{"KV": {"Verb": "set", "Key": "k"}, "Node": {"Verb": "get"}}]', 400, "exactly one"),
    ],
)
def test_bad_bodies(http: httpx.Client, body: bytes, status: int, text: str) -> None:
    answer = http.put("/v1/txn", content=body)
    assert answer.status_code == status
    assert text in answer.text
    assert http.get("/v1/kv/k").status_code == 404


def test_operation_limit(http: httpx.Client) -> None:
    ops = [{"KV": {"Verb": "set", "Key": f"lim/{i}", "Value": b64("v")}} for i in range(65)]
    answer = http.put("/v1/txn", json=ops)
    assert answer.status_code == 413
    assert "Transaction contains too many operations (65 > 64)" in answer.text
    assert http.put("/v1/txn", json=ops[:64]).status_code == 200


def test_py_consul_txn(dev_agent_module: AgentProc) -> None:
    c = consul.Consul(host=dev_agent_module.ip, port=dev_agent_module.http_port)
    result = c.txn.put(
        [
            {"KV": {"Verb": "set", "Key": "pytxn", "Value": b64("v")}},
            {"KV": {"Verb": "get", "Key": "pytxn"}},
        ]
    )
    assert base64.b64decode(result["Results"][1]["KV"]["Value"]) == b"v"


def test_large_read_results_stream_as_one_json_answer(http: httpx.Client) -> None:
    values = {f"big/{i}": bytes([i]) * 400_000 for i in range(4)}
    for key, value in values.items():
        assert http.put(f"/v1/kv/{key}", content=value).json() is True
    ops = [{"KV": {"Verb": "get", "Key": key}} for key in values]
    answer = http.put("/v1/txn", json=ops + [{"KV": {"Verb": "get-tree", "Key": "big/"}}])
    assert answer.status_code == 200
    assert "content-length" not in answer.headers  # sent in pieces, not built whole
    results = answer.json()["Results"]
    assert answer.json()["Errors"] is None and len(results) == 8
    got = [(r["KV"]["Key"], base64.b64decode(r["KV"]["Value"])) for r in results]
    assert got == list(values.items()) * 2


# The fields of the Go client's structs a txn result is decoded into (api/txn.go TxnResult:
# KV *KVPair, Node *Node, Service *CatalogService, Check *HealthCheck). Go matches JSON keys
# to fields case-insensitively and drops the rest; null stays nil, [] and {} do not.
GO_FIELDS = {
    "Node": ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"),
    "Service": (
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "NodeMeta",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "ServiceMeta",
        "ServicePort",
        "Checks",
    ),
    "Check": (
        "Node",
        "CheckID",
        "Name",
        "Status",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
        "Type",
    ),
}


def go_decode(kind: str, obj: dict) -> dict:
    keys = {k.lower(): k for k in obj}
    return {f: obj[keys[f.lower()]] for f in GO_FIELDS[kind] if f.lower() in keys}


def test_results_decode_as_the_go_client_expects(http: httpx.Client) -> None:
    """api/txn_test.go TestAPI_ClientTxn: a catalog node with no tagged addresses or meta, a
    service, and checks with durations, read back through a txn and compared whole."""
    check = {"Interval": "5s", "Timeout": "10s", "DeregisterCriticalServiceAfter": "20s"}
    reg = {
        "ID": "d4bd9f4a-1c49-4d2e-9c40-5f0a1d1c2b3a",
        "Node": "txn-foo",
        "Address": "2.2.2.2",
        "Service": {"ID": "foo1", "Service": "foo"},
        "Checks": [
            {"CheckID": "bar", "Status": "critical", "Definition": {"TCP": "1.1.1.1", **check}},
            {"CheckID": "bor", "Status": "critical", "Definition": {"UDP": "1.1.1.1", **check}},
        ],
    }
    assert http.put("/v1/catalog/register", json=reg).json() is True
    ops = [
        {"Node": {"Verb": "get", "Node": {"Node": "txn-foo"}}},
        {"Service": {"Verb": "get", "Node": "txn-foo", "Service": {"ID": "foo1"}}},
        {"Check": {"Verb": "get", "Check": {"Node": "txn-foo", "CheckID": "bar"}}},
        {"Check": {"Verb": "get", "Check": {"Node": "txn-foo", "CheckID": "bor"}}},
    ]
    answer = http.put("/v1/txn", json=ops)
    assert answer.status_code == 200, answer.text
    node, svc, bar, bor = answer.json()["Results"]
    assert go_decode("Node", node["Node"]) == {
        "ID": reg["ID"],
        "Node": "txn-foo",
        "Address": "2.2.2.2",
        "Datacenter": "dc1",
        "TaggedAddresses": None,
        "Meta": None,
    }
    assert node["Node"]["ModifyIndex"] == node["Node"]["CreateIndex"]
    # A NodeService decoded as a CatalogService: only the ID (and an empty Address) carry over.
    assert go_decode("Service", svc["Service"]) == {"ID": "foo1", "Address": ""}
    for got, check_id, kind in ((bar, "bar", "tcp"), (bor, "bor", "udp")):
        assert go_decode("Check", got["Check"]) == {
            "Node": "txn-foo",
            "CheckID": check_id,
            "Name": "",
            "Status": "critical",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": None,
            "Type": kind,
        }
        assert got["Check"]["Definition"]["Interval"] == "5s"
