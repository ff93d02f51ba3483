"""`/v1/agent/*`: this agent's own view — config, members, local services and checks.

Agent endpoints answer from local state and carry no index headers (Consul's behaviour). This
module holds membership and lifecycle (members, join, leave, force-leave, reload) and wires the
whole area; the other endpoints are in `agent_info.py`, `agent_services.py` and
`agent_checks.py`, on the ports of `agent_common.py`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from agent.http.agent_checks import (
    agent_checks,
    check_deregister,
    check_register,
    check_update,
    ttl_handler,
)
from agent.http.agent_common import AgentPorts, filtered, member, ok
from agent.http.agent_info import (
    agent_host,
    agent_metrics,
    agent_metrics_stream,
    agent_monitor,
    agent_self,
    agent_version,
)
from agent.http.agent_services import (
    agent_service,
    agent_services,
    health_by_id,
    health_by_name,
    node_maintenance,
    service_deregister,
    service_maintenance,
    service_register,
)
from agent.http.app import HTTPError, Request, Response, Router, json_response

if TYPE_CHECKING:
    from agent.cluster import ClusterManager
    from agent.http.deps import AgentControl, HTTPDeps
    from agent.ports import AgentIdentity

__all__ = ["register"]


async def agent_members(ports: AgentPorts, req: Request, _: str) -> Response:
    if req.has("wan") and req.get("segment"):
        raise HTTPError(400, "Cannot provide a segment with wan=true")
    if req.has("wan"):
        return json_response(
            req, filtered(req, _wan_members(ports.identity, ports.control, ports.cluster))
        )
    members = ports.control.members() or [member(ports.identity, ports.cluster)]
    return json_response(req, filtered(req, members))


def _wan_members(
    identity: AgentIdentity, control: AgentControl, cluster: ClusterManager | None
) -> list[dict]:
    """Servers show their WAN pool; clients are in none. A server whose WAN pool could not
    start shows what it would gossip there: its datacenter's servers, named node.dc."""
    if not identity.config.server:
        return []
    if cluster is not None and cluster.wan is not None:
        return control.wan_members()
    return [
        m
        | {
            "Name": f"{m['Name']}.{m['Tags'].get('dc', '')}",
            "Port": int(m["Tags"].get("wan_join_port", 8302)),
        }
        for m in control.members() or [member(identity, cluster)]
        if m["Tags"].get("role") == "consul"
    ]


async def agent_reload(ports: AgentPorts, req: Request, _: str) -> Response:
    control = ports.control
    try:
        control.reload()
    except Exception as exc:
        raise HTTPError(500, f"Failed to reload configs: {exc}") from None
    return ok()


async def agent_leave(ports: AgentPorts, req: Request, _: str) -> Response:
    control = ports.control
    await control.graceful_leave()
    # Answer first, then stop: the caller is told the leave happened.
    asyncio.get_running_loop().call_later(0.2, control.request_stop)
    return ok()


async def agent_join(ports: AgentPorts, req: Request, address: str) -> Response:
    control = ports.control
    await control.join(address, wan=req.has("wan"))
    return ok()


async def agent_force_leave(ports: AgentPorts, req: Request, node: str) -> Response:
    control = ports.control
    if not node:
        raise HTTPError(500, f"agent: No node found with name '{node}'")
    await control.force_leave(node, prune=req.has("prune"), wan=req.has("wan"))
    return ok()


def register(router: Router, deps: HTTPDeps) -> None:
    ports = AgentPorts(
        identity=deps.identity,
        local=deps.local,
        control=deps.control,
        cluster=deps.cluster,
        store=deps.store,
        consensus=deps.consensus,
        leadership=deps.leadership,
        metrics=deps.metrics,
    )
    router.add("/v1/agent/self", {"GET": partial(agent_self, ports)})
    router.add("/v1/agent/version", {"GET": partial(agent_version, ports)})
    router.add("/v1/agent/host", {"GET": partial(agent_host, ports)})
    router.add("/v1/agent/members", {"GET": partial(agent_members, ports)})
    router.add("/v1/agent/services", {"GET": partial(agent_services, ports)})
    router.add("/v1/agent/metrics", {"GET": partial(agent_metrics, ports)})
    router.add("/v1/agent/metrics/stream", {"GET": partial(agent_metrics_stream, ports)})
    router.add("/v1/agent/monitor", {"GET": agent_monitor})
    router.add("/v1/agent/service/register", {"PUT": partial(service_register, ports)})
    router.add(
        "/v1/agent/service/deregister/", {"PUT": partial(service_deregister, ports)}, prefix=True
    )
    router.add(
        "/v1/agent/service/maintenance/", {"PUT": partial(service_maintenance, ports)}, prefix=True
    )
    router.add("/v1/agent/service/", {"GET": partial(agent_service, ports)}, prefix=True)
    router.add("/v1/agent/checks", {"GET": partial(agent_checks, ports)})
    router.add("/v1/agent/check/register", {"PUT": partial(check_register, ports)})
    router.add(
        "/v1/agent/check/deregister/", {"PUT": partial(check_deregister, ports)}, prefix=True
    )
    router.add(
        "/v1/agent/check/pass/", {"PUT": partial(ttl_handler("passing"), ports)}, prefix=True
    )
    router.add(
        "/v1/agent/check/warn/", {"PUT": partial(ttl_handler("warning"), ports)}, prefix=True
    )
    router.add(
        "/v1/agent/check/fail/", {"PUT": partial(ttl_handler("critical"), ports)}, prefix=True
    )
    router.add("/v1/agent/check/update/", {"PUT": partial(check_update, ports)}, prefix=True)
    router.add("/v1/agent/maintenance", {"PUT": partial(node_maintenance, ports)})
    router.add("/v1/agent/reload", {"PUT": partial(agent_reload, ports)})
    router.add("/v1/agent/leave", {"PUT": partial(agent_leave, ports)})
    router.add("/v1/agent/join/", {"PUT": partial(agent_join, ports)}, prefix=True)
    router.add("/v1/agent/force-leave/", {"PUT": partial(agent_force_leave, ports)}, prefix=True)
    router.add("/v1/agent/health/service/id/", {"GET": partial(health_by_id, ports)}, prefix=True)
    router.add(
        "/v1/agent/health/service/name/", {"GET": partial(health_by_name, ports)}, prefix=True
    )
