"""`/v1/agent/checks` and `/v1/agent/check/*`: the checks registered with this agent and
the pass/warn/fail/update calls that feed its TTL checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.checks import CheckError
from agent.http.agent_common import AgentPorts, filtered, ok
from agent.http.app import HTTPError, Request, Response, json_response
from agent.http.authz import request_token
from agent.http.bodies import CHECK_DEFINITION, CHECK_UPDATE
from agent.http.gojson import conform
from agent.services import ServiceError

if TYPE_CHECKING:
    from agent.local import LocalState

__all__ = ["agent_checks", "check_deregister", "check_register", "check_update", "ttl_handler"]


async def agent_checks(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    rendered = filtered(req, [local.render_check(c) for c in local.checks.values()])
    return json_response(req, {c["CheckID"]: c for c in rendered})


async def check_register(ports: AgentPorts, req: Request, _: str) -> Response:
    local = ports.local
    body = await req.json()
    conform(body, CHECK_DEFINITION)
    try:
        local.add_check(body, token=request_token(req))
    except ServiceError as exc:
        raise HTTPError(
            404 if "does not exist" in exc.message else exc.status, exc.message
        ) from None
    except CheckError as exc:
        raise HTTPError(getattr(exc, "status", None) or 400, str(exc)) from None
    await local.flush()
    return ok()


async def check_deregister(ports: AgentPorts, req: Request, check_id: str) -> Response:
    local = ports.local
    if not local.remove_check(check_id):
        raise HTTPError(
            404,
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
        )
    await local.flush()
    return ok()


def ttl_handler(status: str):
    """The handler of `check/pass|warn|fail/<id>`: a TTL update to `status`, `?note=` as output."""

    async def handler(ports: AgentPorts, req: Request, check_id: str) -> Response:
        note = req.get("note") or ""
        await _ttl_update(ports.local, check_id, status, note)
        return ok()

    return handler


async def _ttl_update(local: LocalState, check_id: str, status: str, output: str) -> None:
    try:
        local.ttl_update(check_id, status, output)
    except KeyError:
        raise HTTPError(
            404,
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.',
        ) from None
    except ValueError as exc:
        raise HTTPError(500, str(exc)) from None
    await local.flush()


async def check_update(ports: AgentPorts, req: Request, check_id: str) -> Response:
    local = ports.local
    body = conform(await req.json(), CHECK_UPDATE) or {}
    status = body.get("Status", "")
    if status not in ("passing", "warning", "critical"):
        raise HTTPError(400, f"Invalid check status: '{status}'")
    await _ttl_update(local, check_id, status, body.get("Output", "") or "")
    return ok()
