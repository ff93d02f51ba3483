"""Prepared query definitions reached through other agents: `?dc=` sends create, read, list,
update and delete to the named datacenter's servers (two -dev datacenters, WAN-joined on
loopback), and a client agent's requests are answered by its server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.seedcluster import eventually

IP = "127.0.0.1"


def _server(name: str, lan_port: int, wan_port: int, join_wan: int | None = None) -> AgentProc:
    args = [
        "-dev",
        f"-datacenter={name}",
        f"-node=srv-{name}",
        f"-bind={IP}",
        f"-client={IP}",
        f"-server-port={free_port(IP)}",
        "-dns-port=-1",
        f"-serf-lan-port={lan_port}",
        f"-serf-wan-port={wan_port}",
    ]
    if join_wan is not None:
        args.append(f"-join-wan={IP}:{join_wan}")
    return AgentProc(*args, http_port=free_port(IP))


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, httpx.Client]]:
    lan, wan1 = free_port(IP), free_port(IP)
    dc1 = _server("dc1", lan, wan1)
    dc2 = _server("dc2", free_port(IP), free_port(IP), join_wan=wan1)
    procs = [dc1.start(), dc2.start()]
    client = AgentProc(
        "-node=cli-dc1",
        "-datacenter=dc1",
        f"-bind={IP}",
        f"-client={IP}",
        f"-join={IP}:{lan}",
        f"-data-dir={tmp_path_factory.mktemp('client')}",
        "-dns-port=-1",
        f"-serf-lan-port={free_port(IP)}",
        "-serf-wan-port=-1",
        http_port=free_port(IP),
    )
    procs.append(client.start())
    https = {
        name: p.client(timeout=10) for name, p in zip(("dc1", "dc2", "client"), procs, strict=True)
    }
    try:
        for name in ("dc1", "dc2"):
            eventually(
                lambda n=name: len(https[n].get("/v1/catalog/datacenters").json()) == 2,
                30,
                f"{name} sees both datacenters",
            )
        eventually(
            lambda: https["client"].get("/v1/status/leader").json() != "",
            30,
            "the client agent knows its server",
        )
        yield https
    finally:
        for http in https.values():
            http.close()
        for proc in procs:
            proc.cleanup()


def test_dc_parameter_reaches_the_other_datacenter(agents: dict[str, httpx.Client]) -> None:
    dc1, dc2 = agents["dc1"], agents["dc2"]
    remote = {"dc": "dc2"}
    r = dc1.post("/v1/query", params=remote, json={"Name": "far", "Service": {"Service": "db"}})
    assert r.status_code == 200, r.text
    query_id = r.json()["ID"]
    assert [q["ID"] for q in dc2.get("/v1/query").json()] == [query_id]
    assert dc1.get("/v1/query").json() == []
    [seen] = dc1.get(f"/v1/query/{query_id}", params=remote).json()
    assert seen["Name"] == "far"
    r = dc1.get(f"/v1/query/{query_id}")
    assert (r.status_code, r.text) == (404, "Query not found")
    body = {"Name": "far", "Service": {"Service": "web"}}
    assert dc1.put(f"/v1/query/{query_id}", params=remote, json=body).status_code == 200
    assert dc2.get(f"/v1/query/{query_id}").json()[0]["Service"]["Service"] == "web"
    r = dc1.post("/v1/query", params=remote, json={"Name": "FAR", "Service": {"Service": "db"}})
    assert (r.status_code, r.text) == (
        500,
        "raft apply failed: name 'FAR' aliases an existing query name",
    )
    assert dc1.delete(f"/v1/query/{query_id}", params=remote).status_code == 200
    assert dc2.get("/v1/query").json() == []


def test_a_client_agent_is_answered_by_its_server(agents: dict[str, httpx.Client]) -> None:
    client, server = agents["client"], agents["dc1"]
    r = client.post("/v1/query", json={"Name": "via-client", "Service": {"Service": "db"}})
    assert r.status_code == 200, r.text
    query_id = r.json()["ID"]
    assert [q["ID"] for q in server.get("/v1/query").json()] == [query_id]
    [seen] = client.get(f"/v1/query/{query_id}").json()
    assert seen["Name"] == "via-client"
    r = client.post("/v1/query", json={"Name": "x"})
    assert (r.status_code, r.text) == (
        500,
        "Invalid prepared query: Must provide a Service name to query",
    )
    assert client.delete(f"/v1/query/{query_id}").status_code == 200
    assert server.get("/v1/query").json() == []
