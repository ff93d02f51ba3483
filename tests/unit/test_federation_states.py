"""Federation states on in-memory twins: the leader's anti-entropy (agent/federation_sync.py)
writes its datacenter's state once, again only when its mesh gateways change, never from a
follower or a secondary datacenter; the three HTTP reads answer in Consul's shapes and
statuses, with operator:read on the list and the single state; snapshots carry them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json

import pytest

from agent.config import load_config
from agent.federation_sync import FederationStateSync
from agent.http import catalog, federation
from agent.http.app import HTTPError, Request
from agent.http.deps import HTTPDeps
from agent.http.reads import Reads
from agent.http.routes import build_router
from agent.state.federation import same_state
from agent.state.store import Store
from tests.harness import areas
from tests.harness.twins import http_deps

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)


def _sync(deps: HTTPDeps, leader: bool = True, primary: str = "dc1") -> FederationStateSync:
    return FederationStateSync(
        deps.store, deps.writer, lambda: leader, "dc1", primary, clock=lambda: WHEN
    )


def _gateway(deps: HTTPDeps, node: str = "gw-node") -> None:
    body = {
        "Node": node,
        "Address": "10.0.0.9",
        "Service": {"Service": "mgw", "Kind": "mesh-gateway", "Port": 8443},
    }
    areas.call(
        catalog.register, deps, "PUT", "/v1/catalog/register", b"", json.dumps(body).encode()
    )


def _get(deps: HTTPDeps, path: str) -> tuple[int, object]:
    answer = areas.call(federation.register, deps, "GET", path)
    return answer.status, json.loads(answer.body) if answer.body else None


def test_the_leader_writes_its_state_once_and_again_when_gateways_change() -> None:
    deps = areas.dev_deps()
    sync = _sync(deps)
    assert asyncio.run(sync.step())
    (state,) = deps.store.federation.all()
    assert list(state) == [
        "Datacenter",
        "MeshGateways",
        "UpdatedAt",
        "PrimaryModifyIndex",
        "CreateIndex",
        "ModifyIndex",
    ]
    assert state["Datacenter"] == "dc1" and state["MeshGateways"] is None
    assert state["UpdatedAt"] == "2026-01-02T03:04:05.6Z"
    assert not asyncio.run(sync.step())  # nothing changed: no write
    _gateway(deps)
    assert asyncio.run(sync.step())
    gateways = deps.store.federation.get("dc1")["MeshGateways"]
    assert [(g["Node"]["Node"], g["Service"]["Service"]) for g in gateways] == [("gw-node", "mgw")]
    assert deps.store.federation.get("dc1")["CreateIndex"] == state["CreateIndex"]


def test_followers_and_secondaries_write_nothing() -> None:
    deps = areas.dev_deps()
    assert not asyncio.run(_sync(deps, leader=False).step())
    assert not asyncio.run(_sync(deps, primary="dc0").step())
    assert deps.store.federation.all() == []


def test_same_state_ignores_when_it_was_written() -> None:
    a = {"Datacenter": "dc1", "MeshGateways": None, "PrimaryModifyIndex": 0, "UpdatedAt": "x"}
    assert same_state(a, a | {"UpdatedAt": "y", "ModifyIndex": 9})
    assert not same_state(a, a | {"MeshGateways": []})
    assert not same_state(None, a)


def test_reads_without_any_state() -> None:
    deps = areas.dev_deps()
    assert _get(deps, "/v1/internal/federation-states") == (200, [])
    assert _get(deps, "/v1/internal/federation-states/mesh-gateways") == (200, {})
    assert _get(deps, "/v1/internal/federation-state/dc1") == (404, None)
    with pytest.raises(HTTPError) as err:
        _get(deps, "/v1/internal/federation-state/")
    assert (err.value.status, err.value.message) == (400, "Missing datacenter name")


def test_reads_of_the_written_state() -> None:
    deps = areas.dev_deps()
    _gateway(deps)
    asyncio.run(_sync(deps).step())
    status, listed = _get(deps, "/v1/internal/federation-states")
    assert status == 200 and [s["Datacenter"] for s in listed] == ["dc1"]
    status, one = _get(deps, "/v1/internal/federation-state/dc1")
    assert status == 200 and one["State"] == listed[0]
    assert one["Index"] == listed[0]["ModifyIndex"] and one["KnownLeader"] is True
    status, gateways = _get(deps, "/v1/internal/federation-states/mesh-gateways")
    assert status == 200 and list(gateways) == ["dc1"]
    assert gateways["dc1"][0]["Service"]["Kind"] == "mesh-gateway"
    assert _get(deps, "/v1/internal/federation-state/dc2") == (404, None)


def test_snapshots_carry_federation_states() -> None:
    deps = areas.dev_deps()
    _gateway(deps)
    asyncio.run(_sync(deps).step())
    copy = Store()
    copy.restore(deps.store.snapshot())
    assert copy.federation.all() == deps.store.federation.all()


def _denying() -> HTTPDeps:
    config = load_config(["-dev"])
    acl = dataclasses.replace(config.acl, enabled=True, default_policy="deny")
    return http_deps(dataclasses.replace(config, acl=acl))


@pytest.mark.parametrize(
    "path", ["/v1/internal/federation-states", "/v1/internal/federation-state/dc1"]
)
def test_operator_read_is_required(path: str) -> None:
    deps = _denying()
    router = build_router(deps)
    methods, rest, _ = router.match(path)
    assert methods is not None
    scope = {"method": "GET", "path": path, "query_string": b"", "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    req = Request(scope, receive, deps.acl, Reads(deps.store.watches, deps.leadership))
    with pytest.raises(HTTPError) as err:
        asyncio.run(methods["GET"](req, rest))
    assert err.value.status == 403 and "'operator:read'" in err.value.message
