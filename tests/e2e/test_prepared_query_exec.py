"""Executing prepared queries on real agents, over HTTP and DNS.

Two datacenters (-dev servers on 127.0.0.1 with their own ports, dc2 WAN-joined to dc1): a
query with `Failover.NearestN` answers from dc2 when every instance in dc1 is critical (TTL
checks failed), and from dc1 again once one recovers, through `/v1/query/<name>/execute`
and `<name>.query.consul`. Then the filters (tags, `!tag`, OnlyPassing, NodeMeta, limit,
near) on one agent's catalog, explain, and bad input.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.seedcluster import eventually

IP = "127.0.0.1"


class DC:
    """A -dev server of its own datacenter (or, with `client_of`, a client agent joined to
    that server's LAN)."""

    def __init__(self, name: str, client_of: DC | None = None, data_dir: str = "") -> None:
        self.name = name
        self.wan_port = free_port(IP)
        self.dns_port = free_port(IP)
        self.lan_port = free_port(IP)
        common = [
            f"-datacenter={name}",
            f"-bind={IP}",
            f"-client={IP}",
            f"-dns-port={self.dns_port}",
            f"-serf-lan-port={self.lan_port}",
        ]
        if client_of is None:
            role = ["-dev", f"-node=srv-{name}", f"-server-port={free_port(IP)}"]
            role.append(f"-serf-wan-port={self.wan_port}")
        else:
            role = [f"-node=cli-{name}", f"-join={IP}:{client_of.lan_port}"]
            role += [f"-data-dir={data_dir}", "-serf-wan-port=-1"]
        self.proc = AgentProc(*role, *common, http_port=free_port(IP))
        self.http: httpx.Client | None = None

    def start(self) -> DC:
        self.proc.start()
        self.http = self.proc.client(timeout=10)
        return self

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.proc.cleanup()

    def dns(self, name: str, rdtype: str = "A") -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        return dns.query.udp(query, IP, port=self.dns_port, timeout=5)


@pytest.fixture(scope="module")
def two_dcs() -> Iterator[tuple[DC, DC]]:
    dc1 = DC("dc1")
    dc2 = DC("dc2")
    try:
        dc1.start()
        dc2.proc.args.append(f"-join-wan={IP}:{dc1.wan_port}")
        dc2.start()
        for dc in (dc1, dc2):
            eventually(
                lambda d=dc: len(d.http.get("/v1/catalog/datacenters").json()) == 2,
                30,
                f"{dc.name} sees both datacenters",
            )
        yield dc1, dc2
    except BaseException:
        for dc in (dc1, dc2):
            print(f"--- {dc.name}\n{dc.proc.output()[-3000:]}")
        raise
    finally:
        dc1.close()
        dc2.close()


def _register_ttl(dc: DC, service_id: str, address: str) -> None:
    body = {
        "ID": service_id,
        "Name": "web",
        "Address": address,
        "Port": 8080,
        "Check": {"TTL": "300s"},
    }
    dc.http.put("/v1/agent/service/register", json=body).raise_for_status()


def _ttl(dc: DC, service_id: str, state: str) -> None:
    dc.http.put(f"/v1/agent/check/{state}/service:{service_id}").raise_for_status()


def _execute(agent: DC, name: str, **params: str) -> dict:
    answer = agent.http.get(f"/v1/query/{name}/execute", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _addresses(result: dict) -> list[str]:
    return sorted(n["Service"]["Address"] for n in result["Nodes"])


def _dns_addresses(dc: DC, name: str) -> list[str]:
    reply = dc.dns(name)
    return sorted(r.address for rrset in reply.answer for r in rrset)


def test_failover_to_the_other_datacenter_and_back(two_dcs: tuple[DC, DC]) -> None:
    dc1, dc2 = two_dcs
    _register_ttl(dc1, "web-a", "10.1.0.1")
    _register_ttl(dc1, "web-b", "10.1.0.2")
    _register_ttl(dc2, "web-far", "10.2.0.1")
    _ttl(dc2, "web-far", "pass")
    for sid in ("web-a", "web-b"):
        _ttl(dc1, sid, "pass")
    query = {
        "Name": "web",
        "Service": {"Service": "web", "Failover": {"NearestN": 1}},
        "DNS": {"TTL": "9s"},
    }
    created = dc1.http.post("/v1/query", json=query)
    assert created.status_code == 200, created.text

    # Local instances passing: answered here, nothing failed over.
    eventually(lambda: _addresses(_execute(dc1, "web")) == ["10.1.0.1", "10.1.0.2"], 20, "local")
    local = _execute(dc1, "web")
    assert (local["Service"], local["Datacenter"], local["Failovers"]) == ("web", "dc1", 0)
    assert local["DNS"] == {"TTL": "9s"}

    # Every local instance critical: dc2 answers, over HTTP and DNS.
    for sid in ("web-a", "web-b"):
        _ttl(dc1, sid, "fail")
    eventually(lambda: _execute(dc1, "web")["Datacenter"] == "dc2", 20, "failover to dc2")
    remote = _execute(dc1, "web")
    assert (_addresses(remote), remote["Failovers"]) == (["10.2.0.1"], 1)
    assert remote["Nodes"][0]["Node"]["Datacenter"] == "dc2"
    assert _dns_addresses(dc1, "web.query.consul.") == ["10.2.0.1"]
    reply = dc1.dns("web.query.consul.", "SRV")
    srv = [r for rrset in reply.answer for r in rrset]
    assert [(r.port, r.target.to_text()) for r in srv] == [(8080, "0a020001.addr.dc2.consul.")]
    assert reply.answer[0].ttl == 9

    # One recovers: local again.
    _ttl(dc1, "web-b", "pass")
    eventually(lambda: _execute(dc1, "web")["Datacenter"] == "dc1", 20, "back to dc1")
    back = _execute(dc1, "web")
    assert (_addresses(back), back["Failovers"]) == (["10.1.0.2"], 0)
    assert _dns_addresses(dc1, "web.query.consul.") == ["10.1.0.2"]

    # `.query.<dc>.` and `?dc=` run a query that datacenter has.
    assert dc2.http.post(
        "/v1/query", json={"Name": "far", "Service": {"Service": "web"}}
    ).is_success
    assert _addresses(_execute(dc1, "far", dc="dc2")) == ["10.2.0.1"]
    assert _dns_addresses(dc1, "far.query.dc2.consul.") == ["10.2.0.1"]
    assert dc1.dns("far.query.consul.").rcode() == dns.rcode.NXDOMAIN  # dc1 has no "far"
    assert dc1.http.get("/v1/query/far/execute").status_code == 404


def test_failover_without_instances_anywhere_counts_the_tries(two_dcs: tuple[DC, DC]) -> None:
    dc1, _ = two_dcs
    query = {"Name": "ghost", "Service": {"Service": "ghost", "Failover": {"NearestN": 3}}}
    assert dc1.http.post("/v1/query", json=query).is_success
    result = _execute(dc1, "ghost")
    assert (result["Nodes"], result["Failovers"], result["Datacenter"]) == ([], 1, "dc2")
    assert dc1.dns("ghost.query.consul.").rcode() == dns.rcode.NXDOMAIN


# --------------------------------------------------------------------------- filters


def _register(dc: DC, node: str, ip: str, tags: list[str], status: str, **meta: str) -> None:
    body = {
        "Node": node,
        "Address": ip,
        "NodeMeta": meta,
        "Service": {"Service": "api", "Port": 9000, "Tags": tags},
        "Check": {"CheckID": "health", "Name": "health", "Status": status, "ServiceID": "api"},
    }
    dc.http.put("/v1/catalog/register", json=body).raise_for_status()


def _nodes(result: dict) -> list[str]:
    return sorted(n["Node"]["Node"] for n in result["Nodes"])


def test_filters_limit_and_near(two_dcs: tuple[DC, DC]) -> None:
    dc1, _ = two_dcs
    _register(dc1, "api1", "10.3.0.1", ["Primary", "v1"], "passing", rack="r1")
    _register(dc1, "api2", "10.3.0.2", ["primary", "v2"], "warning", rack="r2")
    _register(dc1, "api3", "10.3.0.3", ["secondary"], "passing", rack="r1")
    _register(dc1, "api4", "10.3.0.4", ["primary"], "critical", rack="r1")
    queries = {
        "api-all": {},
        "api-primary": {"Tags": ["PRIMARY"]},
        "api-not-v1": {"Tags": ["primary", "!v1"]},
        "api-passing": {"OnlyPassing": True},
        "api-r1": {"NodeMeta": {"rack": "r1"}},
    }
    for name, extra in queries.items():
        body = {"Name": name, "Service": {"Service": "api", **extra}}
        assert dc1.http.post("/v1/query", json=body).is_success, name
    assert _nodes(_execute(dc1, "api-all")) == ["api1", "api2", "api3"]
    assert _nodes(_execute(dc1, "api-primary")) == ["api1", "api2"]
    assert _nodes(_execute(dc1, "api-not-v1")) == ["api2"]
    assert _nodes(_execute(dc1, "api-passing")) == ["api1", "api3"]
    assert _nodes(_execute(dc1, "api-r1")) == ["api1", "api3"]
    assert len(_execute(dc1, "api-all", limit="2")["Nodes"]) == 2

    # Near: coordinates put api3 next to api1, api2 far away.
    def coord(x: float) -> dict:
        return {"Vec": [x] + [0.0] * 7, "Error": 0.2, "Adjustment": 0.0, "Height": 1e-05}

    for node, x in (("api1", 0.0), ("api2", 0.9), ("api3", 0.01)):
        update = {"Node": node, "Coord": coord(x)}
        assert dc1.http.put("/v1/coordinate/update", json=update).is_success
    eventually(
        lambda: len(dc1.http.get("/v1/coordinate/nodes").json()) >= 3, 10, "coordinates stored"
    )
    for _ in range(5):  # shuffled first, then sorted: always the same order
        order = [n["Node"]["Node"] for n in _execute(dc1, "api-all", near="api1")["Nodes"]]
        assert order == ["api1", "api3", "api2"]
        order = [n["Node"]["Node"] for n in _execute(dc1, "api-all", near="api2")["Nodes"]]
        assert order == ["api2", "api3", "api1"]


def test_explain_and_bad_input(two_dcs: tuple[DC, DC]) -> None:
    dc1, _ = two_dcs
    body = {
        "Name": "x-",
        "Template": {"Type": "name_prefix_match"},
        "Service": {"Service": "${name.suffix}"},
    }
    assert dc1.http.post("/v1/query", json=body).is_success
    explained = dc1.http.get("/v1/query/x-api/explain")
    assert explained.status_code == 200, explained.text
    assert explained.json()["Query"]["Service"]["Service"] == "api"
    assert _nodes(_execute(dc1, "x-api")) == ["api1", "api2", "api3"]
    bad = dc1.http.get("/v1/query/x-api/execute", params={"limit": "ten"})
    assert (bad.status_code, bad.text) == (
        500,
        'Bad limit: strconv.Atoi: parsing "ten": invalid syntax',
    )
    bad = dc1.http.get("/v1/query/x-api/execute", params={"connect": "maybe"})
    assert bad.status_code == 500 and "Error parsing 'connect' value" in bad.text
    missing = dc1.http.get("/v1/query/nothing-here/execute")
    assert (missing.status_code, missing.text) == (404, "Query not found")
    assert dc1.http.put("/v1/query/x-api/execute").status_code == 405


def test_a_client_agent_executes_through_its_server(two_dcs: tuple[DC, DC]) -> None:
    dc1, _ = two_dcs
    with tempfile.TemporaryDirectory(prefix="gitkv-query-client-") as data:
        client = DC("dc1", client_of=dc1, data_dir=data)
        try:
            client.start()
            query = {"Name": "via-client", "Service": {"Service": "web"}}
            assert client.http.post("/v1/query", json=query).is_success
            expected = _addresses(_execute(dc1, "via-client"))
            assert expected  # the failover test left one dc1 instance passing
            assert _addresses(_execute(client, "via-client")) == expected
            assert _dns_addresses(client, "via-client.query.consul.") == expected
            assert _addresses(_execute(client, "far", dc="dc2")) == ["10.2.0.1"]
            assert _dns_addresses(client, "far.query.dc2.consul.") == ["10.2.0.1"]
            assert client.dns("no-such.query.consul.").rcode() == dns.rcode.NXDOMAIN

            # Near "_agent": the agent that took the request, over HTTP and DNS alike.
            for agent, address in ((client, "10.5.0.2"), (dc1, "10.5.0.1")):
                body = {"ID": "near", "Name": "near", "Address": address, "Port": 1}
                agent.http.put("/v1/agent/service/register", json=body).raise_for_status()
            query = {"Name": "near-me", "Service": {"Service": "near", "Near": "_agent"}}
            assert dc1.http.post("/v1/query", json=query).is_success
            eventually(lambda: len(_execute(dc1, "near-me")["Nodes"]) == 2, 20, "both")
            for _ in range(4):
                first = _execute(client, "near-me")["Nodes"][0]["Node"]["Node"]
                assert first == "cli-dc1"
                assert _execute(dc1, "near-me")["Nodes"][0]["Node"]["Node"] == "srv-dc1"
                reply = client.dns("near-me.query.consul.")
                assert [r.address for rrset in reply.answer for r in rrset][0] == "10.5.0.2"
                reply = dc1.dns("near-me.query.consul.")
                assert [r.address for rrset in reply.answer for r in rrset][0] == "10.5.0.1"
        finally:
            client.close()
