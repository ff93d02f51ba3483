"""Every endpoint enforces its verbs: 405 with Consul's body and Allow header, OPTIONS 200 —
for the endpoints in the original write-up's table and the rest of the API."""

from __future__ import annotations

import pytest

from tests.e2e.agentproc import AgentProc

# (path, allowed methods) — the allowed lists are Consul's.
ENDPOINTS = [
    ("/v1/acl/info/abc", ["GET"]),
    ("/v1/acl/list", ["GET"]),
    ("/v1/acl/replication", ["GET"]),
    ("/v1/agent/check/register", ["PUT"]),
    ("/v1/agent/check/deregister/x", ["PUT"]),
    ("/v1/agent/check/pass/x", ["PUT"]),
    ("/v1/agent/check/warn/x", ["PUT"]),
    ("/v1/agent/check/fail/x", ["PUT"]),
    ("/v1/agent/check/update/x", ["PUT"]),
    ("/v1/agent/service/register", ["PUT"]),
    ("/v1/agent/service/deregister/x", ["PUT"]),
    ("/v1/agent/service/maintenance/x", ["PUT"]),
    ("/v1/agent/join/127.0.0.9", ["PUT"]),
    ("/v1/agent/force-leave/x", ["PUT"]),
    ("/v1/agent/members", ["GET"]),
    ("/v1/agent/metrics", ["GET"]),
    ("/v1/agent/self", ["GET"]),
    ("/v1/agent/services", ["GET"]),
    ("/v1/agent/checks", ["GET"]),
    ("/v1/agent/maintenance", ["PUT"]),
    ("/v1/agent/reload", ["PUT"]),
    ("/v1/agent/leave", ["PUT"]),
    ("/v1/catalog/register", ["PUT"]),
    ("/v1/catalog/deregister", ["PUT"]),
    ("/v1/catalog/datacenters", ["GET"]),
    ("/v1/catalog/nodes", ["GET"]),
    ("/v1/catalog/services", ["GET"]),
    ("/v1/catalog/service/web", ["GET"]),
    ("/v1/catalog/node/n1", ["GET"]),
    ("/v1/coordinate/datacenters", ["GET"]),
    ("/v1/coordinate/nodes", ["GET"]),
    ("/v1/coordinate/node/n1", ["GET"]),
    ("/v1/coordinate/update", ["PUT"]),
    ("/v1/health/node/n1", ["GET"]),
    ("/v1/health/checks/web", ["GET"]),
    ("/v1/health/service/web", ["GET"]),
    ("/v1/health/state/any", ["GET"]),
    ("/v1/internal/ui/nodes", ["GET"]),
    ("/v1/internal/ui/services", ["GET"]),
    ("/v1/session/create", ["PUT"]),
    ("/v1/session/destroy/x", ["PUT"]),
    ("/v1/session/info/x", ["GET"]),
    ("/v1/session/node/n1", ["GET"]),
    ("/v1/session/list", ["GET"]),
    ("/v1/session/renew/x", ["PUT"]),
    ("/v1/status/leader", ["GET"]),
    ("/v1/status/peers", ["GET"]),
    ("/v1/operator/area", ["GET", "POST"]),
    ("/v1/operator/raft/configuration", ["GET"]),
    ("/v1/operator/raft/peer", ["DELETE"]),
    ("/v1/kv/x", ["GET", "PUT", "DELETE"]),
    ("/v1/txn", ["PUT"]),
    ("/v1/snapshot", ["GET", "PUT"]),
    ("/v1/event/fire/x", ["PUT"]),
    ("/v1/event/list", ["GET"]),
    ("/v1/acl/token", ["PUT"]),
    ("/v1/acl/bootstrap", ["PUT"]),
]
ALL = ["GET", "PUT", "POST", "DELETE", "PATCH"]


@pytest.mark.parametrize(("path", "allowed"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_wrong_verb_is_405(dev_agent_module: AgentProc, path: str, allowed: list[str]) -> None:
    with dev_agent_module.client() as http:
        for method in ALL:
            if method in allowed:
                continue
            answer = http.request(method, path)
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.text == f"method {method} not allowed"
            assert answer.headers["allow"] == "OPTIONS," + ",".join(allowed)
        options = http.request("OPTIONS", path)
        assert options.status_code == 200
        assert options.headers["allow"] == "OPTIONS," + ",".join(allowed)


def test_unknown_paths(dev_agent_module: AgentProc) -> None:
    with dev_agent_module.client() as http:
        answer = http.get("/v1/no/such/thing")
        assert answer.status_code == 404
        assert "Invalid URL path" in answer.text


def test_legacy_acl_endpoints_say_they_are_gone(dev_agent_module: AgentProc) -> None:
    with dev_agent_module.client() as http:
        answer = http.get("/v1/acl/list")
        assert answer.status_code == 410
        assert "legacy ACL system was removed" in answer.text


def test_acl_endpoints_when_acls_are_off(dev_agent_module: AgentProc) -> None:
    with dev_agent_module.client() as http:
        answer = http.get("/v1/acl/replication")
        assert (answer.status_code, answer.text) == (401, "ACL support disabled")
