"""Bad writes through the seed's client agent (node4) never reach the Raft log: each is a
400 naming the field, every server's state stays what it was, and the catalog keeps answering."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.seedcluster import SeedCluster, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

# (path, body, what the refusal must name)
BAD_WRITES = [
    ("/v1/txn", [{"KV": {"Verb": "delete-tree", "Key": ["a/"]}}], "KVTxnOp.KV.Key"),
    ("/v1/txn", [{"Check": {"Verb": "set", "Check": "x"}}], "CheckTxnOp.Check.Check"),
    (
        "/v1/txn",
        [{"Node": {"Verb": "set", "Node": {"Node": 7, "Address": "10.0.0.1"}}}],
        "Node.Node.Node.Node",
    ),
    (
        "/v1/txn",
        [{"KV": {"Verb": "set", "Key": "bad/flags", "Flags": 2**64}}],
        "KVTxnOp.KV.Flags of type uint64",
    ),
    (
        "/v1/catalog/register",
        {"Node": "x", "Address": "10.0.0.2", "Service": {"Service": "s", "Port": 2**63}},
        "NodeService.Service.Port of type int",
    ),
    ("/v1/catalog/register", {"Node": ["x"], "Address": "10.0.0.3"}, "RegisterRequest.Node"),
    ("/v1/session/create", {"LockDelay": "99999999h"}, "invalid duration"),
    ("/v1/session/create", {"NodeChecks": "serfHealth"}, "Session.NodeChecks"),
]
NESTED = b"[" * 4000 + b"]" * 4000


def _state(url: str) -> tuple[object, object, object, object]:
    stale = {"stale": ""}
    kv = httpx.get(f"{url}/v1/kv/", params={"recurse": "", **stale}, timeout=5)
    nodes = httpx.get(f"{url}/v1/catalog/nodes", params=stale, timeout=5)
    services = httpx.get(f"{url}/v1/catalog/services", params=stale, timeout=5)
    sessions = httpx.get(f"{url}/v1/session/list", params=stale, timeout=5)
    assert nodes.status_code == services.status_code == sessions.status_code == 200
    return kv.json(), [n["Node"] for n in nodes.json()], services.json(), sessions.json()


def test_bad_writes_through_the_client_change_nothing() -> None:
    with SeedCluster() as cluster:
        client = cluster.agents["node4"].client()
        assert client.put("/v1/kv/keep/bin", content=bytes(range(256))).json() is True
        assert client.put("/v1/kv/keep/text", content=b"value").json() is True
        servers = [cluster.agents[n] for n in ("node1", "node2", "node3")]
        leader = cluster.leader_agent()
        before = _state(leader.url)
        for server in servers:
            eventually(lambda s=server: _state(s.url) == before, 20, f"{server.name} in step")

        for path, body, names in BAD_WRITES:
            answer = client.put(path, content=json.dumps(body).encode())
            assert answer.status_code == 400, (path, body, answer.text)
            assert names in answer.text, (path, answer.text)
        for path in ("/v1/txn", "/v1/catalog/register", "/v1/session/create"):
            answer = client.put(path, content=NESTED)
            assert answer.status_code == 400, (path, answer.text)

        # A good write afterwards commits, and every server has it next to the old state.
        assert client.put("/v1/kv/keep/after", content=b"x").json() is True
        for server in servers:
            eventually(
                lambda s=server: (
                    httpx.get(f"{s.url}/v1/kv/keep/after?stale", timeout=5).status_code == 200
                ),
                20,
                f"{server.name} has the later write",
            )
            state = _state(server.url)
            kv = {e["Key"]: e for e in state[0] if e["Key"] != "keep/after"}
            assert kv == {e["Key"]: e for e in before[0]}
            assert state[1:] == before[1:]
            assert "apply of index" not in server.output()
            assert "Traceback" not in server.output()
        raw = client.get("/v1/kv/keep/bin", params={"raw": ""})
        assert raw.content == bytes(range(256))
