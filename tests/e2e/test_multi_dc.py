"""Two datacenters federated over the WAN pool, as real agent processes.

dc-a and dc-b are one server each (127.0.0.81 and 127.0.0.82, Consul's standard ports on
their own addresses); dc-b joins dc-a's WAN pool with `-join-wan`. A client agent of dc-a
(127.0.0.83) reaches dc-b through its server; last, dc-c (127.0.0.84) joins over HTTP.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.seedcluster import FAST, SERVERS, Agent, SeedCluster, eventually

DC_A, DC_B, DC_C = "dc-a", "dc-b", "dc-c"
IP_A, IP_B, IP_CLIENT, IP_C = "127.0.0.81", "127.0.0.82", "127.0.0.83", "127.0.0.84"


def server_args(root: Path, name: str, ip: str, dc: str, *extra: str) -> list[str]:
    return [
        "-server",
        "-bootstrap-expect=1",
        f"-datacenter={dc}",
        f"-data-dir={root / name}",
        f"-node={name}",
        f"-bind={ip}",
        f"-client={ip}",
        FAST,
        *extra,
    ]


class Federation:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.agents: list[Agent] = []

    def start(self, name: str, ip: str, args: list[str]) -> Agent:
        agent = Agent(name, ip, args, self.root)
        self.agents.append(agent)
        return agent.start()

    def close(self) -> None:
        for agent in self.agents:
            agent.kill(signal.SIGKILL)


@pytest.fixture(scope="module")
def dcs() -> Iterator[tuple[Agent, Agent, Agent]]:
    with tempfile.TemporaryDirectory(prefix="gitkv-multidc-") as tmp:
        root = Path(tmp)
        fed = Federation(root)
        try:
            a = fed.start("srv-a", IP_A, server_args(root, "srv-a", IP_A, DC_A))
            b = fed.start(
                "srv-b", IP_B, server_args(root, "srv-b", IP_B, DC_B, f"-join-wan={IP_A}")
            )
            client = fed.start(
                "cli-a",
                IP_CLIENT,
                [
                    f"-datacenter={DC_A}",
                    f"-data-dir={root / 'cli-a'}",
                    "-node=cli-a",
                    f"-bind={IP_CLIENT}",
                    f"-client={IP_CLIENT}",
                    f"-join={IP_A}",
                ],
            )
            for agent in (a, b):
                eventually(agent.leader, 20, f"{agent.name} leader")
            yield a, b, client
        except BaseException:
            for agent in fed.agents:
                print(f"--- {agent.name}\n{agent.output()[-3000:]}")
            raise
        finally:
            fed.close()


def _get(agent: Agent, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{agent.url}{path}", params=params, timeout=10)


def test_datacenters_listed_on_both(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, client = dcs
    eventually(
        lambda: _get(a, "/v1/catalog/datacenters").json() == [DC_A, DC_B], 20, "dc-a sees dc-b"
    )
    eventually(
        lambda: _get(b, "/v1/catalog/datacenters").json() == [DC_B, DC_A], 20, "dc-b sees dc-a"
    )
    eventually(
        lambda: _get(client, "/v1/catalog/datacenters").json() == [DC_A, DC_B],
        20,
        "the client asks its server",
    )


def test_coordinate_datacenters_from_the_wan_pool(dcs: tuple[Agent, Agent, Agent]) -> None:
    """Each datacenter's servers with their WAN coordinates, by node name (Consul strips the
    WAN pool's `.<dc>`); a client agent asks its server."""

    def listed(agent: Agent) -> list[tuple[str, list[str]]]:
        maps = _get(agent, "/v1/coordinate/datacenters").json()
        assert all(
            m["AreaID"] == "wan" and len(m["Coordinates"][0]["Coord"]["Vec"]) == 8 for m in maps
        )
        return [(m["Datacenter"], [c["Node"] for c in m["Coordinates"]]) for m in maps]

    both = [(DC_A, ["srv-a"]), (DC_B, ["srv-b"])]
    for agent in dcs:
        eventually(lambda agent=agent: listed(agent) == both, 30, f"{agent.name} coordinates")


