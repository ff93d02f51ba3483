"""Finding where to dial an upstream: the destination's Connect-capable instances.

Answers are cached for `RESOLVE_TTL` (1 s) per (destination, datacenter), so a burst of
upstream connections costs one agent request; an instance that appears or leaves is seen
within a second. The dialer shuffles the list, so connections spread over the instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gitkv.connect.agentapi import Instance, LocalAgent
from gitkv.connect.cache import TTLCache

__all__ = ["RESOLVE_TTL", "Resolver"]

RESOLVE_TTL = 1.0


class Resolver:
    def __init__(
        self,
        api: LocalAgent,
        *,
        ttl: float = RESOLVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self._cache: TTLCache[tuple[str, str], list[Instance]] = TTLCache(ttl, clock)

    async def instances(self, destination: str, datacenter: str = "") -> list[Instance]:
        async def ask() -> list[Instance]:
            return await self.api.connect_instances(destination, datacenter)

        return await self._cache.get((destination, datacenter), ask)
