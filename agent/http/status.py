"""`/v1/status/leader` and `/v1/status/peers`: the Raft view, as "ip:port" strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.http.app import Request, Response, Router, json_response

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps


async def leader(req: Request, _: str) -> Response:
    return json_response(req, req.agent.leader_address)


async def peers(req: Request, _: str) -> Response:
    consensus = req.agent.consensus
    return json_response(req, consensus.peers() if consensus else [])


def register(router: Router, deps: HTTPDeps) -> None:
    router.add("/v1/status/leader", {"GET": leader})
    router.add("/v1/status/peers", {"GET": peers})