def test_wan_members_are_node_dot_dc(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, client = dcs

    def names(agent: Agent) -> set[str]:
        return {m["Name"] for m in _get(agent, "/v1/agent/members", wan="1").json()}

    for agent in (a, b):
        eventually(lambda ag=agent: names(ag) == {"srv-a.dc-a", "srv-b.dc-b"}, 20, "WAN members")
    wan = {m["Name"]: m for m in _get(a, "/v1/agent/members", wan="1").json()}
    assert wan["srv-b.dc-b"]["Port"] == 8302
    assert wan["srv-b.dc-b"]["Addr"] == IP_B
    assert wan["srv-b.dc-b"]["Tags"]["dc"] == DC_B
    assert wan["srv-b.dc-b"]["Status"] == 1
    # The LAN view is unchanged, and a client is in no WAN pool.
    eventually(
        lambda: {m["Name"] for m in _get(a, "/v1/agent/members").json()} == {"srv-a", "cli-a"},
        20,
        "LAN members",
    )
    assert _get(client, "/v1/agent/members", wan="1").json() == []


def _wait_federated(a: Agent, b: Agent) -> None:
    eventually(
        lambda: (
            DC_B in _get(a, "/v1/catalog/datacenters").json()
            and DC_A in _get(b, "/v1/catalog/datacenters").json()
        ),
        20,
        "federation",
    )


def test_kv_across_datacenters(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, _ = dcs
    _wait_federated(a, b)
    assert httpx.put(f"{a.url}/v1/kv/fed/one", content=b"from-a", timeout=10).json() is True
    got = httpx.get(f"{b.url}/v1/kv/fed/one", params={"dc": DC_A, "raw": ""}, timeout=10)
    assert got.status_code == 200 and got.content == b"from-a"
    # dc-b's own store does not have it.
    assert httpx.get(f"{b.url}/v1/kv/fed/one", timeout=10).status_code == 404

    wrote = httpx.put(f"{a.url}/v1/kv/fed/two", params={"dc": DC_B}, content=b"via-a", timeout=10)
    assert wrote.status_code == 200 and wrote.json() is True
    assert httpx.get(f"{b.url}/v1/kv/fed/two", params={"raw": ""}, timeout=10).content == b"via-a"
    assert httpx.get(f"{a.url}/v1/kv/fed/two", timeout=10).status_code == 404
    # Index headers come from the datacenter that answered.
    remote = httpx.get(f"{a.url}/v1/kv/fed/two", params={"dc": DC_B}, timeout=10)
    assert remote.status_code == 200 and "x-consul-index" in remote.headers


def test_catalog_of_other_datacenter(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, _ = dcs
    _wait_federated(a, b)
    register = {"Node": "ext-b", "Address": "10.9.9.9", "Service": {"Service": "billing"}}
    assert httpx.put(f"{b.url}/v1/catalog/register", json=register, timeout=10).json() is True
    services = _get(a, "/v1/catalog/services", dc=DC_B).json()
    assert "billing" in services and "consul" in services
    assert "billing" not in _get(a, "/v1/catalog/services").json()
    nodes = {n["Node"]: n for n in _get(a, "/v1/catalog/nodes", dc=DC_B).json()}
    assert nodes["ext-b"]["Datacenter"] == DC_B and "srv-a" not in nodes


def test_unknown_datacenter(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, client = dcs
    for agent in (a, b, client):
        answer = _get(agent, "/v1/kv/fed/one", dc="dc-nowhere")
        assert answer.status_code == 500
        assert answer.text == "No path to datacenter"


def test_client_reads_other_datacenter(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, client = dcs
    _wait_federated(a, b)
    assert httpx.put(f"{b.url}/v1/kv/fed/client", content=b"in-b", timeout=10).json() is True
    got = httpx.get(f"{client.url}/v1/kv/fed/client", params={"dc": DC_B, "raw": ""}, timeout=10)
    assert got.status_code == 200 and got.content == b"in-b"
    assert httpx.get(f"{client.url}/v1/kv/fed/client", timeout=10).status_code == 404


def test_user_event_fired_in_other_datacenter(dcs: tuple[Agent, Agent, Agent]) -> None:
    a, b, client = dcs
    _wait_federated(a, b)
    fired = httpx.put(
        f"{client.url}/v1/event/fire/fed-deploy", params={"dc": DC_B}, content=b"x", timeout=10
    )
    assert fired.status_code == 200, fired.text

    def seen(agent: Agent) -> bool:
        return any(e["Name"] == "fed-deploy" for e in _get(agent, "/v1/event/list").json())

    eventually(lambda: seen(b), 20, "the event reaches dc-b")
    assert not seen(a) and not seen(client)


def test_join_wan_over_http(dcs: tuple[Agent, Agent, Agent]) -> None:
    """Last of the tests on `dcs`: a third datacenter joins through `PUT /v1/agent/join/<a>?wan=1`."""
    a, b, client = dcs
    root = Path(a.log_path).parent
    c = Agent("srv-c", IP_C, server_args(root, "srv-c", IP_C, DC_C), root).start()
    try:
        eventually(c.leader, 20, "srv-c leader")
        joined = httpx.put(f"{c.url}/v1/agent/join/{IP_A}", params={"wan": "1"}, timeout=30)
        assert joined.status_code == 200, joined.text
        for agent in (a, b, c):
            eventually(
                lambda ag=agent: (
                    set(_get(ag, "/v1/catalog/datacenters").json()) == {DC_A, DC_B, DC_C}
                ),
                30,
                f"{agent.name} sees three datacenters",
            )
        assert _get(c, "/v1/catalog/datacenters").json()[0] == DC_C
        # A client is in no WAN pool: it cannot join one.
        refused = httpx.put(f"{client.url}/v1/agent/join/{IP_A}", params={"wan": "1"}, timeout=30)
        assert refused.status_code == 500
    finally:
        c.kill(signal.SIGKILL)


def test_servers_of_one_datacenter_flood_join_the_wan() -> None:
    """No -join-wan at all: the seed's three servers find each other on the LAN, and each
    WAN-joins the others (Consul's flood join), so the WAN pool has all three."""
    with SeedCluster(client=False) as cluster:
        expected = {f"{name}.shenzhen" for name in SERVERS}
        for agent in cluster.agents.values():
            eventually(
                lambda ag=agent: (
                    {
                        m["Name"]
                        for m in _get(ag, "/v1/agent/members", wan="1").json()
                        if m["Status"] == 1
                    }
                    == expected
                ),
                30,
                f"{agent.name}'s WAN pool",
            )
        assert _get(cluster.agents["node1"], "/v1/catalog/datacenters").json() == ["shenzhen"]
