"""The seed's 3 servers + 1 client as real processes: Raft, gossip, forwarding, membership."""

from __future__ import annotations

import base64
import subprocess
import sys

import consul
import httpx
import pytest

from tests.e2e.seedcluster import SeedCluster, eventually

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster():
    with SeedCluster() as c:
        yield c


def members(agent) -> dict[str, int]:
    return {m["Name"]: m["Status"] for m in httpx.get(f"{agent.url}/v1/agent/members").json()}


def test_one_leader_three_peers_four_members(cluster: SeedCluster) -> None:
    leader = cluster.wait_leader()
    for agent in cluster.agents.values():
        assert agent.leader() == leader
        peers = httpx.get(f"{agent.url}/v1/status/peers").json()
        assert sorted(peers) == ["127.0.0.11:8300", "127.0.0.12:8300", "127.0.0.13:8300"]
    eventually(
        lambda: members(cluster.agents["node4"]) == {f"node{i}": 1 for i in range(1, 5)},
        what="four alive members",
    )
    config = httpx.get(f"{cluster.agents['node1'].url}/v1/operator/raft/configuration").json()
    assert sorted(s["Node"] for s in config["Servers"]) == ["node1", "node2", "node3"]
    assert [s["Address"] for s in config["Servers"] if s["Leader"]] == [leader]


def test_writes_on_any_agent_are_readable_on_all(cluster: SeedCluster) -> None:
    for name, agent in cluster.agents.items():
        with agent.client() as http:
            assert http.put(f"/v1/kv/seed/from-{name}", content=name.encode()).json() is True
    for agent in cluster.agents.values():
        with agent.client() as http:
            keys = http.get("/v1/kv/seed/", params={"keys": ""}).json()
            assert keys == [f"seed/from-node{i}" for i in range(1, 5)]
            value = http.get("/v1/kv/seed/from-node4").json()[0]["Value"]
            assert base64.b64decode(value) == b"node4"


def test_stale_and_consistent_reads_on_a_follower(cluster: SeedCluster) -> None:
    leader = cluster.leader_agent()
    follower = next(
        a for a in cluster.agents.values() if a.name != leader.name and a.name != "node4"
    )
    with leader.client() as http:
        http.put("/v1/kv/modes", content=b"1")
    with follower.client() as http:
        consistent = http.get("/v1/kv/modes", params={"consistent": ""})
        assert consistent.status_code == 200
        stale = eventually(
            lambda: (
                http.get("/v1/kv/modes", params={"stale": ""}).status_code == 200
                and http.get("/v1/kv/modes", params={"stale": ""})
            )
        )
        assert stale.headers["x-consul-knownleader"] == "true"


def test_catalog_follows_membership(cluster: SeedCluster) -> None:
    url = cluster.agents["node1"].url

    def nodes() -> list[str]:
        return [n["Node"] for n in httpx.get(f"{url}/v1/catalog/nodes").json()]

    eventually(lambda: nodes() == ["node1", "node2", "node3", "node4"], what="four catalog nodes")
    eventually(
        lambda: "consul" in httpx.get(f"{url}/v1/catalog/services").json(),
        what="the servers' consul service",
    )
    serf = httpx.get(f"{url}/v1/health/checks/consul").json()
    assert serf == [] or all(c["Status"] == "passing" for c in serf)
    states = httpx.get(f"{url}/v1/health/state/any").json()
    assert {(c["Node"], c["CheckID"], c["Status"]) for c in states} >= {
        (f"node{i}", "serfHealth", "passing") for i in range(1, 5)
    }


def test_service_registered_on_the_client_is_in_the_catalog(cluster: SeedCluster) -> None:
    client = cluster.agents["node4"]
    c = consul.Consul(host=client.ip, port=8500)
    assert (
        c.agent.service.register(
            "web", service_id="web-1", port=8080, tags=["v1"], check=consul.Check.ttl("30s")
        )
        is True
    )
    c.agent.check.ttl_pass("service:web-1")
    server = consul.Consul(host="127.0.0.12", port=8500)
    _, nodes = eventually(
        lambda: (lambda r: r if r[1] else None)(server.health.service("web", passing=True)),
        what="web passing in the catalog",
    )
    assert [(n["Node"]["Node"], n["Service"]["ID"]) for n in nodes] == [("node4", "web-1")]


def test_duplicate_node_name_is_refused_and_the_cluster_is_unhurt(cluster: SeedCluster) -> None:
    """The write-up's fourth line reuses -node=node3 (here on a fifth address)."""
    dup = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitkv",
            "agent",
            *cluster.client_args("node3", "127.0.0.15", data="dup"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert dup.returncode != 0
    refusal = [
        line for line in dup.stdout.splitlines() + dup.stderr.splitlines() if line.startswith("==>")
    ]
    assert refusal and "node3" in refusal[0] and "conflicting name" in refusal[0], dup.stderr
    assert "127.0.0.13" in refusal[0] and "127.0.0.15" in refusal[0]
    leader = cluster.wait_leader()
    for agent in cluster.agents.values():
        assert agent.leader() == leader
        view = members(agent)
        assert view["node3"] == 1 and set(view) == {"node1", "node2", "node3", "node4"}
    with cluster.agents["node3"].client() as http:
        assert http.put("/v1/kv/after-dup", content=b"ok").json() is True


def test_gitkv_plan_reports_agent_drift_on_the_cluster(cluster: SeedCluster, tmp_path) -> None:
    """The spec's agents vs /v1/agent/members of the real cluster: read-only drift."""
    import json

    spec = tmp_path / "gitkv.yaml"
    spec.write_text(
        "version: 1\n"
        "datacenters:\n"
        "  shenzhen:\n"
        "    address: http://127.0.0.12:8500\n"
        "    agents:\n"
        "      node1: {server: true, bind: 127.0.0.11}\n"
        "      node2: {server: true, bind: 127.0.0.12}\n"
        "      node3: {server: true, bind: 127.0.0.13}\n"
        "      node9: {bind: 127.0.0.19}\n"
        "    kv_prefixes: [drift/]\n"
        "    kv:\n"
        '      drift/a: "1"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "gitkv", "plan", str(spec), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    drift = {d["agent"]: d["problem"] for d in json.loads(result.stdout)["plans"][0]["drift"]}
    assert drift == {"node9": "missing", "node4": "unexpected"}
    applied = subprocess.run(
        [sys.executable, "-m", "gitkv", "apply", str(spec), "--auto-approve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    with cluster.agents["node4"].client() as http:
        assert base64.b64decode(http.get("/v1/kv/drift/a").json()[0]["Value"]) == b"1"
