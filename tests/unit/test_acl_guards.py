"""The permission table covers every route the agent serves when ACLs are enabled."""

from __future__ import annotations

import dataclasses

from agent.config import load_config
from agent.http.guards import TABLE, install
from agent.http.routes import build_router
from tests.harness.twins import http_deps


def _router_with_acls():
    config = load_config(["-dev"])
    config = dataclasses.replace(config, acl=dataclasses.replace(config.acl, enabled=True))
    return build_router(http_deps(config))


def test_every_route_has_a_guard() -> None:
    # build_router installs the guards; a second pass reports what fell to the default.
    router = _router_with_acls()
    unguarded = install(router)
    assert unguarded == [], (
        "add these routes to agent/http/guards.py TABLE with the permission Consul requires "
        f"(consul-api.md 8.5): {unguarded}"
    )


def test_table_names_only_real_routes() -> None:
    router = _router_with_acls()
    served = set(router.exact) | {path for path, _ in router.prefixes}
    assert set(TABLE) - served == set()
