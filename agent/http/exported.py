"""`/v1/exported-services`: what the `exported-services` config entry exports, resolved
(wildcards expanded, duplicates merged) by agent/state/exports.py; a blocking read that needs
`mesh:read`, as Consul's GetResolvedExportedServices does (the guard table holds the rule).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from agent.http.app import Request, Response, Router
from agent.http.catalog import blocking_read
from agent.state.exports import resolved_exported_services

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.state.store import Store

_TOPICS = (("table", "config-entries"), ("table", "services"))


async def exported_services(store: Store, req: Request, _: str) -> Response:
    return await blocking_read(req, _TOPICS, partial(resolved_exported_services, store))


def register(router: Router, deps: HTTPDeps) -> None:
    router.add("/v1/exported-services", {"GET": partial(exported_services, deps.store)})
