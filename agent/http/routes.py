"""The agent's route table: every API area registers itself here.

Endpoints whose feature arrives later (ACLs, sessions, events, ...) are still registered with
Consul's method lists, so the verb rules hold everywhere, and they answer what is true of this
agent today (ACLs disabled: 401; no sessions: an empty list), never a made-up success.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agent.http import webui
from agent.http.app import HTTPError, Request, Response, Router

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

# Modules with a `register(router)` function, in no particular order.
AREAS = (
    "agent.http.kv",
    "agent.http.txn",
    "agent.http.status",
    "agent.http.catalog",
    "agent.http.health",
    "agent.http.agent_ep",
    "agent.http.operator",
    "agent.http.coordinate",
    "agent.http.keyring",  # after operator: owns /v1/operator/keyring
    "agent.http.ui",
    "agent.http.session",
    "agent.http.event",
    "agent.http.config_entries",
    "agent.http.connect_ca",
    "agent.http.intentions",
    "agent.http.discovery_chain",
    "agent.http.query",
    "agent.http.operator_usage",
    "agent.http.peering",
    "agent.http.exported",
    "agent.http.debug",
    "agent.http.ui_metrics_proxy",
    "agent.http.acl_authorize",
    "agent.http.virtual_ips",
    "agent.http.federation",
)


def _refuse(status: int, message: str):
    async def handler(req: Request, rest: str) -> Response:
        raise HTTPError(status, message)

    return handler


def _acl_routes(router: Router) -> None:
    off = _refuse(401, "ACL support disabled")
    for path, methods, prefix in (
        ("/v1/acl/bootstrap", ("PUT",), False),
        ("/v1/acl/login", ("POST",), False),
        ("/v1/acl/logout", ("POST",), False),
        ("/v1/acl/replication", ("GET",), False),
        ("/v1/acl/policies", ("GET",), False),
        ("/v1/acl/policy", ("PUT",), False),
        ("/v1/acl/policy/", ("GET", "PUT", "DELETE"), True),
        ("/v1/acl/policy/name/", ("GET",), True),
        ("/v1/acl/roles", ("GET",), False),
        ("/v1/acl/role", ("PUT",), False),
        ("/v1/acl/role/", ("GET", "PUT", "DELETE"), True),
        ("/v1/acl/role/name/", ("GET",), True),
        ("/v1/acl/binding-rules", ("GET",), False),
        ("/v1/acl/binding-rule", ("PUT",), False),
        ("/v1/acl/binding-rule/", ("GET", "PUT", "DELETE"), True),
        ("/v1/acl/auth-methods", ("GET",), False),
        ("/v1/acl/auth-method", ("PUT",), False),
        ("/v1/acl/auth-method/", ("GET", "PUT", "DELETE"), True),
        ("/v1/acl/tokens", ("GET",), False),
        ("/v1/acl/token", ("PUT",), False),
        ("/v1/acl/token/self", ("GET",), False),
        ("/v1/acl/token/", ("GET", "PUT", "DELETE"), True),
        ("/v1/agent/token/", ("PUT",), True),
        ("/v1/acl/templated-policies", ("GET",), False),
        ("/v1/acl/templated-policy/name/", ("GET",), True),
        ("/v1/acl/templated-policy/preview/", ("POST",), True),
    ):
        router.add(path, dict.fromkeys(methods, off), prefix=prefix)
    # The pre-1.4 ACL API: gone since Consul 1.11, which answers 410 with this text.
    for path, method, prefix in (
        ("/v1/acl/create", "PUT", False),
        ("/v1/acl/update", "PUT", False),
        ("/v1/acl/destroy/", "PUT", True),
        ("/v1/acl/info/", "GET", True),
        ("/v1/acl/clone/", "PUT", True),
        ("/v1/acl/list", "GET", False),
    ):
        name = path.removeprefix("/v1/acl/").rstrip("/")
        gone = _refuse(
            410,
            f"Endpoint /v1/acl/{name} for the legacy ACL system was removed in Consul 1.11.",
        )
        router.add(path, {method: gone}, prefix=prefix)


def _later_routes(router: Router) -> None:
    """Features of later issues: verb rules now, honest answers until they land."""
    enterprise = _refuse(404, "Consul Enterprise feature: network areas are not available")
    router.add("/v1/operator/area", {"GET": enterprise, "POST": enterprise})
    router.add(
        "/v1/operator/area/",
        {"GET": enterprise, "PUT": enterprise, "DELETE": enterprise},
        prefix=True,
    )


def build_router(deps: HTTPDeps) -> Router:
    router = Router()
    webui.register(router, deps.identity)
    _acl_routes(router)
    _later_routes(router)
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(router, deps)
    if deps.acl is not None:  # the ACL endpoints and the permission table
        from agent.http.acl import register as register_acl
        from agent.http.guards import GuardPorts, install

        register_acl(router, deps)
        install(router, GuardPorts(deps.store, deps.local, deps.identity))
    return router
