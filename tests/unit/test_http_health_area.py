"""agent/http/health.py on in-memory twins: checks by node and state, instances with their
health (and `?passing`), read back from a register the writer applied; bad input refused."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.http import health
from agent.http.app import HTTPError
from agent.http.catalog import build_register
from agent.http.deps import HTTPDeps
from tests.harness.areas import call, dev_deps, header


def _registered() -> HTTPDeps:
    deps = dev_deps()
    for node, status in (("web1", "passing"), ("web2", "critical")):
        body = {
            "Node": node,
            "Address": "10.0.0.1",
            "Service": {"Service": "web", "Port": 80},
            "Check": {"CheckID": "alive", "Name": "alive", "Status": status, "ServiceID": "web"},
        }
        asyncio.run(deps.writer.write(build_register(body, "dc1", [])))
    return deps


def test_checks_by_node_and_state() -> None:
    deps = _registered()
    answer = call(health.register, deps, "GET", "/v1/health/node/web2")
    assert [(c["Node"], c["Status"]) for c in json.loads(answer.body)] == [("web2", "critical")]
    assert header(answer, b"x-consul-index") == str(deps.store.table_index("checks")).encode()
    critical = json.loads(call(health.register, deps, "GET", "/v1/health/state/critical").body)
    assert [c["Node"] for c in critical] == ["web2"]


def test_instances_with_their_health() -> None:
    deps = _registered()
    every = json.loads(call(health.register, deps, "GET", "/v1/health/service/web").body)
    assert sorted(i["Node"]["Node"] for i in every) == ["web1", "web2"]
    passing = call(health.register, deps, "GET", "/v1/health/service/web", b"passing")
    assert [i["Node"]["Node"] for i in json.loads(passing.body)] == ["web1"]
    mesh = json.loads(call(health.register, deps, "GET", "/v1/health/connect/web").body)
    assert mesh == []


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/v1/health/node/", b"", "Missing node name"),
        ("/v1/health/service/web", b"passing=maybe", "Invalid value for ?passing"),
    ],
)
def test_bad_reads_are_refused(path: str, query: bytes, message: str) -> None:
    with pytest.raises(HTTPError) as refused:
        call(health.register, dev_deps(), "GET", path, query)
    assert (refused.value.status, refused.value.message) == (400, message)
