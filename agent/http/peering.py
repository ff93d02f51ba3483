"""`/v1/peering*`: cluster peering, answered as a Consul agent with `peering.enabled = false`.

This agent has no peering (no gRPC peering streams, no trust bundles), so it gives the answers
Consul gives when the feature is turned off, whatever `peering.enabled` says. Consul's HTTP
handlers check the request first (a body that does not decode, a missing `PeerName` or
`PeeringToken`, a missing name in the path are 400s with their words), then call the peering
service, which refuses before anything else, ACLs included, with gRPC FailedPrecondition; the
HTTP layer passes that on as a 500 whose text is the gRPC error's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.http import gojson
from agent.http.app import HTTPError, Request, Response, Router
from agent.http.gojson import STRING_MAP, STRINGS, Struct

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps

DISABLED = (
    "rpc error: code = FailedPrecondition desc = peering must be enabled to use this endpoint"
)
_DECODE = "Body decoding failed: "

# api.PeeringGenerateTokenRequest / api.PeeringEstablishRequest; Consul decodes these with
# unknown fields refused (lib.DecodeJSON).
_TOKEN_REQUEST = Struct(
    "api.PeeringGenerateTokenRequest",
    {
        "PeerName": "string",
        "Partition": "string",
        "Meta": STRING_MAP,
        "ServerExternalAddresses": STRINGS,
    },
)
_ESTABLISH_REQUEST = Struct(
    "api.PeeringEstablishRequest",
    {"PeerName": "string", "PeeringToken": "string", "Partition": "string", "Meta": STRING_MAP},
)


def _decode(raw: bytes, spec: Struct) -> dict[str, Any]:
    if not raw.strip():
        raise HTTPError(400, f"{_DECODE}EOF")
    value = gojson.parse(raw, _DECODE)
    if isinstance(value, dict):
        known = {name.lower() for name in spec.fields}
        for key in value:
            if key.lower() not in known:  # Go matches names without regard to case, only
                raise HTTPError(400, f'{_DECODE}json: unknown field "{key}"')
    return gojson.conform(value, spec, _DECODE) or {}


async def generate_token(req: Request, _: str) -> Response:
    body = _decode(await req.body(), _TOKEN_REQUEST)
    if not body.get("PeerName"):
        raise HTTPError(
            400, "PeerName is required in the payload when generating a new peering token."
        )
    raise HTTPError(500, DISABLED)


async def establish(req: Request, _: str) -> Response:
    body = _decode(await req.body(), _ESTABLISH_REQUEST)
    if not body.get("PeerName"):
        raise HTTPError(400, "PeerName is required in the payload when establishing a peering.")
    if not body.get("PeeringToken"):
        raise HTTPError(400, "PeeringToken is required in the payload when establishing a peering.")
    raise HTTPError(500, DISABLED)


async def one(req: Request, name: str) -> Response:
    """GET (read) and DELETE of `/v1/peering/<name>`."""
    if not name:
        raise HTTPError(400, "Must specify a name to fetch.")
    raise HTTPError(500, DISABLED)


async def listing(req: Request, _: str) -> Response:
    raise HTTPError(500, DISABLED)


def register(router: Router, deps: HTTPDeps) -> None:
    router.add("/v1/peering/token", {"POST": generate_token})
    router.add("/v1/peering/establish", {"POST": establish})
    router.add("/v1/peering/", {"GET": one, "DELETE": one}, prefix=True)
    router.add("/v1/peerings", {"GET": listing})
