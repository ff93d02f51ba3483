"""`/v1/status/leader` and `/v1/status/peers`: the Raft view, as "ip:port" strings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from agent.http.app import Request, Response, Router, json_response

if TYPE_CHECKING:
    from agent.http.deps import HTTPDeps
    from agent.ports import Leadership
    from agent.raft.node import RaftNode


@dataclass(frozen=True)
class StatusPorts:
    leadership: Leadership
    consensus: RaftNode | None  # servers only: a client agent knows no peers


async def leader(ports: StatusPorts, req: Request, _: str) -> Response:
    return json_response(req, ports.leadership.leader_address)


async def peers(ports: StatusPorts, req: Request, _: str) -> Response:
    consensus = ports.consensus
    return json_response(req, consensus.peers() if consensus else [])


def register(router: Router, deps: HTTPDeps) -> None:
    ports = StatusPorts(deps.leadership, deps.consensus)
    router.add("/v1/status/leader", {"GET": partial(leader, ports)})
    router.add("/v1/status/peers", {"GET": partial(peers, ports)})
