"""Autopilot as HashiCorp's Go client reads and writes it (api/operator_autopilot.go and its
tests): the configuration is replaced whole by a PUT (the client sends every field, its nil
durations as null), `?cas=` compares ModifyIndex, and `/state` is `api.AutopilotState`."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.conftest import dev_agent_args

# What the Go client puts for AutopilotConfiguration{CleanupDeadServers: false}.
GO_BODY = {
    "CleanupDeadServers": False,
    "LastContactThreshold": None,
    "MaxTrailingLogs": 0,
    "MinQuorum": 0,
    "ServerStabilizationTime": None,
    "RedundancyZoneTag": "",
    "DisableUpgradeMigration": False,
    "UpgradeVersionTag": "",
    "CreateIndex": 0,
    "ModifyIndex": 0,
}
PATH = "/v1/operator/autopilot/configuration"


@pytest.fixture
def http(dev_agent: AgentProc):
    with dev_agent.client() as client:
        yield client


def test_get_set_and_cas(http: httpx.Client) -> None:
    config = http.get(PATH).json()
    assert config["CleanupDeadServers"] is True
    assert (config["LastContactThreshold"], config["ServerStabilizationTime"]) == ("200ms", "10s")
    assert http.put(PATH, json=GO_BODY).json() is True
    config = http.get(PATH).json()
    assert config["CleanupDeadServers"] is False
    # nil *ReadableDuration is a zero duration on the server, as Consul's Duration() of nil
    assert (config["LastContactThreshold"], config["ServerStabilizationTime"]) == ("0s", "0s")
    assert config["MaxTrailingLogs"] == 0 and config["ModifyIndex"] > 0
    # A body that names one field resets the others to their zero values.
    assert http.put(PATH, json={"MinQuorum": 3}).json() is True
    assert http.get(PATH).json()["MinQuorum"] == 3
    index = http.get(PATH).json()["ModifyIndex"]
    stale = http.put(PATH, params={"cas": index - 1}, json={**GO_BODY, "ModifyIndex": index - 1})
    assert stale.json() is False
    assert http.get(PATH).json()["MinQuorum"] == 3
    fresh = http.put(PATH, params={"cas": index}, json={**GO_BODY, "ModifyIndex": index})
    assert fresh.json() is True
    assert http.get(PATH).json()["MinQuorum"] == 0


def test_health_and_state(http: httpx.Client) -> None:
    name = http.get("/v1/agent/self").json()["Config"]["NodeName"]
    health = http.get("/v1/operator/autopilot/health").json()
    assert [(s["Name"], s["Healthy"]) for s in health["Servers"]] == [(name, True)]
    state = http.get("/v1/operator/autopilot/state").json()
    assert set(state) == {
        "Healthy",
        "FailureTolerance",
        "OptimisticFailureTolerance",
        "Servers",
        "Leader",
        "Voters",
    }
    assert state["Healthy"] is True and state["FailureTolerance"] == 0
    (server_id,) = state["Servers"]
    assert state["Leader"] == server_id and state["Voters"] == [server_id]
    server = state["Servers"][server_id]
    assert server["ID"] == server_id and server["Name"] == name
    assert (server["Status"], server["NodeType"], server["NodeStatus"]) == (
        "leader",
        "voter",
        "alive",
    )
    assert server["LastContact"] == "0s" and server["ReadReplica"] is False
    assert server["Meta"]["consul-network-segment"] == ""


def test_the_leader_stores_the_configured_settings(tmp_path) -> None:
    """`autopilot { ... }` in the agent's config is what the first leader stores (with
    Raft indexes, as Consul's getOrCreateAutopilotConfig), until a PUT replaces it."""
    config = tmp_path / "autopilot.hcl"
    config.write_text(
        'autopilot {\n  cleanup_dead_servers = false\n  last_contact_threshold = "1s"\n'
        "  max_trailing_logs = 40\n}\n"
    )
    agent = AgentProc(*dev_agent_args(), f"-config-file={config}", http_port=free_port())
    agent.start()
    try:
        with agent.client() as http:
            stored = None
            for _ in range(100):  # the leader writes it within its first reconcile
                stored = http.get(PATH).json()
                if stored["ModifyIndex"]:
                    break
                time.sleep(0.1)
            assert stored is not None and stored["CreateIndex"] > 0
            assert (stored["CleanupDeadServers"], stored["LastContactThreshold"]) == (False, "1s")
            assert (stored["MaxTrailingLogs"], stored["ServerStabilizationTime"]) == (40, "10s")
            index = stored["ModifyIndex"]
            assert http.put(PATH, params={"cas": index}, json=GO_BODY).json() is True
            assert http.get(PATH).json()["MaxTrailingLogs"] == 0
    finally:
        agent.cleanup()
