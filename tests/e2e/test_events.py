"""User events on the seed's 3 servers + 1 client: gossip reaches every agent, each agent keeps
what its filters match, and `/v1/event/list` long-polls on the event index."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import consul
import httpx
import pytest

from tests.e2e.agentproc import AgentProc
from tests.e2e.seedcluster import SeedCluster, eventually
from tests.e2e.test_acl_matrix import agent_args as acl_agent_args

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster() -> Iterator[SeedCluster]:
    with SeedCluster() as c:
        yield c


def _ids(agent_url: str, name: str | None = None) -> list[str]:
    params = {"name": name} if name else {}
    answer = httpx.get(f"{agent_url}/v1/event/list", params=params, timeout=5)
    answer.raise_for_status()
    return [e["ID"] for e in answer.json()]


def _fire(agent_url: str, name: str, body: bytes = b"", **params: str) -> dict:
    answer = httpx.put(f"{agent_url}/v1/event/fire/{name}", params=params, content=body, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _everywhere(cluster: SeedCluster, event_id: str, name: str | None = None) -> None:
    for agent in cluster.agents.values():
        eventually(lambda a=agent: event_id in _ids(a.url, name), 20, f"event on {agent.name}")


def test_event_fired_on_the_client_reaches_every_agent(cluster: SeedCluster) -> None:
    client = consul.Consul(host="127.0.0.14", port=8500)
    fired = client.event.fire("deploy", "v1.2.3")
    event_id = fired["ID"]
    assert fired["Name"] == "deploy" and fired["LTime"] == 0
    _everywhere(cluster, event_id, "deploy")
    seen = {}
    for agent in cluster.agents.values():
        index, events = consul.Consul(host=agent.ip, port=8500).event.list(name="deploy")
        mine = next(e for e in events if e["ID"] == event_id)
        assert mine["Payload"] == b"v1.2.3"  # py-consul decodes the base64
        assert mine["Name"] == "deploy" and mine["Version"] == 1
        seen[agent.name] = mine["LTime"]
        assert int(index) > 0
    assert len(set(seen.values())) == 1  # one Lamport time, whoever received it


def test_event_fired_on_a_server_reaches_every_agent(cluster: SeedCluster) -> None:
    fired = _fire(cluster.agents["node2"].url, "restart", b"now")
    assert fired["LTime"] == 0 and fired["NodeFilter"] == ""
    _everywhere(cluster, fired["ID"])


def test_node_filter_keeps_the_event_on_matching_agents_only(cluster: SeedCluster) -> None:
    fired = _fire(cluster.agents["node1"].url, "only-node3", node="^node3$")
    marker = _fire(cluster.agents["node1"].url, "marker-node")
    _everywhere(cluster, marker["ID"])
    eventually(lambda: fired["ID"] in _ids(cluster.agents["node3"].url), 20, "kept on node3")
    for name in ("node1", "node2", "node4"):
        assert fired["ID"] not in _ids(cluster.agents[name].url)


def test_service_and_tag_filters_match_local_services(cluster: SeedCluster) -> None:
    node4 = cluster.agents["node4"]
    registered = httpx.put(
        f"{node4.url}/v1/agent/service/register",
        json={"Name": "web", "ID": "web-1", "Tags": ["canary", "v2"], "Port": 8080},
        timeout=5,
    )
    assert registered.status_code == 200, registered.text
    tagged = _fire(cluster.agents["node2"].url, "web-canary", service="^web", tag="canary")
    wrong_tag = _fire(cluster.agents["node2"].url, "web-stable", service="^web", tag="stable")
    any_web = _fire(cluster.agents["node2"].url, "web-any", service="web")
    marker = _fire(cluster.agents["node2"].url, "marker-service")
    _everywhere(cluster, marker["ID"])
    eventually(lambda: any_web["ID"] in _ids(node4.url), 20, "service event on node4")
    eventually(lambda: tagged["ID"] in _ids(node4.url), 20, "tagged event on node4")
    assert wrong_tag["ID"] not in _ids(node4.url)
    for name in ("node1", "node2", "node3"):
        ids = _ids(cluster.agents[name].url)
        assert not {tagged["ID"], wrong_tag["ID"], any_web["ID"]} & set(ids)


def test_bad_fire_requests_get_consul_errors(cluster: SeedCluster) -> None:
    url = cluster.agents["node4"].url
    answer = httpx.put(f"{url}/v1/event/fire/x", params={"tag": "a"}, timeout=5)
    assert (answer.status_code, answer.text) == (
        500,
        "Cannot provide tag filter without service filter",
    )
    answer = httpx.put(f"{url}/v1/event/fire/x", params={"node": "("}, timeout=5)
    assert answer.status_code == 500 and answer.text.startswith("Invalid node filter")
    answer = httpx.put(f"{url}/v1/event/fire/x", content=b"p" * 600, timeout=5)
    assert answer.status_code == 500 and "exceeds configured limit of 512 bytes" in answer.text
    assert httpx.put(f"{url}/v1/event/fire/", timeout=5).text == "Missing name"
    assert httpx.get(f"{url}/v1/event/fire/x", timeout=5).status_code == 405
    answer = httpx.get(f"{url}/v1/event/list", params={"filter": "Name =="}, timeout=5)
    assert answer.status_code == 400


def test_blocking_list_wakes_on_a_new_event(cluster: SeedCluster) -> None:
    node3 = cluster.agents["node3"]
    first = httpx.get(f"{node3.url}/v1/event/list", params={"name": "wake"}, timeout=5)
    index = first.headers["X-Consul-Index"]
    result: dict[str, httpx.Response] = {}

    def poll() -> None:
        result["answer"] = httpx.get(
            f"{node3.url}/v1/event/list",
            params={"name": "wake", "index": index, "wait": "60s"},
            timeout=90,
        )

    poller = threading.Thread(target=poll)
    poller.start()
    fired = _fire(cluster.agents["node4"].url, "wake", b"up")
    poller.join(80)
    assert not poller.is_alive()
    answer = result["answer"]
    assert [e["ID"] for e in answer.json()][-1] == fired["ID"]
    assert answer.headers["X-Consul-Index"] != index


def test_blocking_list_with_the_current_index_times_out_unchanged(cluster: SeedCluster) -> None:
    url = cluster.agents["node1"].url
    first = httpx.get(f"{url}/v1/event/list", params={"name": "never"}, timeout=5)
    assert first.json() == [] and first.headers["X-Consul-Index"] == "1"
    again = httpx.get(
        f"{url}/v1/event/list", params={"name": "never", "index": "1", "wait": "1s"}, timeout=10
    )
    assert again.status_code == 200 and again.json() == []
    assert again.headers["X-Consul-Index"] == "1"


def test_list_filter_expression(cluster: SeedCluster) -> None:
    url = cluster.agents["node2"].url
    fired = _fire(url, "filtered", b"x")
    eventually(lambda: fired["ID"] in _ids(url), 20, "event on node2")
    answer = httpx.get(f"{url}/v1/event/list", params={"filter": 'Name == "filtered"'}, timeout=5)
    assert {e["Name"] for e in answer.json()} == {"filtered"}


def test_event_acls_on_a_single_agent(tmp_path: Path) -> None:
    """event:write to fire, event:read filters the list (a separate agent, ACLs on)."""
    mgmt = str(uuid.uuid4())
    agent = AgentProc(
        *acl_agent_args(tmp_path, initial_management=mgmt, ip="127.0.0.21"), ip="127.0.0.21"
    ).start()
    try:
        with agent.client() as http:
            boss = {"X-Consul-Token": mgmt}
            rules = 'event_prefix "dep" { policy = "write" }'
            r = http.put("/v1/acl/policy", json={"Name": "deployer", "Rules": rules}, headers=boss)
            assert r.status_code == 200, r.text
            r = http.put("/v1/acl/token", json={"Policies": [{"Name": "deployer"}]}, headers=boss)
            deployer = {"X-Consul-Token": r.json()["SecretID"]}

            assert http.put("/v1/event/fire/deploy", headers=deployer).status_code == 200
            assert http.put("/v1/event/fire/other", headers=deployer).status_code == 403
            assert http.put("/v1/event/fire/deploy").status_code == 403  # anonymous
            assert http.put("/v1/event/fire/other", headers=boss).status_code == 200

            def names(headers: dict[str, str]) -> set[str]:
                return {e["Name"] for e in http.get("/v1/event/list", headers=headers).json()}

            eventually(lambda: names(boss) == {"deploy", "other"}, 20, "both events kept")
            assert names(deployer) == {"deploy"}
            assert names({}) == set()
    finally:
        agent.cleanup()
