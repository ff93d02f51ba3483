"""`/v1/agent/metrics?format=prometheus` from a real agent, read with prometheus_client's own
parser: the output must parse, and carry the figures operators watch."""

from __future__ import annotations

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.agentproc import AgentProc

pytestmark = pytest.mark.timeout(60)


def _scrape(agent: AgentProc) -> dict[str, Metric]:
    with agent.client() as http:
        answer = http.get("/v1/agent/metrics", params={"format": "prometheus"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(answer.text))
    by_name = {f.name: f for f in families}
    assert len(by_name) == len(families), "a metric family is declared twice"
    return by_name


def _traffic(agent: AgentProc) -> None:
    with agent.client() as http:
        for i in range(20):
            assert http.put(f"/v1/kv/metrics/k{i}", content=b"v").json() is True
            assert http.get(f"/v1/kv/metrics/k{i}").status_code == 200
        assert http.delete("/v1/kv/metrics", params={"recurse": ""}).status_code == 200
        assert http.get("/v1/catalog/nodes").status_code == 200


def _samples(family: Metric) -> dict[str, float]:
    return {s.name: s.value for s in family.samples}


def test_prometheus_output_parses_and_has_the_watched_figures(dev_agent: AgentProc) -> None:
    _traffic(dev_agent)
    families = _scrape(dev_agent)

    # Raft: commit time (a summary in ms) and leadership changes (a counter).
    commit = families["consul_raft_commitTime"]
    assert commit.type == "summary"
    assert _samples(commit)["consul_raft_commitTime_count"] >= 20
    leader = families["consul_raft_state_leader"]
    assert leader.type == "counter"
    assert sum(s.value for s in leader.samples) >= 1

    # KV apply time, per write.
    apply = _samples(families["consul_kvs_apply"])
    assert apply["consul_kvs_apply_count"] >= 21  # 20 puts + 1 recursive delete

    # HTTP latency by endpoint (method and route in the name, as Consul's).
    http = {n: f for n, f in families.items() if n.startswith("consul_http_")}
    assert "consul_http_PUT_v1_kv__" in http and "consul_http_GET_v1_kv__" in http
    assert _samples(http["consul_http_GET_v1_kv__"])["consul_http_GET_v1_kv___count"] >= 20
    assert all(f.type == "summary" for f in http.values())

    # Gossip members by status.
    members = families["consul_serf_lan_members"]
    by_status = {s.labels["status"]: s.value for s in members.samples}
    assert by_status["alive"] == 1
    assert {"alive", "failed", "left"} <= set(by_status)

    # Runtime: tasks (Go's goroutines) and memory.
    assert families["consul_runtime_num_goroutines"].samples[0].value > 0
    assert families["consul_runtime_alloc_bytes"].samples[0].value > 0


def test_counters_only_grow_between_scrapes(dev_agent: AgentProc) -> None:
    _traffic(dev_agent)
    before = _samples(_scrape(dev_agent)["consul_kvs_apply"])["consul_kvs_apply_count"]
    _traffic(dev_agent)
    after = _samples(_scrape(dev_agent)["consul_kvs_apply"])["consul_kvs_apply_count"]
    assert after >= before + 21
