"""agent/http/agent_ep.py on in-memory twins: /v1/agent/self and members from identity alone
(no gossip pool), a service registered in a real LocalState and synced to the catalog through
the writer, and the refusals that change nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agent.config import load_config
from agent.http import agent_ep
from agent.http.app import HTTPError, Response
from agent.http.deps import HTTPDeps
from agent.local import LocalState
from tests.harness import areas
from tests.harness.twins import LocalHostTwin, MemoryWriter, http_deps


def dev_deps() -> HTTPDeps:
    deps = http_deps(load_config(["-dev"], environ={}))
    assert isinstance(deps.writer, MemoryWriter)
    host = LocalHostTwin(config=deps.identity.config, writer=deps.writer, store=deps.store)
    return dataclasses.replace(deps, local=LocalState(host))


def call(deps: HTTPDeps, method: str, path: str, query: bytes = b"", body: bytes = b"") -> Response:
    return areas.call(agent_ep.register, deps, method, path, query, body)


def test_self_and_members_without_a_gossip_pool() -> None:
    deps = dev_deps()
    me = json.loads(call(deps, "GET", "/v1/agent/self").body)
    assert me["Config"]["Datacenter"] == "dc1"
    assert me["Config"]["NodeID"] == deps.identity.node_id
    assert me["Member"]["Name"] == deps.identity.node_name
    assert me["Member"]["Tags"]["role"] == "consul"
    assert me["Stats"]["consul"]["leader_addr"] == deps.leadership.leader_address
    assert me["Stats"]["consul"]["known_datacenters"] == "1"
    members = json.loads(call(deps, "GET", "/v1/agent/members").body)
    assert [m["Name"] for m in members] == [deps.identity.node_name]
    wan = json.loads(call(deps, "GET", "/v1/agent/members", b"wan=1").body)
    assert [m["Name"] for m in wan] == [f"{deps.identity.node_name}.dc1"]


def test_register_syncs_to_the_catalog_and_counts_in_metrics() -> None:
    deps = dev_deps()
    body = {"Name": "web", "Port": 80, "Check": {"TTL": "10s"}}
    answer = call(deps, "PUT", "/v1/agent/service/register", body=json.dumps(body).encode())
    assert answer.status == 200
    assert set(deps.local.services) == {"web"}
    assert isinstance(deps.writer, MemoryWriter)
    assert "register" in deps.writer.types()
    node = deps.identity.node_name
    assert deps.store.services[node]["web"].Port == 80
    listed = json.loads(call(deps, "GET", "/v1/agent/services").body)
    assert listed["web"]["Service"] == "web"
    metrics = json.loads(call(deps, "GET", "/v1/agent/metrics").body)
    gauges = {g["Name"]: g["Value"] for g in metrics["Gauges"]}
    assert gauges["consul.agent.services"] == 1


def test_refusals_change_nothing() -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as unknown:
        call(deps, "PUT", "/v1/agent/service/deregister/nope")
    assert unknown.value.status == 404
    with pytest.raises(HTTPError) as bad_status:
        call(deps, "PUT", "/v1/agent/check/update/c1", body=b'{"Status": "sideways"}')
    assert (bad_status.value.status, bad_status.value.message) == (
        400,
        "Invalid check status: 'sideways'",
    )
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []
