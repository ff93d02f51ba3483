"""The WAN pool's pure decisions and the `?dc=` routing decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.gossip.coordinate import Coordinate
from agent.http.app import HTTPError, Request
from agent.http.forward import RemoteTarget, datacenter_target
from agent.wan import (
    coordinate_maps,
    flood_targets,
    known_datacenters,
    order_datacenters,
    rtt_by_dc,
    servers_by_dc,
    split_wan_name,
    wan_name,
    with_wan_port,
)

ALIVE, LEFT, FAILED = 1, 3, 4


@dataclass
class M:
    name: str
    addr: str
    tags: dict[str, str] = field(default_factory=dict)
    status: int = ALIVE
    port: int = 8302


def server(name: str, addr: str, dc: str, status: int = ALIVE, **tags: str) -> M:
    return M(name, addr, {"role": "consul", "dc": dc, "port": "8300", **tags}, status)


# ---------------------------------------------------------------------------- names


def test_wan_name_round_trip() -> None:
    assert wan_name("s1", "dc1") == "s1.dc1"
    assert split_wan_name("s1.dc1") == ("s1", "dc1")


def test_node_names_may_contain_dots() -> None:
    assert split_wan_name("web.example.com.dc-b") == ("web.example.com", "dc-b")


@pytest.mark.parametrize("name", ["s1", ".dc1", "s1.", ""])
def test_names_without_a_datacenter(name: str) -> None:
    assert split_wan_name(name) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("10.0.0.1", "10.0.0.1:8302"),
        ("10.0.0.1:9302", "10.0.0.1:9302"),
        ("host.example", "host.example:8302"),
        ("::1", "[::1]:8302"),
        ("[::1]", "[::1]:8302"),
        ("[::1]:7000", "[::1]:7000"),
    ],
)
def test_join_addresses_get_the_wan_port(given: str, expected: str) -> None:
    assert with_wan_port(given) == expected


def test_join_default_port_is_ours() -> None:
    assert with_wan_port("10.0.0.1", 9999) == "10.0.0.1:9999"


# ---------------------------------------------------------------------------- datacenters


def test_servers_by_dc_keeps_alive_servers_only() -> None:
    members = [
        server("b2.dc-b", "10.0.2.2", "dc-b"),
        server("b1.dc-b", "10.0.2.1", "dc-b"),
        server("b3.dc-b", "10.0.2.3", "dc-b", status=FAILED),
        server("a1.dc-a", "10.0.1.1", "dc-a", port="9300"),
        M("c1", "10.0.1.9", {"role": "node", "dc": "dc-a"}),
    ]
    found = servers_by_dc(members)
    assert [s.rpc_address for s in found["dc-b"]] == ["10.0.2.1:8300", "10.0.2.2:8300"]
    assert [s.rpc_address for s in found["dc-a"]] == ["10.0.1.1:9300"]


def test_a_datacenter_whose_servers_failed_is_still_known_but_has_no_server() -> None:
    members = [
        server("a1.dc-a", "10.0.1.1", "dc-a"),
        server("b1.dc-b", "10.0.2.1", "dc-b", status=FAILED),
        server("c1.dc-c", "10.0.3.1", "dc-c", status=LEFT),
    ]
    assert known_datacenters(members) == {"dc-a", "dc-b"}
    assert "dc-b" not in servers_by_dc(members)


def test_ours_first_then_by_name_without_coordinates() -> None:
    assert order_datacenters("dc-m", ["dc-z", "dc-a", "dc-m", "dc-b"]) == [
        "dc-m",
        "dc-a",
        "dc-b",
        "dc-z",
    ]


def test_ours_listed_even_when_the_pool_does_not_know_it_yet() -> None:
    assert order_datacenters("dc1", []) == ["dc1"]


def test_nearest_first_and_unknown_rtt_last() -> None:
    rtt = {"dc-z": 0.010, "dc-b": 0.200, "dc-m": 0.5}
    ordered = order_datacenters("dc-m", ["dc-a", "dc-b", "dc-z", "dc-m"], rtt)
    assert ordered == ["dc-m", "dc-z", "dc-b", "dc-a"]


def _coord(x: float) -> Coordinate:
    return Coordinate((x,) + (0.0,) * 7, 1.5, 0.0, 0.0)


def test_rtt_is_the_median_per_datacenter() -> None:
    members = [
        server("b1.dc-b", "1", "dc-b"),
        server("b2.dc-b", "2", "dc-b"),
        server("b3.dc-b", "3", "dc-b"),
        server("c1.dc-c", "4", "dc-c"),
        server("d1.dc-d", "5", "dc-d"),  # no coordinate yet
    ]
    peers = {
        "b1.dc-b": _coord(0.1),
        "b2.dc-b": _coord(0.3),
        "b3.dc-b": _coord(0.9),
        "c1.dc-c": _coord(0.05),
    }
    rtt = rtt_by_dc(_coord(0.0), peers, members)
    assert rtt == pytest.approx({"dc-b": 0.3, "dc-c": 0.05})
    assert rtt_by_dc(None, peers, members) == {}


def test_coordinate_maps_per_datacenter_as_consul_lists_them() -> None:
    members = [
        server("b2.dc-b", "2", "dc-b"),
        server("a1.dc-a", "1", "dc-a"),
        server("b1.dc-b", "1", "dc-b"),
        server("c1.dc-c", "4", "dc-c"),  # no coordinate yet: neither it nor dc-c is listed
        server("b3.dc-b", "3", "dc-b", status=LEFT),
        M("client.dc-a", "9", {"role": "node", "dc": "dc-a"}),
    ]
    mine, peers = _coord(0.0), {"b1.dc-b": _coord(0.1), "b2.dc-b": _coord(0.3)}
    peers["b3.dc-b"] = peers["client.dc-a"] = _coord(0.5)
    maps = coordinate_maps(members, "a1.dc-a", mine, peers)
    assert [(m["Datacenter"], m["AreaID"]) for m in maps] == [("dc-a", "wan"), ("dc-b", "wan")]
    assert [c["Node"] for c in maps[0]["Coordinates"]] == ["a1"]
    assert maps[0]["Coordinates"][0]["Coord"] == mine.api_dict()
    assert [c["Node"] for c in maps[1]["Coordinates"]] == ["b1", "b2"]


# ---------------------------------------------------------------------------- flood join


def test_flood_joins_lan_servers_missing_from_the_wan() -> None:
    lan = [
        server("s1", "10.0.0.1", "dc1", wan_join_port="8302"),
        server("s2", "10.0.0.2", "dc1", wan_join_port="8302"),
        server("s3", "10.0.0.3", "dc1", wan_join_port="9302"),
        server("s4", "10.0.0.4", "dc1", status=FAILED),
        server("s5", "10.0.0.5", "dc1", wan_join_port="-1"),
        server("x1", "10.9.0.1", "other"),
        M("c1", "10.0.0.9", {"role": "node", "dc": "dc1"}),
    ]
    wan = [server("s1.dc1", "10.0.0.1", "dc1"), server("s2.dc1", "10.0.0.2", "dc1")]
    assert flood_targets(lan, wan, "dc1", "s1") == ["10.0.0.3:9302"]


def test_flood_rejoins_a_server_that_left_the_wan() -> None:
    lan = [server("s2", "10.0.0.2", "dc1")]
    wan = [server("s2.dc1", "10.0.0.2", "dc1", status=LEFT)]
    assert flood_targets(lan, wan, "dc1", "s1") == ["10.0.0.2:8302"]


def test_flood_never_targets_our_own_wan_address() -> None:
    # Two servers of a test cluster on one IP: they advertise the same WAN port.
    lan = [server("s1", "127.0.0.1", "dc1"), server("s2", "127.0.0.1", "dc1")]
    assert flood_targets(lan, [], "dc1", "s1", "127.0.0.1:8302") == []


# ---------------------------------------------------------------------------- ?dc= routing


class FakePool:
    def __init__(self, servers: dict[str, str | None]) -> None:
        self.servers = servers

    def knows(self, dc: str) -> bool:
        return dc in self.servers

    def server_for(self, dc: str) -> str | None:
        return self.servers.get(dc)


class Host:
    """A forwarding host twin: a server (with a WAN pool) or a client agent."""

    node_name = "node1"
    rpc_pool: Any = None

    def __init__(self, server: bool, pool: Any, local_server: str | None) -> None:
        self.consensus = object() if server else None
        self._pool = pool
        self._server = local_server

    def pick_server(self) -> str | None:
        return self._server

    def wan(self) -> Any:
        return self._pool


def fake_agent(*, server: bool, pool: Any = None, local_server: str | None = "10.0.0.1:8300"):
    return Host(server, pool, local_server)


def req(path: str) -> Request:
    scope = {"method": "GET", "path": path, "query_string": b"", "headers": []}
    return Request(scope, _no_body)


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_server_sends_the_request_to_the_other_datacenter() -> None:
    agent = fake_agent(server=True, pool=FakePool({"dc-b": "10.0.2.1:8300"}))
    target = datacenter_target(agent, req("/v1/kv/x"), "dc-b")
    assert target == RemoteTarget("10.0.2.1:8300", True)


def test_a_client_sends_it_to_a_server_of_its_own() -> None:
    agent = fake_agent(server=False)
    assert datacenter_target(agent, req("/v1/kv/x"), "dc-b") == RemoteTarget("10.0.0.1:8300", False)


def test_a_client_without_servers() -> None:
    agent = fake_agent(server=False, local_server=None)
    with pytest.raises(HTTPError, match="No known Consul servers"):
        datacenter_target(agent, req("/v1/kv/x"), "dc-b")


@pytest.mark.parametrize(
    "pool",
    [None, FakePool({}), FakePool({"dc-b": None})],
    ids=["no-wan-pool", "unknown-dc", "no-alive-server"],
)
def test_no_path_to_datacenter(pool: Any) -> None:
    agent = fake_agent(server=True, pool=pool)
    with pytest.raises(HTTPError) as caught:
        datacenter_target(agent, req("/v1/catalog/services"), "dc-b")
    assert (caught.value.status, caught.value.message) == (500, "No path to datacenter")


def test_agent_endpoints_answer_here_for_a_known_datacenter() -> None:
    agent = fake_agent(server=True, pool=FakePool({"dc-b": "10.0.2.1:8300"}))
    assert datacenter_target(agent, req("/v1/agent/self"), "dc-b") is None
    with pytest.raises(HTTPError, match="No path to datacenter"):
        datacenter_target(agent, req("/v1/agent/self"), "dc-x")


def test_agent_endpoints_of_a_client_keep_refusing_other_datacenters() -> None:
    with pytest.raises(HTTPError, match="No path to datacenter"):
        datacenter_target(fake_agent(server=False), req("/v1/agent/members"), "dc-b")


def test_a_user_event_is_fired_in_the_named_datacenter() -> None:
    agent = fake_agent(server=True, pool=FakePool({"dc-b": "10.0.2.1:8300"}))
    target = datacenter_target(agent, req("/v1/event/fire/deploy"), "dc-b")
    assert target == RemoteTarget("10.0.2.1:8300", True)
    assert datacenter_target(agent, req("/v1/event/list"), "dc-b") is None
