"""Authorizing inbound connections: `POST /v1/agent/connect/authorize`, cached briefly.

The cache is keyed by the client's SPIFFE URI and keeps an answer for `AUTHORIZE_TTL`
(0.5 s). Why that long and no longer: under a burst of connections from one source it turns
one agent round trip per connection into one per half second (the connection setup budget
is a few milliseconds), while a changed intention still takes effect within half a second
plus the agent's own propagation, comfortably inside the one second the mesh promises.
Failures are never cached and deny the connection (fail closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gitkv.connect.agentapi import LocalAgent
from gitkv.connect.cache import TTLCache

__all__ = ["AUTHORIZE_TTL", "Authorizer", "Decision"]

log = logging.getLogger("gitkv.connect.proxy")

AUTHORIZE_TTL = 0.5


@dataclass(frozen=True)
class Decision:
    authorized: bool
    reason: str


class Authorizer:
    def __init__(
        self,
        api: LocalAgent,
        target: str,
        *,
        ttl: float = AUTHORIZE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.target = target
        self._cache: TTLCache[str, Decision] = TTLCache(ttl, clock)

    async def decide(self, client_uri: str, client_serial: str) -> Decision:
        async def ask() -> Decision:
            authorized, reason = await self.api.authorize(self.target, client_uri, client_serial)
            return Decision(authorized, reason)

        try:
            return await self._cache.get(client_uri, ask)
        except Exception as exc:
            log.warning("authorize %s -> %s failed, denying: %s", client_uri, self.target, exc)
            return Decision(False, f"authorize failed: {exc}")
