"""agent/queries/execute.py and runner.py: Consul's prepared-query execution rules (filters,
source node, distance sort, limit, failover order) and the runner around them on a store."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from agent.acl.resolve import ACLNotFound
from agent.http.catalog import build_register
from agent.queries.execute import (
    Target,
    failover_targets,
    healthy,
    limit,
    response,
    select_nodes,
    sort_near,
    source_node,
    to_coordinate,
)
from agent.queries.runner import Caller, QueryRunner, RemoteQueryFailed
from agent.state.commands import CoordinateUpdate
from tests.harness.areas import dev_deps
from tests.unit.test_http_acl_area import acl_deps
from tests.unit.test_http_acl_area import call as acl_call


def csn(node: str, tags=(), statuses=(), meta=None, smeta=None, service="web") -> dict:
    return {
        "Node": {"Node": node, "Address": f"10.0.0.{len(node)}", "Meta": meta or {}},
        "Service": {"Service": service, "Tags": list(tags), "Meta": smeta or {}},
        "Checks": [{"CheckID": f"c{i}", "Status": status} for i, status in enumerate(statuses)],
    }


def names(nodes: list[dict]) -> list[str]:
    return [n["Node"]["Node"] for n in nodes]


def svc(**fields) -> dict:
    base = {
        "Service": "web",
        "Failover": {"NearestN": 0, "Datacenters": [], "Targets": []},
        "IgnoreCheckIDs": [],
        "OnlyPassing": False,
        "Near": "",
        "Tags": [],
        "NodeMeta": {},
        "ServiceMeta": {},
        "Connect": False,
        "Peer": "",
        "SamenessGroup": "",
    }
    base.update(fields)
    return base


def test_health_drops_critical_and_warning_only_when_only_passing() -> None:
    nodes = [
        csn("ok", statuses=["passing"]),
        csn("warn", statuses=["passing", "warning"]),
        csn("bad", statuses=["passing", "critical"]),
        csn("none"),
    ]
    assert names(select_nodes(svc(), nodes)) == ["ok", "warn", "none"]
    assert names(select_nodes(svc(OnlyPassing=True), nodes)) == ["ok", "none"]


def test_ignored_checks_do_not_count() -> None:
    nodes = [csn("bad", statuses=["passing", "critical"])]
    assert names(select_nodes(svc(IgnoreCheckIDs=["c1"]), nodes)) == ["bad"]
    assert names(select_nodes(svc(IgnoreCheckIDs=["c0"]), nodes)) == []
    assert not healthy(nodes[0], False, frozenset({"c0"}))


def test_tags_required_and_forbidden_without_case() -> None:
    nodes = [
        csn("a", tags=["Primary", "v1"]),
        csn("b", tags=["primary", "v2"]),
        csn("c", tags=["secondary"]),
    ]
    assert names(select_nodes(svc(Tags=["PRIMARY"]), nodes)) == ["a", "b"]
    assert names(select_nodes(svc(Tags=["primary", "!V1"]), nodes)) == ["b"]
    assert names(select_nodes(svc(Tags=["!primary"]), nodes)) == ["c"]


def test_node_and_service_meta_must_all_match() -> None:
    nodes = [
        csn("a", meta={"rack": "r1", "env": "prod"}, smeta={"version": "2"}),
        csn("b", meta={"rack": "r2", "env": "prod"}, smeta={"version": "1"}),
        csn("c"),
    ]
    assert names(select_nodes(svc(NodeMeta={"env": "prod"}), nodes)) == ["a", "b"]
    assert names(select_nodes(svc(NodeMeta={"env": "prod", "rack": "r2"}), nodes)) == ["b"]
    assert names(select_nodes(svc(ServiceMeta={"version": "2"}), nodes)) == ["a"]
    assert names(select_nodes(svc(NodeMeta={"env": ""}), nodes)) == []


def test_source_node_from_near_agent_and_ip() -> None:
    def at(ip: str) -> str | None:
        return {"10.0.0.9": "n9"}.get(ip)

    assert source_node("", "", "me", "", at) == ""
    assert source_node("", "fixed", "me", "", at) == "fixed"
    assert source_node("asked", "fixed", "me", "", at) == "asked"  # the request's wins
    assert source_node("", "_agent", "me", "", at) == "me"
    assert source_node("_agent", "", "me", "", at) == "me"
    assert source_node("", "_ip", "me", "10.0.0.9", at) == "n9"
    assert source_node("", "_ip", "me", "10.0.0.8", at) == ""  # no node there: no sort
    assert source_node("", "_ip", "me", "", at) == ""


def _coord(x: float) -> dict:
    return {"Vec": [x] + [0.0] * 7, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05}


def test_sort_near_by_rtt_missing_coordinates_last_source_first() -> None:
    coords = {n: to_coordinate(_coord(x)) for n, x in (("src", 0.0), ("a", 0.3), ("b", 0.1))}
    nodes = [csn("nocoord"), csn("a"), csn("b"), csn("src")]
    assert names(sort_near(nodes, "src", coords.get)) == ["src", "b", "a", "nocoord"]
    # The source without a coordinate: order kept, the source still moved to the front.
    assert names(sort_near(nodes, "nocoord", {}.get)) == ["nocoord", "a", "b", "src"]
    assert names(sort_near(nodes, "SRC", {}.get))[0] == "src"  # any case, as EqualFold
    assert names(sort_near(nodes, "", coords.get)) == names(nodes)
    # Only the first ten are searched for the source node.
    many = [csn(f"n{i:02}") for i in range(12)]
    assert names(sort_near(many, "n11", {}.get)) == names(many)
    assert names(sort_near(many, "n09", {}.get))[0] == "n09"


def test_limit() -> None:
    nodes = [csn("a"), csn("b"), csn("c")]
    assert names(limit(nodes, 2)) == ["a", "b"]
    assert names(limit(nodes, 0)) == ["a", "b", "c"]
    assert names(limit(nodes, -1)) == ["a", "b", "c"]


def test_failover_order() -> None:
    nearest = ["dc2", "dc3", "dc4"]
    assert failover_targets({"NearestN": 2}, nearest) == [Target("dc2"), Target("dc3")]
    assert failover_targets({"NearestN": 1, "Datacenters": ["dc4", "dc2", "bogus"]}, nearest) == [
        Target("dc2"),
        Target("dc4"),
    ]
    assert failover_targets({"NearestN": 9}, nearest) == [Target(dc) for dc in nearest]
    assert failover_targets({}, nearest) == []
    # Targets replace Datacenters; unknown datacenters are skipped, peers always kept.
    targets = [{"Datacenter": "dc9", "Peer": ""}, {"Datacenter": "", "Peer": "p1"}]
    assert failover_targets({"Targets": targets, "Datacenters": ["dc3"]}, nearest) == [
        Target(peer="p1")
    ]
    targets = [{"Datacenter": "dc3", "Peer": ""}, {"Datacenter": "dc2", "Peer": ""}]
    assert failover_targets({"NearestN": 1, "Targets": targets}, nearest) == [
        Target("dc2"),
        Target("dc3"),
    ]


def test_response_shape() -> None:
    query = {"Service": svc(), "DNS": {"TTL": "10s"}}
    assert response(query, [], "dc1", 2) == {
        "Service": "web",
        "Nodes": [],
        "DNS": {"TTL": "10s"},
        "Datacenter": "dc1",
        "PeerName": "",
        "Failovers": 2,
    }


# --------------------------------------------------------------------------- the runner


class FakeFederation:
    def __init__(self, answers: dict[str, dict | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, dict]] = []

    def other_datacenters(self) -> list[str]:
        return list(self.answers)

    async def execute_remote(self, datacenter: str, args: dict) -> dict:
        self.asked.append((datacenter, args))
        answer = self.answers[datacenter]
        if isinstance(answer, Exception):
            raise answer
        return answer


_WRITERS: dict[int, object] = {}


def runner_writer(runner: QueryRunner):
    return _WRITERS[id(runner)]


def _runner(statuses: dict[str, str], federation=None) -> QueryRunner:
    deps = dev_deps()
    for node, status in statuses.items():
        body = {
            "Node": node,
            "Address": f"10.1.0.{len(node)}",
            "Service": {"Service": "web", "Port": 80, "Tags": ["v1"]},
            "Check": {"CheckID": "alive", "Name": "alive", "Status": status, "ServiceID": "web"},
        }
        asyncio.run(deps.writer.write(build_register(body, "dc1", [])))
    runner = QueryRunner(deps.store, None, "dc1", federation, random.Random(7))
    _WRITERS[id(runner)] = deps.writer
    return runner


def _query(**service) -> dict:
    return {"ID": "q1", "Name": "web", "Token": "", "Service": svc(**service), "DNS": {"TTL": ""}}


def test_runner_answers_locally_without_failover() -> None:
    fed = FakeFederation({"dc2": {"Nodes": [csn("far")], "Datacenter": "dc2"}})
    runner = _runner({"web1": "passing", "web2": "critical"}, fed)
    result = asyncio.run(runner.execute(_query(Failover={"NearestN": 1}), Caller()))
    assert names(result["Nodes"]) == ["web1"]
    assert (result["Datacenter"], result["Failovers"], fed.asked) == ("dc1", 0, [])
    assert result["Nodes"][0]["Service"]["Port"] == 80  # the health endpoint's rendering


def test_runner_fails_over_in_order_and_counts() -> None:
    fed = FakeFederation(
        {
            "dc2": RemoteQueryFailed("No path to datacenter"),
            "dc3": {"Service": "web", "Nodes": [], "Datacenter": "dc3", "DNS": {"TTL": ""}},
            "dc4": {"Service": "web", "Nodes": [csn("far")], "Datacenter": "dc4", "DNS": {}},
            "dc5": {"Service": "web", "Nodes": [csn("never")], "Datacenter": "dc5"},
        }
    )
    runner = _runner({"web1": "critical"}, fed)
    query = _query(Failover={"NearestN": 3, "Datacenters": ["dc5"]})
    result = asyncio.run(runner.execute(query, Caller(limit=2, token="t")))
    assert [dc for dc, _ in fed.asked] == ["dc2", "dc3", "dc4"]
    assert (names(result["Nodes"]), result["Datacenter"], result["Failovers"]) == (
        ["far"],
        "dc4",
        3,
    )
    sent = fed.asked[0][1]
    assert (sent["Query"], sent["Limit"], sent["Token"]) == (query, 2, "t")


def test_runner_filters_limit_and_remote_side() -> None:
    runner = _runner({"web1": "passing", "web2": "passing", "web3": "warning"})
    result = asyncio.run(runner.execute(_query(OnlyPassing=True), Caller(limit=1)))
    assert len(result["Nodes"]) == 1 and names(result["Nodes"])[0] in ("web1", "web2")
    assert asyncio.run(runner.execute(_query(Tags=["!v1"]), Caller()))["Nodes"] == []
    remote = runner.execute_remote({"Query": _query(Service="WEB"), "Limit": 2})
    assert (len(remote["Nodes"]), remote["Datacenter"]) == (2, "dc1")  # case ignored
    with pytest.raises(RemoteQueryFailed):
        runner.execute_remote({"Query": {"Service": "web"}})


def test_runner_sorts_near_the_agent() -> None:
    runner = _runner({"web1": "passing", "web2": "passing", "web3": "passing"})
    coords = [
        CoordinateUpdate(Node=n, Segment="", Coord=_coord(x))
        for n, x in (("web1", 0.5), ("web2", 0.0), ("web3", 0.1))
    ]
    runner.store.set_coordinates(runner.store.last_index + 1, coords)
    for _ in range(5):
        result = asyncio.run(runner.execute(_query(Near="_agent"), Caller(agent_node="web2")))
        assert names(result["Nodes"]) == ["web2", "web3", "web1"]
    result = asyncio.run(runner.execute(_query(), Caller(near="web1")))
    assert names(result["Nodes"]) == ["web1", "web3", "web2"]


# --------------------------------------------------------------------------- ACLs


def test_results_filtered_with_the_query_token_else_the_callers() -> None:
    deps = acl_deps()
    root = json.loads(acl_call(deps, "PUT", "/v1/acl/bootstrap").body)["SecretID"]
    rules = 'node_prefix "" { policy = "read" } service "web" { policy = "read" }'
    policy = json.dumps({"Name": "web-reader", "Rules": rules}).encode()
    acl_call(deps, "PUT", "/v1/acl/policy", policy, root)
    token = json.dumps({"Policies": [{"Name": "web-reader"}]}).encode()
    reader = json.loads(acl_call(deps, "PUT", "/v1/acl/token", token, root).body)["SecretID"]
    for service in ("web", "api"):
        body = {"Node": f"{service}-node", "Address": "10.0.0.1", "Service": {"Service": service}}
        asyncio.run(deps.writer.write(build_register(body, "dc1", [])))
    runner = QueryRunner(deps.store, deps.acl, "dc1", None, random.Random(1))

    def run(service: str, caller_token: str, stored: str = "") -> list[str]:
        query = {**_query(Service=service), "Token": stored}
        return names(asyncio.run(runner.execute(query, Caller(token=caller_token)))["Nodes"])

    assert run("web", reader) == ["web-node"]
    assert run("api", reader) == []  # no service:read on api
    assert run("web", "") == []  # anonymous under default deny
    assert run("api", "", stored=root) == ["api-node"]  # the query's own token wins
    assert run("api", root, stored=reader) == []
    with pytest.raises(ACLNotFound):
        run("web", "no-such-secret")

    def flagged(service: str, caller_token: str) -> bool:
        result = asyncio.run(runner.execute(_query(Service=service), Caller(token=caller_token)))
        return result["ResultsFilteredByACLs"]

    assert (flagged("api", reader), flagged("web", reader)) == (True, False)
    assert flagged("web", "") is False  # never told to a caller without a token


def test_cached_lookup_follows_the_services_index() -> None:
    runner = _runner({"web1": "passing", "web2": "passing"})
    assert sorted(names(asyncio.run(runner.execute(_query(), Caller()))["Nodes"])) == [
        "web1",
        "web2",
    ]
    body = {
        "Node": "web2",
        "Address": "10.1.0.4",
        "Service": {"Service": "web", "Port": 80, "Tags": ["v1"]},
        "Check": {"CheckID": "alive", "Name": "alive", "Status": "critical", "ServiceID": "web"},
    }
    asyncio.run(runner_writer(runner).write(build_register(body, "dc1", [])))
    assert names(asyncio.run(runner.execute(_query(), Caller()))["Nodes"]) == ["web1"]


def test_a_peer_target_answers_nothing_and_names_the_peer() -> None:
    fed = FakeFederation({"dc2": {"Service": "web", "Nodes": [], "Datacenter": "dc2"}})
    runner = _runner({"web1": "critical"}, fed)
    targets = [{"Datacenter": "dc2", "Peer": ""}, {"Datacenter": "", "Peer": "east"}]
    result = asyncio.run(runner.execute(_query(Failover={"Targets": targets}), Caller()))
    assert (result["Nodes"], result["Failovers"]) == ([], 2)
    assert (result["Datacenter"], result["PeerName"]) == ("", "east")
