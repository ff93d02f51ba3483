"""agent/http/operator.py on in-memory twins: the autopilot settings written through the writer
and read back (with `?cas`), and what a client agent (no consensus) answers."""

from __future__ import annotations

import json

import pytest

from agent.http import operator
from agent.http.app import HTTPError, Response
from agent.http.deps import HTTPDeps
from tests.harness import areas
from tests.harness.twins import MemoryWriter

dev_deps = areas.dev_deps


def call(deps: HTTPDeps, method: str, path: str, query: bytes = b"", body: bytes = b"") -> Response:
    return areas.call(operator.register, deps, method, path, query, body)


AUTOPILOT = "/v1/operator/autopilot/configuration"


def test_autopilot_settings_are_written_and_read_back() -> None:
    deps = dev_deps()
    # Before a leader stores it, the agent's own `autopilot` settings (Consul's defaults).
    before = json.loads(call(deps, "GET", AUTOPILOT).body)
    assert before == deps.identity.config.autopilot | {"CreateIndex": 0, "ModifyIndex": 0}
    assert (before["CleanupDeadServers"], before["ServerStabilizationTime"]) == (True, "10s")
    body = b'{"MaxTrailingLogs": 500, "LastContactThreshold": "1s"}'
    assert json.loads(call(deps, "PUT", AUTOPILOT, body=body).body) is True
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.types() == ["autopilot"]
    stored = json.loads(call(deps, "GET", AUTOPILOT).body)
    assert (stored["MaxTrailingLogs"], stored["LastContactThreshold"]) == (500, "1s")
    stale = str(stored["ModifyIndex"] + 1).encode()
    answer = call(deps, "PUT", AUTOPILOT, query=b"cas=" + stale, body=b'{"MinQuorum": 3}')
    assert json.loads(answer.body) is False  # Consul's answer to a ModifyIndex mismatch
    assert json.loads(call(deps, "GET", AUTOPILOT).body)["MinQuorum"] == 0


def test_a_bad_cas_is_refused_before_the_writer() -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as refused:
        call(deps, "PUT", AUTOPILOT, query=b"cas=-1", body=b"{}")
    assert (refused.value.status, refused.value.message) == (400, "Error parsing cas value: '-1'")
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/operator/raft/configuration"), ("GET", "/v1/snapshot")],
)
def test_a_client_agent_has_no_servers(method: str, path: str) -> None:
    with pytest.raises(HTTPError) as refused:
        call(dev_deps(), method, path)
    assert (refused.value.status, refused.value.message) == (500, "No known Consul servers")


def test_autopilot_health_of_a_client_agent_is_empty() -> None:
    answer = json.loads(call(dev_deps(), "GET", "/v1/operator/autopilot/health").body)
    assert answer == {"Healthy": False, "FailureTolerance": 0, "Servers": []}
