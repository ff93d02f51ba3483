"""agent/http/ui.py on in-memory twins: the UI's node and service summaries and the catalog
overview, read from a register the writer applied; an unknown node is a 404."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.http import ui
from agent.http.app import HTTPError
from agent.http.catalog import build_register
from agent.http.deps import HTTPDeps
from tests.harness.areas import call, dev_deps, header


def _registered() -> HTTPDeps:
    deps = dev_deps()
    body = {
        "Node": "web1",
        "Address": "10.0.0.1",
        "Service": {"Service": "web", "Port": 80, "Tags": ["v1"]},
        "Check": {"CheckID": "alive", "Name": "alive", "Status": "warning", "ServiceID": "web"},
    }
    asyncio.run(deps.writer.write(build_register(body, "dc1", [])))
    return deps


def test_nodes_and_services_summaries() -> None:
    deps = _registered()
    nodes = call(ui.register, deps, "GET", "/v1/internal/ui/nodes")
    assert [n["Node"] for n in json.loads(nodes.body)] == ["web1"]
    assert header(nodes, b"x-consul-query-backend") == b"blocking-query"
    [summary] = json.loads(call(ui.register, deps, "GET", "/v1/internal/ui/services").body)
    assert (summary["Name"], summary["Tags"], summary["ChecksWarning"]) == ("web", ["v1"], 1)
    one = json.loads(call(ui.register, deps, "GET", "/v1/internal/ui/node/web1").body)
    assert one["Node"] == "web1"
    assert call(ui.register, deps, "GET", "/v1/internal/ui/node/web2").status == 404


def test_catalog_overview_and_exports() -> None:
    deps = _registered()
    overview = json.loads(call(ui.register, deps, "GET", "/v1/internal/ui/catalog-overview").body)
    assert overview["Services"] == [
        {"Name": "web", "Total": 1, "Passing": 0, "Warning": 1, "Critical": 0}
    ]
    exported = call(ui.register, deps, "GET", "/v1/internal/ui/exported-services")
    assert json.loads(exported.body) == []


def test_node_without_a_name_is_refused() -> None:
    with pytest.raises(HTTPError) as refused:
        call(ui.register, dev_deps(), "GET", "/v1/internal/ui/node/")
    assert (refused.value.status, refused.value.message) == (400, "Missing node name")
