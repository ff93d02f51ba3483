"""The permission table covers every route the agent serves when ACLs are enabled."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agent.config import load_config
from agent.http.app import HTTPError, Request, Response, Router
from agent.http.deps import HTTPDeps
from agent.http.guards import GuardPorts, install, table
from agent.http.reads import Reads
from agent.http.routes import build_router
from tests.harness.twins import http_deps


def _deps_with_acls() -> HTTPDeps:
    config = load_config(["-dev"])
    config = dataclasses.replace(config, acl=dataclasses.replace(config.acl, enabled=True))
    return http_deps(config)


def _ports(deps: HTTPDeps) -> GuardPorts:
    return GuardPorts(deps.store, deps.local, deps.identity)


def test_every_route_has_a_guard() -> None:
    # build_router installs the guards; a second pass reports what fell to the default.
    deps = _deps_with_acls()
    router: Router = build_router(deps)
    unguarded = install(router, _ports(deps))
    assert unguarded == [], (
        "add these routes to the table in agent/http/guards.py with the permission Consul "
        f"requires (consul-api.md 8.5): {unguarded}"
    )


def test_table_names_only_real_routes() -> None:
    deps = _deps_with_acls()
    router = build_router(deps)
    served = set(router.exact) | {path for path, _ in router.prefixes}
    assert set(table(_ports(deps))) - served == set()


def _guarded_call(deps: HTTPDeps, method: str, path: str, body: bytes = b"") -> Response:
    router = build_router(deps)
    methods, rest, _ = router.match(path)
    assert methods is not None
    scope = {"method": method, "path": path, "query_string": b"", "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    req = Request(scope, receive, deps.acl, Reads(deps.store.watches, deps.leadership))
    return asyncio.run(methods[method](req, rest))


def _denying_deps() -> HTTPDeps:
    deps = _deps_with_acls()
    settings = dataclasses.replace(deps.identity.config.acl, default_policy="deny")
    return http_deps(dataclasses.replace(deps.identity.config, acl=settings))


def test_guards_name_resources_from_their_ports() -> None:
    deps = _denying_deps()
    with pytest.raises(HTTPError) as self_read:  # this agent's node, from identity
        _guarded_call(deps, "GET", "/v1/agent/self")
    assert f"'agent:read' on \"{deps.identity.node_name}\"" in self_read.value.message
    service = {"ID": "web-1", "Service": "web", "Port": 80}
    register = {"Type": "register", "Node": "n1", "Address": "10.0.0.1", "Service": service}
    asyncio.run(deps.writer.write(register))
    body = b'{"Node": "n1", "ServiceID": "web-1"}'
    with pytest.raises(HTTPError) as deregister:  # the service's name, from the store
        _guarded_call(deps, "PUT", "/v1/catalog/deregister", body)
    assert "'service:write' on \"web\"" in deregister.value.message


def test_register_of_a_new_node_needs_node_write_even_with_skip_node_update() -> None:
    deps = _denying_deps()
    body = (
        b'{"Node": "n2", "Address": "10.0.0.2", "SkipNodeUpdate": true,'
        b' "Service": {"ID": "web-2", "Service": "web"}}'
    )
    with pytest.raises(HTTPError) as register:  # Consul's ChangesNode: a new node changes
        _guarded_call(deps, "PUT", "/v1/catalog/register", body)
    assert "'node:write' on \"n2\"" in register.value.message
    assert "n2" not in deps.store.nodes


def test_re_registering_a_node_with_new_meta_needs_node_write() -> None:
    deps = _denying_deps()
    register = {"Type": "register", "Node": "n1", "Address": "10.0.0.1"}
    asyncio.run(deps.writer.write(register))
    body = b'{"Node": "n1", "Address": "10.0.0.1", "NodeMeta": {"consul-version": "1.22.0"}}'
    with pytest.raises(HTTPError) as changed:  # Consul's ChangesNode: meta is the node's
        _guarded_call(deps, "PUT", "/v1/catalog/register", body)
    assert "'node:write' on \"n1\"" in changed.value.message
    tagged = b'{"Node": "n1", "Address": "10.0.0.1", "TaggedAddresses": {"wan": "1.2.3.4"}}'
    with pytest.raises(HTTPError):
        _guarded_call(deps, "PUT", "/v1/catalog/register", tagged)
    assert deps.store.nodes["n1"].Meta == {}
