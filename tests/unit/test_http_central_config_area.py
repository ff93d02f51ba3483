"""`?merge-central-config` on the catalog and health reads (agent/http/catalog.py, health.py)
on in-memory twins: a proxy's Proxy comes back with proxy-defaults and its destination's
service-defaults merged in, a typical service unchanged, and the read indexed by the entries."""

from __future__ import annotations

import asyncio
import json

from agent.http import catalog, health
from agent.http.catalog import build_register
from agent.http.deps import HTTPDeps
from agent.state.commands import ConfigEntrySet
from tests.harness.areas import call, dev_deps, header


def _mesh() -> HTTPDeps:
    deps = dev_deps()
    for entry in (
        {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http", "foo": "bar"}},
        {"Kind": "service-defaults", "Name": "web", "Protocol": "grpc"},
    ):
        asyncio.run(deps.writer.write(ConfigEntrySet(Entry=entry)))
    for service in (
        {"Service": "web", "Port": 80},
        {
            "Kind": "connect-proxy",
            "ID": "web-proxy",
            "Service": "web-proxy",
            "Port": 21000,
            "Proxy": {"DestinationServiceName": "web", "Config": {"local": 1}},
        },
    ):
        body = {"Node": "n1", "Address": "10.0.0.1", "Service": service}
        asyncio.run(deps.writer.write(build_register(body, "dc1", ["web"])))
    return deps


def _catalog(deps: HTTPDeps, path: str, query: bytes = b"") -> list[dict]:
    return json.loads(call(catalog.register, deps, "GET", path, query).body)


def test_catalog_merges_only_when_asked() -> None:
    deps = _mesh()
    (plain,) = _catalog(deps, "/v1/catalog/service/web-proxy")
    assert plain["ServiceProxy"]["Config"] == {"local": 1}
    answer = call(
        catalog.register, deps, "GET", "/v1/catalog/service/web-proxy", b"merge-central-config"
    )
    (merged,) = json.loads(answer.body)
    assert merged["ServiceProxy"]["Config"] == {"local": 1, "protocol": "grpc", "foo": "bar"}
    entries_index = deps.store.table_index("config-entries")
    assert int(header(answer, b"x-consul-index") or 0) >= entries_index
    (connect,) = _catalog(deps, "/v1/catalog/connect/web", b"merge-central-config")
    assert connect["ServiceProxy"]["Config"]["protocol"] == "grpc"
    typical = _catalog(deps, "/v1/catalog/service/web", b"merge-central-config")
    assert typical == _catalog(deps, "/v1/catalog/service/web")


def test_health_merges_into_the_service_proxy() -> None:
    deps = _mesh()
    for path in ("/v1/health/service/web-proxy", "/v1/health/connect/web"):
        answer = call(health.register, deps, "GET", path, b"merge-central-config")
        (item,) = json.loads(answer.body)
        assert item["Service"]["Proxy"]["Config"] == {
            "local": 1,
            "protocol": "grpc",
            "foo": "bar",
        }
    (plain,) = json.loads(call(health.register, deps, "GET", "/v1/health/connect/web").body)
    assert plain["Service"]["Proxy"]["Config"] == {"local": 1}
