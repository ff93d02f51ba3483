"""`POST /v1/internal/acl/authorize`: what the request's token may do, as Consul's
ACLAuthorize answers it (the web UI asks this to decide what to show).

The body is a list of `{Resource, Segment, Access}` (unknown fields refused, as Consul's
decoder does; at most 64); each comes back with `Allow`. The resources and accesses are
acl.Enforce's: `read`/`write` for every resource, and `list`/`write-prefix` for `key`
(access compared without regard to case); anything else is a 400 naming it. With ACLs
disabled the endpoint answers 401 `ACL support disabled`, as the rest of the ACL API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.http import gojson
from agent.http.app import HTTPError, Request, Response, Router, json_response
from agent.http.authz import identity
from agent.http.gojson import List, Struct

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

PATH = "/v1/internal/acl/authorize"
MAX_REQUESTS = 64
_DECODE = "Failed to decode request body: "
_REQUEST = Struct(
    "structs.ACLAuthorizationRequest",
    {"Resource": "string", "Segment": "string", "Access": "string"},
)
_REQUESTS = List("[]structs.ACLAuthorizationRequest", _REQUEST)
# acl.Enforce's resources: named ones (the segment is the name) and single-valued ones.
_NAMED = {"agent", "event", "intention", "key", "node", "query", "service", "session"}
_SINGLE = {"acl", "keyring", "mesh", "operator", "peering"}


def decode(raw: bytes) -> list[dict[str, Any]]:
    """The requests of a body, refused as Consul's decoder refuses them."""
    if not raw.strip():
        raise HTTPError(400, f"{_DECODE}EOF")
    value = gojson.parse(raw, _DECODE)
    for item in value if isinstance(value, list) else ():
        for key in item if isinstance(item, dict) else ():
            if key.lower() not in {"resource", "segment", "access"}:
                raise HTTPError(400, f'{_DECODE}json: unknown field "{key}"')
    return gojson.conform(value, _REQUESTS, _DECODE) or []


def enforce(authz: Any, resource: str, segment: str, access: str) -> bool:
    """acl.Enforce: the decision, or a 400 for a resource or access it does not know."""
    level = access.lower()
    if resource not in _NAMED and resource not in _SINGLE:
        raise HTTPError(400, f'Invalid ACL resource requested: "{resource}"')
    if resource == "key" and level == "write-prefix":
        return bool(authz.key_write_prefix(segment))
    if level not in ("read", "write") and not (resource == "key" and level == "list"):
        raise HTTPError(400, f"Invalid access level for {resource} resource: {access}")
    if resource in _SINGLE:
        return bool(authz.allowed_single(resource, level))
    return bool(authz.allowed(resource, segment, level))


async def authorize(req: Request, _: str) -> Response:
    requests = decode(await req.body())
    if len(requests) > MAX_REQUESTS:
        raise HTTPError(400, f"Refusing to process more than {MAX_REQUESTS} authorizations at once")
    if not requests:
        return json_response(req, [])
    await req.acl.ensure_initialized()
    authz = identity(req).authz  # 403 "ACL not found" for a token that does not resolve
    out = []
    for item in requests:
        resource, segment = item.get("Resource", ""), item.get("Segment", "")
        allow = enforce(authz, resource, segment, item.get("Access", ""))
        answer: dict[str, Any] = {"Resource": resource}
        if segment:
            answer["Segment"] = segment
        answer |= {"Access": item.get("Access", ""), "Allow": allow}
        out.append(answer)
    return json_response(req, out)


async def _disabled(req: Request, _: str) -> Response:
    raise HTTPError(401, "ACL support disabled")


def register(router: Router, deps: HTTPDeps) -> None:
    router.add(PATH, {"POST": authorize if deps.acl is not None else _disabled})
