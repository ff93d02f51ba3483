"""The mesh's control plane on the seed's 3 servers + 1 client: config entries of every kind
written through the client agent read back from each server; the CA and intentions survive a
kill -9 of the Raft leader; a client agent issues leaves and authorizes from a server's view."""

from __future__ import annotations

import httpx
import pytest
from cryptography import x509

from tests.e2e.seedcluster import SeedCluster, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

ENTRIES = [
    {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}},
    {"Kind": "service-defaults", "Name": "web", "Protocol": "http"},
    {"Kind": "service-defaults", "Name": "api", "Protocol": "http"},
    {
        "Kind": "service-resolver",
        "Name": "web",
        "DefaultSubset": "v1",
        "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"}, "v2": {}},
        "Failover": {"*": {"Datacenters": ["dc2"]}},
    },
    {
        "Kind": "service-splitter",
        "Name": "web",
        "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}],
    },
    {
        "Kind": "service-router",
        "Name": "api",
        "Routes": [{"Match": {"HTTP": {"PathPrefix": "/web"}}, "Destination": {"Service": "web"}}],
    },
    {
        "Kind": "service-intentions",
        "Name": "api",
        "Sources": [{"Name": "web", "Action": "allow"}, {"Name": "*", "Action": "deny"}],
    },
    {
        "Kind": "ingress-gateway",
        "Name": "ingress",
        "Listeners": [{"Port": 8080, "Protocol": "http", "Services": [{"Name": "api"}]}],
    },
    {"Kind": "terminating-gateway", "Name": "egress", "Services": [{"Name": "legacy-db"}]},
    {"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": True}},
    {
        "Kind": "exported-services",
        "Name": "default",
        "Services": [{"Name": "api", "Consumers": [{"Peer": "other"}]}],
    },
    {
        "Kind": "api-gateway",
        "Name": "edge",
        "Listeners": [{"Name": "http", "Port": 9090, "Protocol": "http"}],
    },
    {
        "Kind": "http-route",
        "Name": "edge-route",
        "Parents": [{"Name": "edge"}],
        "Rules": [{"Services": [{"Name": "api"}]}],
    },
    {
        "Kind": "tcp-route",
        "Name": "edge-tcp",
        "Parents": [{"Name": "edge"}],
        "Services": [{"Name": "db"}],
    },
    {
        "Kind": "jwt-provider",
        "Name": "okta",
        "JSONWebKeySet": {"Remote": {"URI": "https://127.0.0.1/keys"}},
    },
]


def _name(entry: dict) -> str:
    return entry.get("Name", "mesh")


def _read(url: str, entry: dict) -> httpx.Response:
    return httpx.get(f"{url}/v1/config/{entry['Kind']}/{_name(entry)}?stale", timeout=5)


def test_every_kind_through_the_client_and_state_survives_the_leader() -> None:
    with SeedCluster() as cluster:
        client = cluster.agents["node4"].client()
        for entry in ENTRIES:
            answer = client.put("/v1/config", json=entry)
            assert answer.status_code == 200 and answer.json() is True, (entry, answer.text)
        servers = [cluster.agents[n] for n in ("node1", "node2", "node3")]
        for server in servers:
            for entry in ENTRIES:
                eventually(
                    lambda s=server, e=entry: _read(s.url, e).status_code == 200,
                    20,
                    f"{server.name} has {entry['Kind']}",
                )
        chain = client.get("/v1/discovery-chain/web").json()["Chain"]
        assert chain["Protocol"] == "http"
        assert chain["StartNode"] == "splitter:web.default.default"

        # The client agent issues a leaf (signed by a server) and authorizes from a server's view.
        roots = client.get("/v1/agent/connect/ca/roots").json()
        active = next(r for r in roots["Roots"] if r["Active"])
        leaf = client.get("/v1/agent/connect/ca/leaf/web").json()
        cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(active["RootCert"].encode()))
        source = f"spiffe://{roots['TrustDomain']}/ns/default/dc/dc1/svc/web"
        decided = client.post(
            "/v1/agent/connect/authorize", json={"Target": "api", "ClientCertURI": source}
        ).json()
        assert decided["Authorized"] is True and "Matched L4 intention" in decided["Reason"]

        # kill -9 the leader: no entry and no CA state is lost.
        before = {(e["Kind"], _name(e)): _read(servers[0].url, e).json() for e in ENTRIES}
        victim = cluster.leader_agent()
        victim.kill()
        survivor = next(s for s in servers if s.name != victim.name)
        # A default read sent at once is held while the election runs (rpc_hold_timeout),
        # then answered by the new leader, as Consul does.
        held = httpx.get(f"{survivor.url}/v1/connect/ca/roots", timeout=15)
        assert held.status_code == 200, held.text
        assert held.json()["ActiveRootID"] == roots["ActiveRootID"]
        cluster.wait_leader(not_on=victim.name)
        for entry in ENTRIES:
            got = _read(survivor.url, entry)
            assert got.status_code == 200
            assert got.json() == before[(entry["Kind"], _name(entry))]
        after = httpx.get(f"{survivor.url}/v1/connect/ca/roots?stale", timeout=5).json()
        assert after["ActiveRootID"] == roots["ActiveRootID"]
        assert after["TrustDomain"] == roots["TrustDomain"]
        # Writes go on with the new leader, through the client.
        extra = {"Kind": "service-defaults", "Name": "late", "Protocol": "grpc"}
        eventually(lambda: client.put("/v1/config", json=extra).status_code == 200, 20, "write")
        cluster.restart(victim.name)
        eventually(
            lambda: _read(cluster.agents[victim.name].url, extra).status_code == 200,
            30,
            "the restarted server catches up",
        )
