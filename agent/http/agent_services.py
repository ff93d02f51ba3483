"""`/v1/agent/service/*`, `/v1/agent/services`, `/v1/agent/maintenance` and
`/v1/agent/health/service/*`: the services registered with this agent, their maintenance
mode, and their health as this agent's own checks see it.

A proxy's or gateway's `Proxy` is shown with central config merged in (proxy-defaults and
its service-defaults), as Consul's service manager registers it locally
(`agent.service_manager`, off with `enable_central_service_config = false`); the
registration itself stays as it was sent. A `?hash=` reader wakes when an entry change
alters the merged result, since its ContentHash changes with it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.checks import CheckError
from agent.http.agent_common import AgentPorts, filtered, ok
from agent.http.app import HTTPError, Request, Response, json_response, text_response
from agent.http.authz import request_token
from agent.http.blocking import query_options
from agent.http.bodies import SERVICE_DEFINITION
from agent.http.gojson import conform
from agent.services import ServiceError, content_hash

if TYPE_CHECKING:
    from agent.services import ServiceDefinition

__all__ = [
    "agent_service",
    "agent_services",
    "health_by_id",
    "health_by_name",
    "node_maintenance",
    "service_deregister",
    "service_maintenance",
    "service_register",
]

_TRUE_VALUES = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE_VALUES = {"0", "f", "F", "false", "FALSE", "False"}


async def _rendered(ports: AgentPorts, defn: ServiceDefinition) -> dict:
    local = ports.local
    return local.render_service(await local.manager.merged(defn))


async def agent_services(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    rendered = [await _rendered(ports, d) for d in local.services.values()]
    rendered = filtered(req, rendered)
    return json_response(req, {s["ID"]: s for s in rendered})


async def agent_service(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    defn = local.services.get(service_id)
    if defn is None:
        raise HTTPError(404, f"unknown service ID: {service_id}")
    body = await _rendered(ports, defn)
    digest = content_hash(body)
    wanted = req.get("hash") if req.raw_query else None
    if wanted and wanted == digest:
        # hash-based blocking: park until the definition changes or wait runs out
        opts = query_options(req)
        deadline = time.monotonic() + opts.wait
        while (remaining := deadline - time.monotonic()) > 0:
            if not await local.wait_change(remaining):
                break
            defn = local.services.get(service_id)
            if defn is None:
                raise HTTPError(404, f"unknown service ID: {service_id}")
            body = await _rendered(ports, defn)
            digest = content_hash(body)
            if digest != wanted:
                break
    body["ContentHash"] = digest
    return json_response(req, body, [(b"x-consul-contenthash", digest.encode())])


async def service_register(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    body = await req.json()
    conform(body, SERVICE_DEFINITION)  # kinds and ranges; services.py checks the meaning
    replace = req.has("replace-existing-checks") and req.get("replace-existing-checks") in (
        "",
        "true",
        "1",
    )
    try:
        local.add_service(body, replace_checks=replace, token=request_token(req))
    except ServiceError as exc:
        raise HTTPError(exc.status, exc.message) from None
    except CheckError as exc:
        raise HTTPError(getattr(exc, "status", None) or 400, str(exc)) from None
    await local.flush()
    return ok()


async def service_deregister(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    if not service_id:
        raise HTTPError(400, "Missing service ID")
    if not local.remove_service(service_id):
        raise HTTPError(
            404,
            f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.',
        )
    await local.flush()
    return ok()


def _enable_flag(req: Request) -> bool:
    raw = req.get("enable")
    if raw is None or raw == "":
        raise HTTPError(400, "Missing value for enable")
    if raw in _TRUE_VALUES:
        return True
    if raw in _FALSE_VALUES:
        return False
    raise HTTPError(400, f'Invalid value for enable: "{raw}"')


async def service_maintenance(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    if not service_id:
        raise HTTPError(400, "Missing service ID")
    enable = _enable_flag(req)
    if service_id not in local.services:
        raise HTTPError(404, f'Unknown service ID "{service_id}"')
    local.set_service_maintenance(service_id, enable, req.get("reason") or "", request_token(req))
    await local.flush()
    return ok()


async def node_maintenance(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    enable = _enable_flag(req)
    local.set_node_maintenance(enable, req.get("reason") or "", request_token(req))
    await local.flush()
    return ok()


def _aggregate(statuses: list[str]) -> str:
    for status in ("critical", "maintenance", "warning"):
        if status in statuses:
            return status
    return "passing"


_HEALTH_CODES = {"passing": 200, "warning": 429, "critical": 503, "maintenance": 503}


async def _service_health(ports: AgentPorts, defn: ServiceDefinition) -> tuple[str, dict]:
    local = ports.local
    checks = [
        local.render_check(c)
        for c in local.checks.values()
        if c.definition.service_id == defn.id
        or (not c.definition.service_id and c.definition.check_id == "_node_maintenance")
    ]
    statuses = []
    for c in checks:
        cid = c["CheckID"]
        statuses.append(
            "maintenance"
            if cid.startswith("_service_maintenance:") or cid == "_node_maintenance"
            else c["Status"]
        )
    status = _aggregate(statuses)
    return status, {
        "AggregatedStatus": status,
        "Service": await _rendered(ports, defn),
        "Checks": checks,
    }


async def health_by_id(ports: AgentPorts, req: Request, service_id: str) -> Response:
    local = ports.local
    defn = local.services.get(service_id)
    text = req.get("format") == "text"
    if defn is None:
        message = f"ServiceId {service_id} not found"
        if text:
            return text_response(message, 404)
        return json_response(req, None, status=404) if False else text_response(message, 404)
    status, body = await _service_health(ports, defn)
    if text:
        return text_response(status, _HEALTH_CODES[status])
    return json_response(req, body, status=_HEALTH_CODES[status])


async def health_by_name(ports: AgentPorts, req: Request, name: str) -> Response:
    local = ports.local
    entries = [await _service_health(ports, d) for d in local.services.values() if d.name == name]
    text = req.get("format") == "text"
    if not entries:
        message = f"ServiceName {name} Not Found"
        return text_response(message, 404) if text else json_response(req, [], status=404)
    status = _aggregate([s for s, _ in entries])
    if text:
        return text_response(status, _HEALTH_CODES[status])
    return json_response(req, [b for _, b in entries], status=_HEALTH_CODES[status])
