"""agent/http/catalog.py on in-memory twins: a register proposed through the writer and read
back, the refusals that never reach the log, and the datacenter list without a WAN pool."""

from __future__ import annotations

import json

import pytest

from agent.http import catalog
from agent.http.app import HTTPError, Response
from agent.http.deps import HTTPDeps
from tests.harness import areas
from tests.harness.twins import MemoryWriter

dev_deps = areas.dev_deps


def call(deps: HTTPDeps, method: str, path: str, query: bytes = b"", body: bytes = b"") -> Response:
    return areas.call(catalog.register, deps, method, path, query, body)


def test_register_is_proposed_and_read_back() -> None:
    deps = dev_deps()
    body = {"Node": "web1", "Address": "10.0.0.1", "Service": {"Service": "web", "Port": 80}}
    assert json.loads(
        call(deps, "PUT", "/v1/catalog/register", body=json.dumps(body).encode()).body
    )
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.types() == ["register"]
    answer = call(deps, "GET", "/v1/catalog/nodes")
    assert [n["Node"] for n in json.loads(answer.body)] == ["web1"]
    assert (b"x-consul-index", str(deps.store.table_index("nodes")).encode()) in answer.headers
    listed = json.loads(call(deps, "GET", "/v1/catalog/service/web").body)
    assert [(s["Node"], s["ServicePort"]) for s in listed] == [("web1", 80)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Address": "10.0.0.1"}, "Must provide node"),
        ({"Node": "web1", "Address": "10.0.0.1", "Datacenter": "dc9"}, "No path to datacenter"),
    ],
)
def test_refused_register_never_reaches_the_writer(body: dict, message: str) -> None:
    deps = dev_deps()
    with pytest.raises(HTTPError) as refused:
        call(deps, "PUT", "/v1/catalog/register", body=json.dumps(body).encode())
    assert (refused.value.status, refused.value.message) == (500, message)
    assert isinstance(deps.writer, MemoryWriter)
    assert deps.writer.commands == []


def test_datacenters_without_a_wan_pool_is_this_one() -> None:
    deps = dev_deps()
    assert json.loads(call(deps, "GET", "/v1/catalog/datacenters").body) == ["dc1"]
